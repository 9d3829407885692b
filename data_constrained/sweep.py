"""The headline experiment: in one process (`harness=inline`, the cpu scale), or as a resumable campaign of
chunks (`harness=chunked`, the gpu scale: data_constrained.campaign).

    python -m data_constrained.sweep experiment=asymptote_cpu           # what `make reproduce-data_constrained` runs
    python -m data_constrained.sweep experiment=campaign_gpu time_budget_s=540    # one chunk of the GPU campaign

Inline: recipes x sizes, the default recipe's data law, ensembles, distillation and the continued pre-training
analog; writes `experiments/data_constrained/results/sweep_<scale>.json` for `data_constrained.fit`.

Every run is `train.train_run` with one config changed, so each point is also a single
`python -m data_constrained.train ...` command; at GPU scale the same grid is a Hydra multirun (see README) whose
summaries `fit record_dir=...` collects instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from common.checkpoint import latest_checkpoint
from common.config import ConfigError, as_dict, check_choice, check_range, hydra_app, run_dir
from common.device import choose_device, describe_device
from common.results import write_result
from data_constrained.campaign.chunk import run_chunk
from data_constrained.campaign.config import CampaignConfig
from data_constrained.data import DataConfig, eval_windows, load_tokens, vocab_size_of
from data_constrained.distill import distill
from data_constrained.ensemble import member_config, score_ensemble
from data_constrained.presets import model_preset
from data_constrained.train import TrainConfig, target_logprobs, train_run


@dataclass
class SweepConfig(TrainConfig):
    """The grid. The base config (recipe=default) is the default recipe; the tuned recipe is the best of
    `tuned_weight_decays` x `tuned_epochs` per size (per-size tuning, as in the paper)."""

    experiment: str = "asymptote"
    sizes: list[str] = field(default_factory=lambda: ["c32", "c64", "c96"])
    tuned_weight_decays: list[float] = field(default_factory=lambda: [0.8, 3.2])
    tuned_epochs: list[float] = field(default_factory=list)  # empty: the base `epochs`
    data_scales: list[float] = field(default_factory=lambda: [0.25, 0.5, 2.0])  # x token_budget, default recipe
    ensemble_members: int = 2
    distill_size: str = ""  # "": the middle of `sizes`
    distill_alpha: float = 0.9
    distill_weight_decay: float = -1.0  # the student's weight decay; <0: the tuned one of its size
    cpt_data: DataConfig = field(default_factory=lambda: DataConfig(corpus="code", token_budget=4096))
    cpt_sizes: list[str] = field(default_factory=list)  # empty: skip the continued pre-training analog
    cpt_pretrain_data: DataConfig = field(default_factory=lambda: DataConfig(corpus="english", token_budget=32768))
    cpt_pretrain_epochs: float = 1.0
    cpt_weight_decays: list[float] = field(default_factory=list)  # tuned candidates; empty: tuned_weight_decays
    results_root: str = ""  # "": the repository (tests point this at a temporary folder)
    harness: str = "inline"  # inline: the grid below in one process; chunked: one chunk of `campaign`
    time_budget_s: float = 0.0  # chunked: stop starting runs that would end after this many seconds
    campaign: CampaignConfig = field(default_factory=CampaignConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.sizes) < 1:
            raise ConfigError("sizes must name at least one model preset (configs/data_constrained/model/)")
        for name in [*self.sizes, *self.cpt_sizes, *([self.distill_size] if self.distill_size else [])]:
            model_preset(name)
        check_range("ensemble_members", self.ensemble_members, 1)
        for scale in self.data_scales:
            check_range("data_scales[]", scale, 0.0, low_open=True)
        for wd in [*self.tuned_weight_decays, *self.cpt_weight_decays]:
            check_range("tuned_weight_decays[]/cpt_weight_decays[]", wd, 0.0)
        for epochs in self.tuned_epochs:
            check_range("tuned_epochs[]", epochs, 0.0, low_open=True)
        check_range("distill_alpha", self.distill_alpha, 0.0, 1.0)
        check_range("cpt_pretrain_epochs", self.cpt_pretrain_epochs, 0.0, low_open=True)
        check_choice("harness", self.harness, ("inline", "chunked"))
        check_range("time_budget_s", self.time_budget_s, 0.0)
        if self.harness == "chunked":
            if not self.time_budget_s:
                raise ConfigError("harness=chunked needs time_budget_s > 0 (seconds one chunk may take)")
            self.campaign.check()


def run_sweep(cfg: SweepConfig, out_dir: str | Path) -> dict[str, Any]:
    """Run the grid in `out_dir`; returns the metrics dict stored in sweep_<scale>.json."""
    out_dir = Path(out_dir)
    base = TrainConfig(**{k: getattr(cfg, k) for k in TrainConfig.__dataclass_fields__})
    runs: list[dict[str, Any]] = []

    def run(tag: str, config: TrainConfig, **kwargs):
        model, summary = train_run(replace(config, name=tag), out_dir / tag, **kwargs)
        runs.append({"tag": tag, **summary})
        return model, summary

    # 1. default vs tuned recipe at the base token budget, per size
    best: dict[str, tuple[TrainConfig, Any, dict]] = {}
    for size in cfg.sizes:
        sized = replace(base, model=model_preset(size))
        run(f"default_{size}", replace(sized, recipe="default"))
        for wd in cfg.tuned_weight_decays:
            for epochs in cfg.tuned_epochs or [cfg.epochs]:
                config = replace(sized, recipe="tuned_candidate", weight_decay=wd, epochs=epochs)
                model, summary = run(f"tune_{size}_wd{wd:g}_ep{epochs:g}", config)
                if size not in best or summary["val_loss"] < best[size][2]["val_loss"]:
                    best[size] = (config, model, summary)
    tuned = {size: {**s, "tag": f"tuned_{size}"} for size, (_, _, s) in best.items()}

    # 2. the default recipe's data-scaling law: every size at each budget (the law takes the best size per budget)
    for scale in cfg.data_scales:
        budget = max(cfg.seq_len + 1, round(cfg.data.token_budget * scale))
        for size in cfg.sizes:
            config = replace(base, model=model_preset(size), recipe="default",
                             data=replace(base.data, token_budget=budget))
            run(f"data_{scale:g}x_{size}", config)

    # 3. ensembles of the tuned recipe: member 0 is the tuned run, members 1.. new seeds (init and data order)
    ensembles, members = [], {}
    for size, (config, model, _) in best.items():
        models = [model]
        for i in range(1, cfg.ensemble_members):
            m, _ = run(f"member{i}_{size}", member_config(config, i))
            models.append(m)
        members[size] = models
        ensembles.append({"size": size, **score_ensemble(models, config)})

    # 4. distillation: the ensemble of `distill_size` -> one model of that size (K x fewer parameters), and
    #    self-distillation (its tuned member -> a freshly initialized copy)
    dsize = cfg.distill_size or cfg.sizes[len(cfg.sizes) // 2]
    if dsize not in best:
        raise ConfigError(f"distill_size={dsize!r} is not one of sizes={cfg.sizes}")
    dconfig, _, dsummary = best[dsize]
    student = dconfig if cfg.distill_weight_decay < 0 else replace(dconfig, weight_decay=cfg.distill_weight_decay)
    result = {"size": dsize}
    if cfg.ensemble_members > 1:
        result["ensemble"] = distill(replace(student, name=f"distill_{dsize}"), members[dsize],
                                     out_dir / f"distill_{dsize}", cfg.distill_alpha,
                                     plain_loss=dsummary["val_loss"])
    result["self"] = distill(replace(student, name=f"selfdistill_{dsize}"), members[dsize][:1],
                             out_dir / f"selfdistill_{dsize}", cfg.distill_alpha, plain_loss=dsummary["val_loss"])

    # 5. continued pre-training analog: pre-train on the first corpus (`cpt_pretrain_data`), then the recipe
    #    comparison again on a small budget of the second (`cpt_data`), starting from the pre-trained weights
    cpt: dict[str, Any] = {"corpus": cfg.cpt_data.corpus, "token_budget": cfg.cpt_data.token_budget,
                           "pretrain_corpus": cfg.cpt_pretrain_data.corpus,
                           "pretrain_tokens": cfg.cpt_pretrain_data.token_budget}
    if cfg.cpt_sizes:
        try:
            vocab = max(vocab_size_of(cfg.cpt_data), vocab_size_of(cfg.cpt_pretrain_data))
        except Exception as err:  # a missing optional corpus skips this part and says why
            cpt["skipped"] = f"{type(err).__name__}: {err}"
        else:
            cpt["runs"] = []
            for size in cfg.cpt_sizes:
                model_cfg = replace(model_preset(size), vocab_size=max(vocab, model_preset(size).vocab_size))
                pre = replace(base, model=model_cfg, data=cfg.cpt_pretrain_data, recipe="default",
                              epochs=cfg.cpt_pretrain_epochs)
                pretrained, s = run(f"cpt_pretrain_{size}", pre)
                x, y = eval_windows(load_tokens(cfg.cpt_data, cfg.cpt_data.eval_split), base.seq_len,
                                    cfg.cpt_data.eval_tokens)
                device = next(pretrained.parameters()).device.type
                logp = target_logprobs(pretrained, x, y, base.batch_size, device)
                s["start_loss_on_cpt_corpus"] = -logp.double().mean().item()
                cpt.setdefault("pretrain", []).append(s)
                start = str(latest_checkpoint(out_dir / f"cpt_pretrain_{size}" / "checkpoints"))
                for recipe, wds in (("default", [base.weight_decay]),
                                    ("tuned", cfg.cpt_weight_decays or cfg.tuned_weight_decays)):
                    for wd in wds:
                        config = replace(base, model=model_cfg, data=cfg.cpt_data, recipe=recipe, weight_decay=wd,
                                         init_from=start)
                        _, s = run(f"cpt_{recipe}_{size}_wd{wd:g}", config)
                        cpt["runs"].append(s)

    return {"base": {"token_budget": cfg.data.token_budget, "epochs": cfg.epochs, "corpus": cfg.data.corpus,
                     "default_weight_decay": base.weight_decay},
            "runs": runs, "tuned": tuned, "ensembles": ensembles, "distill": result, "cpt": cpt}


@hydra_app("data_constrained", "sweep", SweepConfig)
def main(cfg: SweepConfig) -> None:
    if cfg.harness == "chunked":
        run_chunk(cfg, run_dir())
        return
    t0 = time.perf_counter()
    metrics = run_sweep(cfg, run_dir())
    path = write_result("data_constrained", "sweep", cfg.scale, metrics, config=as_dict(cfg),
                        device=describe_device(choose_device(cfg.device)), wall_s=time.perf_counter() - t0,
                        root=Path(cfg.results_root) if cfg.results_root else None)
    print(path)


if __name__ == "__main__":
    main()
