"""Train our target/draft pair: `python -m ssd.training.train_pair [pair=cpu|gpu] [key=value ...]`.

Setup (corpus, tokenizer, device) -> target: train, export -> draft: train (cross-entropy, plus KL to the target
when `draft.distill_weight` > 0), export -> evaluate both on the validation split -> results JSON.
Each model's training resumes from its latest readable checkpoint under
`<out_dir>/checkpoints/<name>-<fingerprint>/`, and a model whose export in `<out_dir>/<name>/` records the same
fingerprint is not trained again. The fingerprint is `common.run_config.config_hash` of everything that determines
the model (`_fingerprint_keys`), recorded in that folder's `run_config.json` and checked on resume
(`force_resume=true` overrides a mismatch).
Exports are Hugging Face directories (config.json, model.safetensors, tokenizer) that `transformers` and our engine
load. `pair=cpu` trains tiny models on the tiny corpus in seconds; `pair=gpu` a ~175M target and ~16M draft on the
English corpus within ~8 minutes of one H100 (bf16 autocast).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.config import ConfigError, LoggerConfig, as_dict, check_choice, check_range, hydra_app, run_dir
from common.run_config import config_hash

SCALES = ("cpu", "gpu")
CORPORA = ("tiny", "english", "code")


@dataclass
class ModelSpec:
    """Architecture and optimisation of one model of the pair."""

    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 344
    tie_word_embeddings: bool = False
    steps: int = 200
    batch_size: int = 16
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # cosine decay from lr to lr * min_lr_ratio
    warmup_steps: int = 20
    weight_decay: float = 0.1
    time_budget_s: float = 0.0  # stop early after this much training time (0: no limit); the stop is recorded
    distill_weight: float = 0.0  # draft only: loss = (1 - w) CE + w T^2 KL(target || draft)
    distill_temperature: float = 1.0

    def check(self, name: str) -> None:
        for key in ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size", "steps",
                    "batch_size"):
            check_range(f"{name}.{key}", getattr(self, key), low=1)
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ConfigError(f"{name}.hidden_size={self.hidden_size} must be a multiple of {name}.num_heads="
                              f"{self.num_heads}, itself a multiple of {name}.num_kv_heads={self.num_kv_heads}")
        if (self.hidden_size // self.num_heads) % 2:
            raise ConfigError(f"{name}: head dim hidden_size / num_heads must be even for rotary embeddings")
        check_range(f"{name}.lr", self.lr, low=0, low_open=True)
        check_range(f"{name}.min_lr_ratio", self.min_lr_ratio, low=0, high=1)
        check_range(f"{name}.warmup_steps", self.warmup_steps, low=0)
        check_range(f"{name}.weight_decay", self.weight_decay, low=0)
        check_range(f"{name}.time_budget_s", self.time_budget_s, low=0)
        check_range(f"{name}.distill_weight", self.distill_weight, low=0, high=1)
        check_range(f"{name}.distill_temperature", self.distill_temperature, low=0, low_open=True)


@dataclass
class TrainPairConfig:
    """`configs/ssd/train_pair.yaml` + `configs/ssd/pair/<scale>.yaml`."""

    scale: str = "cpu"
    corpus: str = "tiny"  # tiny: built on the fly by common.data.text.build_tiny_corpus; else `make corpus`
    corpus_dir: str | None = None  # default: common.data.text.default_corpus_dir(corpus)
    out_dir: str | None = None  # default: <data>/ssd/pair_<scale>
    max_train_tokens: int = 0  # read only the first N training tokens (0: all)
    seq_len: int = 64
    context_length: int = 256  # max_position_embeddings of the exported models (>= seq_len)
    rope_theta: float = 10000.0
    vocab_multiple: int = 64  # pad the vocabulary to a multiple of this (GPU-friendly shapes)
    eval_tokens: int = 8192  # validation tokens for the final evaluation
    eval_every: int = 50  # steps between (cheaper) validation-loss logs; 0: only at the end
    eval_batch_size: int = 16
    checkpoint_every: int = 100
    save_final_checkpoint: bool = True  # false on a machine that starts bare (the export is all that is used)
    keep_last: int = 1
    resume: bool = True
    force_resume: bool = False  # resume even when a checkpoint folder's run_config.json differs from this config
    grad_clip: float = 1.0
    device: str = "auto"
    cpu_threads: int = 0  # torch intra-op threads on CPU (0: torch's default); 1 avoids oversubscription
    dtype: str = "auto"  # autocast dtype: auto = bfloat16 on CUDA, float32 on CPU
    compile: bool = False  # torch.compile the models (GPU)
    export_dtype: str = "float32"
    seed: int = 0
    results_root: str | None = None  # write results under this root instead of the repository (tests)
    target: ModelSpec = field(default_factory=ModelSpec)
    draft: ModelSpec = field(default_factory=lambda: ModelSpec(hidden_size=64, num_layers=1,
                                                                  intermediate_size=172, distill_weight=0.5))
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def __post_init__(self) -> None:
        check_choice("scale", self.scale, SCALES)
        check_choice("corpus", self.corpus, CORPORA)
        check_choice("export_dtype", self.export_dtype, ("float32", "bfloat16", "float16"))
        check_choice("dtype", self.dtype, ("auto", "float32", "bfloat16", "float16"))
        check_range("max_train_tokens", self.max_train_tokens, low=0)
        check_range("seq_len", self.seq_len, low=2)
        check_range("context_length", self.context_length, low=self.seq_len)
        check_range("vocab_multiple", self.vocab_multiple, low=1)
        check_range("eval_tokens", self.eval_tokens, low=self.seq_len)
        check_range("eval_every", self.eval_every, low=0)
        check_range("eval_batch_size", self.eval_batch_size, low=1)
        check_range("checkpoint_every", self.checkpoint_every, low=1)
        check_range("keep_last", self.keep_last, low=1)
        check_range("grad_clip", self.grad_clip, low=0)
        check_range("cpu_threads", self.cpu_threads, low=0)
        check_range("rope_theta", self.rope_theta, low=0, low_open=True)
        check_range("seed", self.seed, low=0)
        self.target.check("target")
        self.draft.check("draft")


@hydra_app("ssd", "train_pair", TrainPairConfig)
def main(cfg: TrainPairConfig) -> dict[str, Any]:
    return train_pair(cfg, run_dir())


def train_pair(cfg: TrainPairConfig, out_run_dir: str | Path) -> dict[str, Any]:
    """Train, export and evaluate the pair; return the metrics written to pair_<scale>.json."""
    import torch

    threads = torch.get_num_threads()
    if cfg.cpu_threads:
        torch.set_num_threads(cfg.cpu_threads)
    try:
        return _train_pair(cfg, Path(out_run_dir))
    finally:
        torch.set_num_threads(threads)


def _train_pair(cfg: TrainPairConfig, out_run_dir: Path) -> dict[str, Any]:
    import torch

    from common.device import choose_device, choose_dtype, describe_device
    from common.logging import RunLogger
    from common.results import write_result
    from common.seed import seed_everything
    from ssd.training.hf_checkpoint import export_hf, load_hf, read_training_record

    start = time.perf_counter()
    seed_everything(cfg.seed)
    device = choose_device(cfg.device)
    amp_dtype = choose_dtype(cfg.dtype, device)
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    corpus = _corpus_dir(cfg)
    data = _load_data(cfg, corpus)
    out = Path(cfg.out_dir) if cfg.out_dir else _default_out_dir(cfg.scale)
    models: dict[str, Any] = {}
    stats: dict[str, dict[str, Any]] = {}
    with RunLogger(cfg.logger, out_run_dir, config=as_dict(cfg), name=f"train_pair_{cfg.scale}") as log:
        for name in ("target", "draft"):
            spec: ModelSpec = getattr(cfg, name)
            keys = _fingerprint_keys(cfg, name, data)
            fingerprint = config_hash(keys, ())[:12]
            export_dir = out / name
            record = read_training_record(export_dir)
            if cfg.resume and record is not None and record.get("fingerprint") == fingerprint:
                log.log({f"{name}/reused_export": 1})
                models[name] = load_hf(export_dir, device)
                stats[name] = record["stats"]
                continue
            teacher = models["target"] if name == "draft" and spec.distill_weight > 0 else None
            model, stats[name] = _train_model(name, spec, cfg, data, device, amp_dtype, teacher, log,
                                              out / "checkpoints" / f"{name}-{fingerprint}", keys)
            export_hf(model, data["tokenizer"], export_dir, cfg.export_dtype,
                      {"fingerprint": fingerprint, "stats": stats[name], "corpus": str(corpus),
                       "config": dataclasses.asdict(spec)})
            models[name] = model.eval()
        evaluation = evaluate_pair(models["target"], models["draft"], data["val"], cfg, device, amp_dtype)
        val_tokens = evaluation.pop("val_tokens")
        metrics = {
            **{f"target_{k}": v for k, v in stats["target"].items()},
            **{f"draft_{k}": v for k, v in stats["draft"].items()},
            **evaluation,
            "vocab_size": data["vocab_size"], "train_tokens_available": int(len(data["train"])),
            "val_tokens_evaluated": val_tokens, "target_dir": str(out / "target"),
            "draft_dir": str(out / "draft"), "corpus": str(corpus),
        }
        log.summary({k: v for k, v in metrics.items() if isinstance(v, int | float)})
    write_result("ssd", "pair", cfg.scale, metrics, config=as_dict(cfg), device=describe_device(device),
                 wall_s=time.perf_counter() - start, name=None,
                 root=Path(cfg.results_root) if cfg.results_root else None,
                 paper={"target": "Llama-3.1-70B-Instruct", "draft": "Llama-3.2-1B-Instruct",
                        "note": "the paper uses off-the-shelf Llama-3 pairs and reports no val loss or agreement; "
                                "we train our own small pair"})
    return metrics


# ------------------------------------------------------------------------------------------------ training


def _train_model(name: str, spec: ModelSpec, cfg: TrainPairConfig, data: dict[str, Any], device: str,
                 amp_dtype: str, teacher, log, ckpt_dir: Path, run_config: dict[str, Any]
                 ) -> tuple[Any, dict[str, Any]]:
    """Train one model (resuming from `ckpt_dir`, whose checkpoints must come from `run_config`); return
    (model, stats)."""
    import torch

    from common.checkpoint import (
        list_checkpoints,
        load_latest_checkpoint,
        save_checkpoint,
        torch_optimizer_state,
    )
    from common.run_config import check_resume, record_run_config
    from ssd.training.hf_checkpoint import build_llama
    from ssd.training.objectives import distillation_loss, next_token_loss, param_count
    from ssd.training.windows import train_batch

    torch.manual_seed(cfg.seed + (0 if name == "target" else 1))
    model = build_llama(data["vocab_size"], spec.hidden_size, spec.num_layers, spec.num_heads, spec.num_kv_heads,
                        spec.intermediate_size, cfg.context_length, cfg.rope_theta, spec.tie_word_embeddings,
                        data["eos_id"], data["pad_id"]).to(device)
    optimizer = _optimizer(model, spec, device)
    step, train_s, stopped_early = 0, 0.0, False
    resuming = cfg.resume and bool(list_checkpoints(ckpt_dir))
    if resuming:
        check_resume(ckpt_dir, run_config, cfg.force_resume, ())
        step, state = load_latest_checkpoint(ckpt_dir)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(torch_optimizer_state(state["optim"]))
        train_s = float(state["train_s"])
        log.log({f"{name}/resumed_from_step": step}, step=step, series=name)
    else:
        record_run_config(ckpt_dir, run_config, ())
    forward = torch.compile(model) if cfg.compile else model
    teacher_forward = None
    if teacher is not None:
        teacher.eval().requires_grad_(False)
        teacher_forward = torch.compile(teacher) if cfg.compile else teacher
    autocast = _autocast(device, amp_dtype)
    initial_val = _val_loss(model, data["val"], cfg, device, amp_dtype) if step == 0 else None
    model.train()
    loss_value = float("nan")
    progress = log.progress(range(step, spec.steps), total=spec.steps - step, desc=f"train {name}")
    for step in progress:
        if spec.time_budget_s and train_s >= spec.time_budget_s:
            stopped_early = True
            break
        tick = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = _lr(spec, step)
        inputs, targets = (torch.from_numpy(a).to(device, non_blocking=True)
                           for a in train_batch(data["train"], spec.batch_size, cfg.seq_len, cfg.seed, step))
        with autocast:
            logits = forward(input_ids=inputs).logits
            loss = next_token_loss(logits, targets)
            if teacher_forward is not None:
                with torch.no_grad():
                    teacher_logits = teacher_forward(input_ids=inputs).logits
                kl = distillation_loss(logits, teacher_logits, spec.distill_temperature)
                loss = (1 - spec.distill_weight) * loss + spec.distill_weight * kl
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        done = step + 1
        if done % 10 == 0 or done == spec.steps:
            loss_value = loss.item()  # a host sync every 10 steps only
            log.log({f"{name}/loss": loss_value, f"{name}/lr": _lr(spec, step)}, step=done, series=name)
        if cfg.eval_every and done % cfg.eval_every == 0 and done < spec.steps:
            log.log({f"{name}/val_loss": _val_loss(model, data["val"], cfg, device, amp_dtype, quick=True)},
                    step=done, series=name)
            model.train()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        train_s += time.perf_counter() - tick
        if done % cfg.checkpoint_every == 0 and done < spec.steps:
            save_checkpoint(ckpt_dir, done, {"model": model.state_dict(),
                                             "optim": optimizer.state_dict(), "train_s": train_s},
                            keep_last=cfg.keep_last)
    else:
        step = spec.steps
    steps_done = step
    model.eval()
    stats = {"params": param_count(model), "steps": steps_done, "train_s": round(train_s, 3),
             "tokens_seen": steps_done * spec.batch_size * cfg.seq_len, "stopped_early": stopped_early,
             "final_train_loss": loss_value}
    if initial_val is not None:
        stats["val_loss_init"] = initial_val
    if cfg.save_final_checkpoint:
        save_checkpoint(ckpt_dir, steps_done, {"model": model.state_dict(),
                                               "optim": optimizer.state_dict(), "train_s": train_s},
                        keep_last=cfg.keep_last)
    return model, stats


def _optimizer(model, spec: ModelSpec, device: str):
    import torch

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=spec.lr, betas=(0.9, 0.95), eps=1e-8, fused=device.startswith("cuda"))


def _lr(spec: ModelSpec, step: int) -> float:
    """Linear warm-up to `lr`, then cosine decay to `lr * min_lr_ratio` at the last step."""
    if step < spec.warmup_steps:
        return spec.lr * (step + 1) / spec.warmup_steps
    progress = (step - spec.warmup_steps) / max(1, spec.steps - spec.warmup_steps)
    return spec.lr * (spec.min_lr_ratio + (1 - spec.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def _autocast(device: str, amp_dtype: str):
    import contextlib

    import torch

    if device.startswith("cuda") and amp_dtype in ("bfloat16", "float16"):
        return torch.autocast("cuda", dtype=getattr(torch, amp_dtype))
    return contextlib.nullcontext()


# ---------------------------------------------------------------------------------------------- evaluation


def evaluate_pair(target, draft, val_tokens: np.ndarray, cfg: TrainPairConfig, device: str,
                  amp_dtype: str) -> dict[str, float]:
    """Validation loss of both models and the draft's greedy next-token agreement with the target."""
    import torch

    from ssd.training.objectives import greedy_agreement, next_token_loss
    from ssd.training.windows import eval_windows

    inputs, targets = eval_windows(val_tokens, cfg.seq_len, cfg.eval_tokens)
    sums = {"target_val_loss": 0.0, "draft_val_loss": 0.0, "greedy_agreement": 0.0}
    with torch.no_grad(), _autocast(device, amp_dtype):
        for i in range(0, len(inputs), cfg.eval_batch_size):
            x = torch.from_numpy(inputs[i:i + cfg.eval_batch_size]).to(device)
            y = torch.from_numpy(targets[i:i + cfg.eval_batch_size]).to(device)
            t_logits = target(input_ids=x).logits
            d_logits = draft(input_ids=x).logits
            weight = x.shape[0] / len(inputs)
            sums["target_val_loss"] += next_token_loss(t_logits, y).item() * weight
            sums["draft_val_loss"] += next_token_loss(d_logits, y).item() * weight
            sums["greedy_agreement"] += greedy_agreement(d_logits, t_logits).item() * weight
    return {**sums, "val_tokens": int(inputs.size)}


def _val_loss(model, val_tokens: np.ndarray, cfg: TrainPairConfig, device: str, amp_dtype: str,
              quick: bool = False) -> float:
    """Mean validation loss over `eval_tokens` (or a quarter of them when `quick`)."""
    import torch

    from ssd.training.objectives import next_token_loss
    from ssd.training.windows import eval_windows

    inputs, targets = eval_windows(val_tokens, cfg.seq_len, max(cfg.seq_len, cfg.eval_tokens // (4 if quick else 1)))
    model.eval()
    total = 0.0
    with torch.no_grad(), _autocast(device, amp_dtype):
        for i in range(0, len(inputs), cfg.eval_batch_size):
            x = torch.from_numpy(inputs[i:i + cfg.eval_batch_size]).to(device)
            y = torch.from_numpy(targets[i:i + cfg.eval_batch_size]).to(device)
            total += next_token_loss(model(input_ids=x).logits, y).item() * x.shape[0]
    return total / len(inputs)


# -------------------------------------------------------------------------------------------------- setup


def _corpus_dir(cfg: TrainPairConfig) -> Path:
    from common.data.text import build_tiny_corpus, default_corpus_dir

    path = Path(cfg.corpus_dir) if cfg.corpus_dir else default_corpus_dir(cfg.corpus)
    if cfg.corpus == "tiny" and not (path / "manifest.json").exists():
        build_tiny_corpus(path, seed=0)
    if not (path / "manifest.json").exists():
        raise ConfigError(f"corpus_dir={str(path)!r} holds no corpus (no manifest.json); build it with "
                          f"`make corpus` (python -m common.data.text build --out {path}) or set corpus=tiny")
    return path


def _load_data(cfg: TrainPairConfig, corpus: Path) -> dict[str, Any]:
    from common.data.text import eos_id, load_split, load_tokenizer

    tokenizer = load_tokenizer(corpus)
    train = load_split(corpus, "train", max_tokens=cfg.max_train_tokens or None)  # opens only the shards it needs
    if cfg.max_train_tokens:
        train = train[:cfg.max_train_tokens]
    val = load_split(corpus, "val")
    vocab = len(tokenizer)
    vocab_size = -(-vocab // cfg.vocab_multiple) * cfg.vocab_multiple
    return {"tokenizer": tokenizer, "train": train, "val": val, "vocab_size": vocab_size, "eos_id": eos_id(corpus),
            "pad_id": tokenizer.pad_token_id, "manifest_sha": _manifest_digest(corpus)}


def _manifest_digest(corpus: Path) -> str:
    return hashlib.sha256((corpus / "manifest.json").read_bytes()).hexdigest()[:16]


def _fingerprint_keys(cfg: TrainPairConfig, name: str, data: dict[str, Any]) -> dict[str, Any]:
    """Everything that determines the model `name` (for the draft, the target's too); its hash names the model's
    checkpoint folder and marks its export."""
    keys = {"corpus": data["manifest_sha"], "max_train_tokens": cfg.max_train_tokens, "seq_len": cfg.seq_len,
            "context_length": cfg.context_length, "rope_theta": cfg.rope_theta, "vocab": data["vocab_size"],
            "seed": cfg.seed, "dtype": cfg.dtype, "grad_clip": cfg.grad_clip, "export_dtype": cfg.export_dtype,
            "target": dataclasses.asdict(cfg.target)}
    if name == "draft":
        keys["draft"] = dataclasses.asdict(cfg.draft)
    return keys


def _default_out_dir(scale: str) -> Path:
    from common.paths import data_dir

    return data_dir() / "ssd" / f"pair_{scale}"


if __name__ == "__main__":
    main()
