"""Fit the paper's laws to a sweep and write `experiments/data_constrained/results/asymptote_<scale>.json`.

    python -m data_constrained.fit scale=cpu                       # reads results/sweep_cpu.json
    python -m data_constrained.fit scale=gpu record_dir=outputs/data_constrained/records_gpu  # multirun summaries

Quantities (Kim et al. 2025): the asymptote E of L(N) = A / N^alpha + E for the default and the tuned recipe;
the default recipe's data law L(D) = B / D^beta + E_D (best size per budget); the joint ensemble law
L(N, K) = A / N^alpha + B / K^beta + E; data efficiency = D_default(E) / D0 for each asymptote; the fraction
of the ensemble's gain a distilled student keeps; the self-distillation gain.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.config import LoggerConfig, as_dict, check_choice, check_range, hydra_app
from common.results import read_result, result_path, write_result
from data_constrained.scaling import bootstrap_power_law, data_efficiency, fit_joint, fit_power_law

PAPER = {
    "token_budget": 200_000_000,
    "tuned_weight_decay_over_default": 30.0,
    "ensemble_asymptote": 3.17,
    "data_efficiency_ensemble": 5.17,
    "distill_retained": 0.83,
    "distill_note": "8-member ensemble distilled into one member-sized student (8x fewer parameters)",
    "downstream_improvement": 0.09,
    "cpt_data_efficiency": 17.5,
}


@dataclass
class FitConfig:
    scale: str = "cpu"
    sweep: str = ""  # "": experiments/data_constrained/results/sweep_<scale>.json
    record_dir: str = ""  # alternatively: a folder of train summaries (<name>.json) from a multirun
    n_boot: int = 200
    seed: int = 0
    results_root: str = ""
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def __post_init__(self) -> None:
        check_choice("scale", self.scale, ("cpu", "gpu"))
        check_range("n_boot", self.n_boot, 0)
        check_range("seed", self.seed, 0)


def fit_sweep(sweep: dict[str, Any], n_boot: int = 200, seed: int = 0) -> dict[str, Any]:
    """All fits of one sweep's metrics (as written by `data_constrained.sweep`)."""
    d0 = sweep["base"]["token_budget"]
    runs = sweep["runs"]
    out: dict[str, Any] = {"token_budget": d0, "epochs": sweep["base"]["epochs"], "corpus": sweep["base"]["corpus"]}

    default = sorted((r for r in runs if r["tag"].startswith("default_")), key=lambda r: r["n_params"])
    tuned = sorted(sweep["tuned"].values(), key=lambda r: r["n_params"])
    seed_mean = {e["n_params"]: e["mean_member_loss"] for e in sweep.get("ensembles", [])}
    if seed_mean:  # the tuned law on the mean over seeds (the ensemble members) where there are several
        tuned = [{**r, "val_loss": seed_mean.get(r["n_params"], r["val_loss"])} for r in tuned]
    out["default"] = _law_record([r["n_params"] for r in default], [r["val_loss"] for r in default], n_boot, seed)
    out["tuned"] = _law_record([r["n_params"] for r in tuned], [r["val_loss"] for r in tuned], n_boot, seed)
    out["tuned"]["weight_decay"] = [r["weight_decay"] for r in tuned]
    out["tuned"]["epochs"] = [r["epochs"] for r in tuned]
    out["tuned_weight_decay_over_default"] = (max(out["tuned"]["weight_decay"])
                                              / sweep["base"]["default_weight_decay"])
    out["default_monotone_in_N"] = _monotone(out["default"]["loss"])
    out["tuned_monotone_in_N"] = _monotone(out["tuned"]["loss"])

    # the default recipe's data law: best loss over sizes at each budget
    by_budget: dict[int, float] = defaultdict(lambda: math.inf)
    for r in runs:
        if r["tag"].startswith(("default_", "data_")):
            by_budget[r["token_budget"]] = min(by_budget[r["token_budget"]], r["val_loss"])
    budgets = sorted(by_budget)
    data_law = _law_record(budgets, [by_budget[d] for d in budgets], n_boot, seed)
    out["default_data_law"] = data_law

    # ensembles: K = 1..members per size, joint law and the K=max law in N
    points = [(e["n_params"], int(k), loss) for e in sweep["ensembles"] for k, loss in e["ensemble_losses"].items()]
    out["ensembles"] = {"points": [list(p) for p in points]}
    k_max = max((p[1] for p in points), default=1)
    if k_max > 1 and len({p[0] for p in points}) >= 2 and len(points) >= 5:
        joint = fit_joint(*zip(*points, strict=True))
        out["ensembles"]["joint"] = joint.as_dict()
        out["ensembles"]["asymptote"] = joint.E
    top = sorted((p for p in points if p[1] == k_max), key=lambda p: p[0])
    if k_max > 1 and len(top) >= 3:
        out["ensembles"][f"K{k_max}_law"] = _law_record([p[0] for p in top], [p[2] for p in top], n_boot, seed)

    # data efficiency of each asymptote against the default recipe's data law
    if data_law.get("fit"):
        law = fit_power_law(budgets, [by_budget[d] for d in budgets])
        for name, loss in (("tuned", out["tuned"].get("fit", {}).get("E")),
                           ("ensemble", out["ensembles"].get("asymptote"))):
            if loss is not None:
                out[f"data_efficiency_{name}"] = data_efficiency(loss, law, d0)

        # the same question for losses we measured (no extrapolation in N): best single tuned model, best ensemble
        measured = {"tuned": min(out["tuned"]["loss"])}
        if points:
            measured["ensemble"] = min(p[2] for p in points)
        out["measured_best_loss"] = {"default": min(out["default"]["loss"]), **measured}
        for name, loss in measured.items():
            out[f"data_efficiency_measured_{name}"] = data_efficiency(loss, law, d0)

    # distillation
    dist = sweep.get("distill", {})
    out["distill"] = {k: dist[k] for k in ("size", "ensemble", "self") if k in dist}
    if "ensemble" in dist:
        out["distill_retained"] = dist["ensemble"]["retained"]
    if "self" in dist:
        out["self_distill_gain"] = dist["self"]["plain_student_loss"] - dist["self"]["student_loss"]

    # continued pre-training analog: best default vs best tuned loss per size on the second corpus
    cpt = sweep.get("cpt", {})
    out["cpt"] = {k: cpt[k] for k in ("corpus", "token_budget", "pretrain_corpus", "pretrain_tokens", "skipped")
                  if k in cpt}
    if cpt.get("pretrain"):
        out["cpt"]["start_loss"] = {str(r["n_params"]): r.get("start_loss_on_cpt_corpus") for r in cpt["pretrain"]}
    if cpt.get("runs"):
        table: dict[str, dict[str, float]] = defaultdict(dict)
        for r in cpt["runs"]:
            key = str(r["n_params"])
            table[key][r["recipe"]] = min(table[key].get(r["recipe"], math.inf), r["val_loss"])
        out["cpt"]["best_loss"] = dict(table)
    return out


def _law_record(x, loss, n_boot: int, seed: int) -> dict[str, Any]:
    record: dict[str, Any] = {"x": list(map(float, x)), "loss": list(map(float, loss))}
    if len(set(x)) >= 3:
        record["fit"] = fit_power_law(x, loss).as_dict()
        if n_boot:
            record["ci90"] = bootstrap_power_law(x, loss, n_boot=n_boot, seed=seed)
    return record


def _monotone(losses: list[float]) -> bool:
    return all(b <= a for a, b in zip(losses, losses[1:], strict=False))


def sweep_from_records(record_dir: str | Path, default_weight_decay: float = 0.1) -> dict[str, Any]:
    """A sweep-shaped dict from a folder of multirun summaries (recipe labels `default` / anything else)."""
    runs = [json.loads(p.read_text()) for p in sorted(Path(record_dir).glob("*.json"))]
    if not runs:
        raise FileNotFoundError(f"record_dir={record_dir} holds no run summaries (*.json)")
    d0 = max(r["token_budget"] for r in runs)
    tagged, tuned = [], {}
    for r in runs:
        at_d0 = r["token_budget"] == d0
        tag = ("default_" if at_d0 else "data_") if r["recipe"] == "default" else "tune_"
        tagged.append({**r, "tag": tag + r["name"]})
        key = str(r["n_params"])
        if r["recipe"] != "default" and at_d0 and (key not in tuned or r["val_loss"] < tuned[key]["val_loss"]):
            tuned[key] = r
    return {"base": {"token_budget": d0, "epochs": runs[0]["epochs"], "corpus": runs[0]["corpus"],
                     "default_weight_decay": default_weight_decay},
            "runs": tagged, "tuned": tuned, "ensembles": [], "distill": {}, "cpt": {}}


@hydra_app("data_constrained", "fit", FitConfig)
def main(cfg: FitConfig) -> None:
    t0 = time.perf_counter()
    root = Path(cfg.results_root) if cfg.results_root else None
    if cfg.record_dir:
        sweep, source = sweep_from_records(cfg.record_dir), cfg.record_dir
    else:
        path = Path(cfg.sweep) if cfg.sweep else result_path("data_constrained", f"sweep_{cfg.scale}", root)
        sweep, source = read_result(path)["metrics"], str(path)
    metrics = fit_sweep(sweep, cfg.n_boot, cfg.seed)
    metrics["source"] = source
    metrics["scale_note"] = (f"{cfg.scale} scale: {metrics['token_budget']} unique tokens of the "
                             f"{metrics['corpus']} corpus vs the paper's 200M; numbers are not comparable in "
                             "absolute value, only in direction")
    out = write_result("data_constrained", "asymptote", cfg.scale, metrics, paper=PAPER, config=as_dict(cfg),
                       wall_s=time.perf_counter() - t0, root=root)
    print(out)
    for key in ("default", "tuned"):
        print(key, "E =", metrics[key].get("fit", {}).get("E"))
    for key in ("data_efficiency_tuned", "data_efficiency_ensemble", "data_efficiency_measured_tuned",
                "data_efficiency_measured_ensemble", "distill_retained", "self_distill_gain"):
        print(key, "=", metrics.get(key))


if __name__ == "__main__":
    main()
