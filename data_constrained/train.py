"""Train one Llama-style decoder on a fixed token budget for several epochs (Kim et al. 2025, section 2).

    python -m data_constrained.train model=small recipe=tuned data.token_budget=65536 epochs=8
    python -m data_constrained.train -m model=tiny,small weight_decay=0.1,0.8,3.2   # per-size tuning sweep
    torchrun --nproc_per_node=8 -m data_constrained.train scale=gpu model=m150 ...   # DDP

Reads top to bottom: config, setup (data, model, optimizer, resume), the loop (cosine LR, grad accumulation,
bf16 autocast, clipping), held-out eval, checkpoints, summary. Resuming refuses a config that differs from the run
dir's `run_config.json` (common.run_config; `force_resume=true` overrides, `RESUME_IGNORED` lists what may
change), falls back past a corrupt latest checkpoint, and continues metrics.jsonl and the W&B run without
duplicate steps. `train_run(cfg, out_dir)` is the same thing as a
function (used by the sweep, ensemble and distillation entry points); it returns the model and a summary dict.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from common.checkpoint import (
    list_checkpoints,
    load_checkpoint,
    load_latest_checkpoint,
    save_checkpoint,
    torch_optimizer_state,
)
from common.config import ConfigError, LoggerConfig, as_dict, check_choice, check_range, hydra_app, run_dir
from common.device import choose_device, choose_dtype, describe_device, torch_dtype
from common.logging import RunLogger
from common.run_config import IGNORED, check_resume, record_run_config
from common.seed import seed_everything
from data_constrained.data import (
    DataConfig,
    EpochLoader,
    corpus_dir,
    eval_windows,
    load_tokens,
    vocab_size_of,
)
from data_constrained.export import export_hf
from data_constrained.model import ModelConfig, Transformer, lm_loss, weight_decay_groups
from data_constrained.model_checkpoint import checkpoint_state

# Keys that may change when a run resumes (common.run_config): where this chunk stops, how often it logs, evaluates
# and checkpoints, what it writes besides checkpoints, and where and how fast it runs. Everything else (model,
# data, optimizer, schedule: `epochs` sets the schedule's length, `max_steps` only this chunk's end, dtype, seeds,
# labels) must match the run's run_config.json.
RESUME_IGNORED = (*IGNORED, "max_steps", "log_every", "eval_every", "checkpoint_every", "keep_last", "save_final",
                  "export_hf", "record_dir", "device", "cpu_threads", "compile", "peak_tflops")


@dataclass
class TrainConfig:
    """One training run. Global batch = batch_size * grad_accum * world_size sequences of seq_len tokens."""

    scale: str = "cpu"
    recipe: str = "default"  # a label for results; the recipe/ group sets the numbers below
    seed: int = 0
    data_seed: int = -1  # -1: same as seed (ensemble members differ in init and data order)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    epochs: float = 4.0
    seq_len: int = 64
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_frac: float = 0.05
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    device: str = "auto"
    cpu_threads: int = 1  # torch threads on the CPU (tiny models run fastest on one); 0: torch's default
    dtype: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    compile: bool = False  # torch.compile (used on CUDA only)
    max_steps: int = 0  # >0: stop after this many steps (schedule still spans the full run); for tests
    eval_every: int = 0  # 0: evaluate at the end only
    log_every: int = 10
    checkpoint_every: int = 0  # 0: only a final checkpoint (when save_final)
    save_final: bool = True
    keep_last: int = 2
    resume: bool = True
    force_resume: bool = False  # resume even when the config differs from the run dir's run_config.json
    init_from: str = ""  # a checkpoint whose weights start the run (continued pre-training); fresh optimizer
    peak_tflops: float = 989.0  # per device, for MFU (H100 SXM dense bf16); set per scale
    export_hf: bool = False
    record_dir: str = ""  # also write summary.json here as <name>.json (collected by `fit`)
    name: str = ""
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def __post_init__(self) -> None:
        check_choice("scale", self.scale, ("cpu", "gpu"))
        check_range("epochs", self.epochs, 0.0, low_open=True)
        check_range("seq_len", self.seq_len, 1)
        check_range("batch_size", self.batch_size, 1)
        check_range("grad_accum", self.grad_accum, 1)
        check_range("lr", self.lr, 0.0, low_open=True)
        check_range("min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        check_range("warmup_frac", self.warmup_frac, 0.0, 1.0, high_open=True)
        check_range("weight_decay", self.weight_decay, 0.0)
        check_range("beta1", self.beta1, 0.0, 1.0, high_open=True)
        check_range("beta2", self.beta2, 0.0, 1.0, high_open=True)
        check_range("grad_clip", self.grad_clip, 0.0)
        check_range("peak_tflops", self.peak_tflops, 0.0, low_open=True)
        check_range("max_steps", self.max_steps, 0)
        check_range("cpu_threads", self.cpu_threads, 0)
        check_range("seed", self.seed, 0)
        check_range("data_seed", self.data_seed, -1)
        check_range("eval_every", self.eval_every, 0)
        check_range("log_every", self.log_every, 1)
        check_range("checkpoint_every", self.checkpoint_every, 0)
        check_range("keep_last", self.keep_last, 0)
        check_model_extras("model", self.model)
        if self.seq_len > self.model.max_seq_len:
            raise ConfigError(f"seq_len={self.seq_len} exceeds model.max_seq_len={self.model.max_seq_len}")


def check_model_extras(prefix: str, model: ModelConfig) -> None:
    """The ModelConfig fields its own `__post_init__` leaves unchecked, keys named `<prefix>.<field>`."""
    check_range(f"{prefix}.n_kv_heads", model.n_kv_heads, 0)
    check_range(f"{prefix}.d_ff", model.d_ff, 0)
    check_range(f"{prefix}.multiple_of", model.multiple_of, 1)
    check_range(f"{prefix}.rope_theta", model.rope_theta, 0.0, low_open=True)
    check_range(f"{prefix}.norm_eps", model.norm_eps, 0.0, low_open=True)


def lr_at(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """Linear warmup to cfg.lr, then cosine decay to cfg.lr * min_lr_ratio at the last step."""
    warmup = max(1, round(cfg.warmup_frac * total_steps))
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - 1 - warmup))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def target_logprobs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 32,
                    device: str = "cpu", dtype: str = "float32") -> torch.Tensor:
    """log p(y_t | x_<=t) for every held-out target, (N, T) float32 on the CPU."""
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
            logits = model(xb)
        logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, yb.unsqueeze(-1)).squeeze(-1)
        out.append(logp.cpu())
    model.train()
    return torch.cat(out)


def build_model(cfg: TrainConfig) -> Transformer:
    """The model of `cfg` after checking the vocabulary against the corpus's tokenizer."""
    vocab = vocab_size_of(cfg.data)
    if cfg.model.vocab_size < vocab:
        raise ConfigError(f"model.vocab_size={cfg.model.vocab_size} is smaller than the tokenizer's {vocab}")
    return Transformer(cfg.model)


def train_run(cfg: TrainConfig, out_dir: str | Path, teacher=None, distill_alpha: float = 0.0,
              distill_temperature: float = 1.0) -> tuple[Transformer, dict[str, Any]]:
    """Train (or resume) one run in `out_dir`; returns (model, summary).

    `teacher`: a callable (B, T) ids -> (B, T, V) log-probabilities; the loss becomes
    (1 - distill_alpha) * CE(data) + distill_alpha * KL(teacher || student) (see distill.py).
    """
    out_dir = Path(out_dir)
    # ---------------------------------------------------------------- setup: devices, DDP, seeds
    world, rank, local_rank = (int(os.environ.get(k, d)) for k, d in
                               (("WORLD_SIZE", 1), ("RANK", 0), ("LOCAL_RANK", 0)))
    device = choose_device(cfg.device)
    if world > 1:
        import torch.distributed as dist

        if device.startswith("cuda"):
            device = f"cuda:{local_rank}"
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    dtype = choose_dtype(cfg.dtype, device)
    if device == "cpu" and cfg.cpu_threads > 0:
        torch.set_num_threads(cfg.cpu_threads)
    master = rank == 0
    seed_everything(cfg.seed)
    data_seed = cfg.seed if cfg.data_seed < 0 else cfg.data_seed

    # ---------------------------------------------------------------- data
    train_tokens = load_tokens(cfg.data, "train")
    loader = EpochLoader(train_tokens, cfg.data.token_budget, cfg.data.offset, cfg.seq_len, data_seed)
    val_x, val_y = eval_windows(load_tokens(cfg.data, cfg.data.eval_split), cfg.seq_len, cfg.data.eval_tokens)
    global_batch = cfg.batch_size * cfg.grad_accum * world
    total_steps = max(1, int(cfg.epochs * loader.n_windows) // global_batch)
    run_steps = min(total_steps, cfg.max_steps) if cfg.max_steps else total_steps
    tokens_per_step = global_batch * cfg.seq_len

    # ---------------------------------------------------------------- model, optimizer, resume
    ckpt_dir = out_dir / "checkpoints"
    resuming = cfg.resume and bool(list_checkpoints(ckpt_dir))
    if master:  # refuse a changed config before any state is loaded
        run_config = resume_config(cfg, teacher is not None, distill_alpha, distill_temperature)
        if resuming:
            check_resume(out_dir, run_config, cfg.force_resume, RESUME_IGNORED)
        else:
            record_run_config(out_dir, run_config, RESUME_IGNORED)
    model = build_model(cfg).to(device)
    optimizer = torch.optim.AdamW(weight_decay_groups(model, cfg.weight_decay), lr=cfg.lr,
                                  betas=(cfg.beta1, cfg.beta2), fused=device.startswith("cuda"))
    start_step = 0
    if cfg.init_from:
        if not Path(cfg.init_from).is_file():
            raise ConfigError(f"init_from={cfg.init_from}: no such checkpoint file")
        _, state = load_checkpoint(cfg.init_from)
        model.load_state_dict(state["model"])
    if resuming:
        start_step, state = load_latest_checkpoint(ckpt_dir)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(torch_optimizer_state(state["optim"]))
    run_steps = max(run_steps, start_step)  # a checkpoint past max_steps: nothing to train, never a step back
    fwd = model
    if cfg.compile and device.startswith("cuda"):
        fwd = torch.compile(model)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        fwd = DistributedDataParallel(fwd, device_ids=[local_rank] if device.startswith("cuda") else None)
    autocast = torch.autocast(device.split(":")[0], dtype=torch_dtype("bfloat16"), enabled=dtype == "bfloat16")
    flops_per_step = model.flops_per_token(cfg.seq_len) * tokens_per_step

    def evaluate() -> float:
        return -target_logprobs(model, val_x, val_y, cfg.batch_size, device, dtype).mean().item()

    # ---------------------------------------------------------------- the loop
    name = cfg.name or (f"{cfg.recipe}_d{cfg.model.d_model}_L{cfg.model.n_layers}_wd{cfg.weight_decay:g}"
                        f"_ep{cfg.epochs:g}_D{cfg.data.token_budget}_s{cfg.seed}")
    logger = RunLogger(cfg.logger if master else LoggerConfig(backend="jsonl", mode="disabled", progress=False),
                       out_dir if master else out_dir / f"rank{rank}", config=as_dict(cfg), name=name,
                       resume_step=start_step if cfg.resume else None)
    train_loss = float("nan")
    t_start = time.perf_counter()
    with logger:
        t_last, tokens_last = time.perf_counter(), 0
        for step in logger.progress(range(start_step, run_steps), desc=name):
            lr = lr_at(step, total_steps, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            indices = list(range(step * global_batch, (step + 1) * global_batch))[rank::world]
            loss_sum = 0.0
            for micro in range(cfg.grad_accum):
                x, y = loader.windows(indices[micro * cfg.batch_size:(micro + 1) * cfg.batch_size])
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                sync = world == 1 or micro == cfg.grad_accum - 1
                with autocast, (fwd.no_sync() if not sync else contextlib.nullcontext()):
                    logits = fwd(x)
                    loss = lm_loss(logits, y)
                    if teacher is not None:
                        loss = (1 - distill_alpha) * loss + distill_alpha * distill_kl(
                            logits, teacher(x), distill_temperature)
                    (loss / cfg.grad_accum).backward()
                loss_sum += loss.item()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            train_loss = loss_sum / cfg.grad_accum
            tokens_last += tokens_per_step

            done = step + 1
            if master and (done % cfg.log_every == 0 or done == run_steps):
                elapsed = max(time.perf_counter() - t_last, 1e-9)
                tok_s = tokens_last / elapsed
                mfu = flops_per_step * tokens_last / tokens_per_step / elapsed / (cfg.peak_tflops * 1e12 * world)
                logger.log({"train/loss": train_loss, "lr": lr, "tokens_per_s": tok_s, "mfu": mfu,
                            "epoch": done * global_batch / loader.n_windows}, step=done)
                t_last, tokens_last = time.perf_counter(), 0
            if cfg.eval_every and done % cfg.eval_every == 0 and done != run_steps:
                logger.log({"val/loss": evaluate()}, step=done)
            if master and cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done != run_steps:
                save_checkpoint(ckpt_dir, done, checkpoint_state(model, optimizer), cfg.keep_last)

        # ------------------------------------------------------------ final eval, checkpoint, summary
        val_loss = evaluate()
        wall = time.perf_counter() - t_start
        steps_run = run_steps - start_step
        summary = {
            "name": name, "recipe": cfg.recipe, "seed": cfg.seed, "val_loss": val_loss, "train_loss": train_loss,
            "n_params": model.num_params(), "n_params_total": model.num_params(non_embedding=False),
            "d_model": cfg.model.d_model, "n_layers": cfg.model.n_layers, "weight_decay": cfg.weight_decay,
            "lr": cfg.lr, "epochs": cfg.epochs, "token_budget": cfg.data.token_budget, "corpus": cfg.data.corpus,
            "steps": run_steps, "total_steps": total_steps, "tokens_seen": run_steps * tokens_per_step,
            "tokens_per_s": steps_run * tokens_per_step / max(wall, 1e-9), "wall_s": wall,
            "device": describe_device(device), "world_size": world,
        }
        if steps_run > 0:  # a resumed run that was already done logged its final loss at this step before
            logger.log({"val/loss": val_loss}, step=run_steps)
        logger.summary(summary)
    if master:
        if cfg.save_final:
            save_checkpoint(ckpt_dir, run_steps, checkpoint_state(model, optimizer), cfg.keep_last)
        if cfg.export_hf:
            export_hf(model, out_dir / "hf", corpus_dir(cfg.data))
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if cfg.record_dir:
            Path(cfg.record_dir).mkdir(parents=True, exist_ok=True)
            (Path(cfg.record_dir) / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    return model, summary


def distill_kl(student_logits: torch.Tensor, teacher_logprobs: torch.Tensor, temperature: float = 1.0
               ) -> torch.Tensor:
    """Mean over tokens of KL(teacher || student) in nats, with both at `temperature` (scaled by T^2).

    student_logits (B, T, V); teacher_logprobs (B, T, V) log-probabilities at temperature 1."""
    s = torch.log_softmax(student_logits.float() / temperature, dim=-1)
    t = torch.log_softmax(teacher_logprobs.float() / temperature, dim=-1)
    kl = (t.exp() * (t - s)).sum(-1)
    return kl.mean() * temperature**2


def resume_config(cfg: TrainConfig, distilled: bool, distill_alpha: float, distill_temperature: float
                  ) -> dict[str, Any]:
    """What a resumption of the run must match (common.run_config): the `TrainConfig` fields of `cfg` (an entry
    point's own fields, such as the ensemble's `members`, do not change this run), plus the distillation weights
    when `train_run` got a teacher."""
    config = {key: value for key, value in as_dict(cfg).items() if key in TrainConfig.__dataclass_fields__}
    if distilled:
        config["distill"] = {"alpha": distill_alpha, "temperature": distill_temperature}
    return config


@hydra_app("data_constrained", "train", TrainConfig)
def main(cfg: TrainConfig) -> float:
    """Hydra entry: train in the run folder; returns the held-out loss (for Hydra sweepers)."""
    _, summary = train_run(cfg, run_dir())
    print(json.dumps({k: summary[k] for k in ("name", "val_loss", "n_params", "tokens_per_s")}))
    return summary["val_loss"]


if __name__ == "__main__":
    main()
