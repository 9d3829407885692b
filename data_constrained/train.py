"""Train one Llama-style decoder on a fixed token budget for several epochs (Kim et al. 2025, section 2).

    python -m data_constrained.train model=small recipe=tuned data.token_budget=65536 epochs=8
    python -m data_constrained.train -m model=tiny,small weight_decay=0.1,0.8,3.2   # per-size tuning sweep
    torchrun --nproc_per_node=8 -m data_constrained.train scale=gpu model=m150 ...   # DDP

Reads top to bottom: config, setup (data, model, optimizer, resume), the loop (cosine LR, grad accumulation,
bf16 autocast, clipping), held-out eval, checkpoints, summary. Throughput: the batches are gathered on the device
from one index tensor made at the start (data.DeviceBatches), the output layer and the loss are one chunked pass
(linear_cross_entropy: no (B, T, V) float32 logits), losses stay on the device until a log step (the only host
sync of the loop), the decoder body is `torch.compile`d on CUDA (point TORCHINDUCTOR_CACHE_DIR at a kept folder
to reuse compiled kernels across processes), and the summary holds the steady-state tokens/s and MFU (against
`peak_tflops`, and `measured_peak_tflops` when set). Every held-out number is scored in float32
(`SCORING_DTYPE`): validation loss (`data.eval_split`, for choices), test loss (`data.test_split`, reported), and
with `save_logprobs` the per-token test log-probs for ensembles scored later on the CPU. Resuming refuses a config that differs from the run
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
from collections.abc import Iterator
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
from common.results import atomic_write_text
from common.run_config import IGNORED, check_resume, record_run_config
from common.seed import seed_everything
from data_constrained.data import (
    DataConfig,
    DeviceBatches,
    EpochLoader,
    corpus_dir,
    eval_windows,
    load_tokens,
    vocab_size_of,
)
from data_constrained.export import export_hf
from data_constrained.linear_cross_entropy import (
    compiled_chunk_loss,
    linear_cross_entropy,
    target_logprobs_chunked,
)
from data_constrained.model import ModelConfig, Transformer, weight_decay_groups
from data_constrained.model_checkpoint import checkpoint_state

# Keys that may change when a run resumes (common.run_config): where this chunk stops, how often it logs, evaluates
# and checkpoints, what it writes besides checkpoints, and where and how fast it runs. Everything else (model,
# data, optimizer, schedule: `epochs` sets the schedule's length, `max_steps` only this chunk's end, dtype, seeds,
# labels) must match the run's run_config.json.
RESUME_IGNORED = (*IGNORED, "max_steps", "log_every", "eval_every", "checkpoint_every", "keep_last", "save_final",
                  "export_hf", "record_dir", "device", "cpu_threads", "compile", "peak_tflops",
                  "measured_peak_tflops", "save_logprobs", "loss_chunk_rows", "data.test_split", "data.test_tokens")
SCORING_DTYPE = "float32"
LOGPROBS_FILE = "test_logprobs.npy"  # every held-out number (single runs, ensembles, students) is scored in float32


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
    peak_tflops: float = 989.0  # per device, for MFU: the datasheet's dense bf16 peak (H100/H200 SXM); per scale
    measured_peak_tflops: float = 0.0  # >0: also report MFU against this measured peak (H200: 790 bf16 GEMM)
    save_logprobs: bool = False  # write the per-token test log-probs (float16) for ensembles scored later
    loss_chunk_rows: int = 4096  # rows per chunk of the fused output-layer loss (linear_cross_entropy)
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
        check_range("measured_peak_tflops", self.measured_peak_tflops, 0.0)
        check_range("loss_chunk_rows", self.loss_chunk_rows, 1)
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


@contextlib.contextmanager
def fp32_scoring(device: str) -> Iterator[None]:
    """Autocast off and float32 matrix products at full precision (no TF32) inside: the one scoring precision."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        with torch.no_grad(), torch.autocast(device.split(":")[0], enabled=False):
            yield
    finally:
        torch.set_float32_matmul_precision(previous)


def target_logprobs(model: Transformer, x: torch.Tensor, y: torch.Tensor, batch_size: int = 32,
                    device: str = "cpu", chunk_rows: int = 4096) -> torch.Tensor:
    """log p(y_t | x_<=t) for every held-out target, (N, T) float32 on the CPU, scored in float32 (SCORING_DTYPE)
    whatever precision the model trained in; the output layer goes chunk by chunk (no (B, T, V) logits)."""
    was_training = model.training
    model.eval()
    out = []
    with fp32_scoring(device):
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
            h = model.hidden_states(xb).float()
            logp = target_logprobs_chunked(h.flatten(0, 1), model.lm_head.weight, yb.flatten(), chunk_rows)
            out.append(logp.view_as(yb).cpu())
    model.train(was_training)
    return torch.cat(out)


def build_model(cfg: TrainConfig) -> Transformer:
    """The model of `cfg` after checking the vocabulary against the corpus's tokenizer."""
    vocab = vocab_size_of(cfg.data)
    if cfg.model.vocab_size < vocab:
        raise ConfigError(f"model.vocab_size={cfg.model.vocab_size} is smaller than the tokenizer's {vocab}")
    return Transformer(cfg.model)


class LossModule(nn.Module):
    """(x, y[, teacher]) -> mean loss of the model, the output layer fused with the loss (linear_cross_entropy);
    the module DDP wraps. With `compile`, the decoder body (`hidden_states`) and the per-chunk softmax arithmetic of
    the loss are `torch.compile`d; the chunk loop and its matrix products stay eager. `teacher`: rows -> teacher
    log-probs of those rows (distillation)."""

    def __init__(self, model: Transformer, compile_body: bool, compute_dtype: torch.dtype, chunk_rows: int,
                 alpha: float = 0.0, temperature: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.hidden = torch.compile(model.hidden_states) if compile_body else model.hidden_states
        self.chunk_loss = compiled_chunk_loss() if compile_body else None
        self.compute_dtype, self.chunk_rows = compute_dtype, chunk_rows
        self.alpha, self.temperature = alpha, temperature

    def forward(self, x: torch.Tensor, y: torch.Tensor, teacher=None) -> torch.Tensor:
        h = self.hidden(x)
        return linear_cross_entropy(h.flatten(0, 1), self.model.lm_head.weight, y.flatten(), teacher=teacher,
                                    alpha=self.alpha, temperature=self.temperature,
                                    compute_dtype=self.compute_dtype, chunk_rows=self.chunk_rows,
                                    chunk_loss=self.chunk_loss)


def train_run(cfg: TrainConfig, out_dir: str | Path, teacher=None, distill_alpha: float = 0.0,
              distill_temperature: float = 1.0, stop_at: float | None = None) -> tuple[Transformer, dict[str, Any]]:
    """Train (or resume) one run in `out_dir`; returns (model, summary).

    `teacher`: an `ensemble.EnsembleTeacher` (its `logprobs_fn(x)` gives the teacher's log-probabilities of a
    batch, chunk by chunk); the loss becomes (1 - distill_alpha) * CE(data) + distill_alpha * KL(teacher || student)
    (see distill.py). No step waits for the device: losses are summed on it and read every `log_every` steps (also
    where a diverged run is caught: it stops, and its summary says `diverged`). `stop_at`: a `time.monotonic()`
    deadline checked at those log steps; a run still training then stops and says `timed_out` (a chunk's guard
    against an estimate that was too low: its tokens/s are kept, the run itself is not a result).
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
    compute_dtype = torch_dtype("bfloat16") if dtype == "bfloat16" else torch.float32
    fwd = LossModule(model, cfg.compile and device.startswith("cuda"), compute_dtype, cfg.loss_chunk_rows,
                     distill_alpha, distill_temperature)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        fwd = DistributedDataParallel(fwd, device_ids=[local_rank] if device.startswith("cuda") else None)
    autocast = torch.autocast(device.split(":")[0], dtype=torch_dtype("bfloat16"), enabled=dtype == "bfloat16")
    flops_per_token = model.flops_per_token(cfg.seq_len) + (teacher.forward_flops_per_token(cfg.seq_len)
                                                            if teacher is not None else 0.0)
    batches = DeviceBatches(loader, device, start_step, run_steps, global_batch)

    def evaluate() -> float:
        logp = target_logprobs(model, val_x, val_y, cfg.batch_size, device, cfg.loss_chunk_rows)
        return -logp.double().mean().item()

    # ---------------------------------------------------------------- the loop
    name = cfg.name or (f"{cfg.recipe}_d{cfg.model.d_model}_L{cfg.model.n_layers}_wd{cfg.weight_decay:g}"
                        f"_ep{cfg.epochs:g}_D{cfg.data.token_budget}_s{cfg.seed}")
    logger = RunLogger(cfg.logger if master else LoggerConfig(backend="jsonl", mode="disabled", progress=False),
                       out_dir if master else out_dir / f"rank{rank}", config=as_dict(cfg), name=name,
                       resume_step=start_step if cfg.resume else None)
    train_loss, diverged, timed_out, done = float("nan"), False, False, start_step
    clock = IntervalClock(device, start_step)
    with logger:
        for step in logger.progress(range(start_step, run_steps), desc=name):
            lr = lr_at(step, total_steps, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss_sum = torch.zeros((), device=device)
            for micro in range(cfg.grad_accum):
                x, y = batches.micro(step, rank, world, micro, cfg.batch_size)
                sync = world == 1 or micro == cfg.grad_accum - 1
                with autocast, (fwd.no_sync() if not sync else contextlib.nullcontext()):
                    teacher_fn = teacher.logprobs_fn(x) if teacher is not None else None
                    loss = fwd(x, y, teacher_fn)
                    (loss / cfg.grad_accum).backward()
                loss_sum += loss.detach()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            done = step + 1

            if done % cfg.log_every == 0 or done == run_steps:
                train_loss = (loss_sum / cfg.grad_accum).item()  # the one wait for the device per log interval
                tokens = clock.tick((done - clock.step) * tokens_per_step, done)
                if master:
                    mfu = flops_per_token * tokens["tokens_per_s"] / (cfg.peak_tflops * 1e12 * world)
                    logger.log({"train/loss": train_loss, "lr": lr, "tokens_per_s": tokens["tokens_per_s"],
                                "mfu": mfu, "epoch": done * global_batch / loader.n_windows}, step=done)
                if not math.isfinite(train_loss):
                    diverged = True
                    break
                if stop_at is not None and done < run_steps and time.monotonic() > stop_at:
                    timed_out = True
                    break
            if cfg.eval_every and done % cfg.eval_every == 0 and done != run_steps:
                with clock.paused():
                    logger.log({"val/loss": evaluate()}, step=done)
            if master and cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done != run_steps:
                with clock.paused():
                    save_checkpoint(ckpt_dir, done, checkpoint_state(model, optimizer), cfg.keep_last)
        train_s = clock.total()

        # ------------------------------------------------------------ final eval, checkpoint, summary
        val_loss = evaluate()
        test = score_test(model, cfg, device, out_dir if master and cfg.save_logprobs else None)
        steady = clock.steady_tokens_per_s()
        summary = {
            "name": name, "recipe": cfg.recipe, "seed": cfg.seed, "data_seed": data_seed, "val_loss": val_loss,
            **test, "train_loss": train_loss, "diverged": diverged, "timed_out": timed_out,
            "n_params": model.num_params(), "n_params_total": model.num_params(non_embedding=False),
            "d_model": cfg.model.d_model, "n_layers": cfg.model.n_layers, "weight_decay": cfg.weight_decay,
            "lr": cfg.lr, "epochs": cfg.epochs, "token_budget": cfg.data.token_budget, "corpus": cfg.data.corpus,
            "steps": done, "total_steps": total_steps, "tokens_seen": done * tokens_per_step,
            "tokens_per_s": (done - start_step) * tokens_per_step / max(train_s, 1e-9),
            "steady_tokens_per_s": steady, "flops_per_token": flops_per_token,
            "mfu": flops_per_token * steady / (cfg.peak_tflops * 1e12 * world), "peak_tflops": cfg.peak_tflops,
            "mfu_measured_peak": (flops_per_token * steady / (cfg.measured_peak_tflops * 1e12 * world)
                                  if cfg.measured_peak_tflops else None),
            "train_s": train_s, "wall_s": clock.since_start(), "scoring_dtype": SCORING_DTYPE,
            "device": describe_device(device), "world_size": world,
        }
        if done > start_step:  # a resumed run that was already done logged its final loss at this step before
            logger.log({"val/loss": val_loss}, step=done)
        logger.summary(summary)
    if master:
        if cfg.save_final and not diverged and not timed_out:
            save_checkpoint(ckpt_dir, done, checkpoint_state(model, optimizer), cfg.keep_last)
        if cfg.export_hf:
            export_hf(model, out_dir / "hf", corpus_dir(cfg.data))
        atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        if cfg.record_dir:
            atomic_write_text(Path(cfg.record_dir) / f"{name}.json", json.dumps(summary, indent=2) + "\n")
    return model, summary


def score_test(model: Transformer, cfg: TrainConfig, device: str, logprob_dir: Path | None) -> dict[str, Any]:
    """The reported held-out numbers: loss on the first `data.test_tokens` of `data.test_split` (all: 0), and with
    `logprob_dir` the per-token log-probs in `<logprob_dir>/test_logprobs.npy` (float16, flat) - what ensembles of
    any K are scored from later - with the exact float64 sum and the float16 rounding of the mean."""
    if not cfg.data.test_split:
        return {"test_loss": None, "test_tokens": 0}
    x, y = eval_windows(load_tokens(cfg.data, cfg.data.test_split), cfg.seq_len, cfg.data.test_tokens)
    logp = target_logprobs(model, x, y, cfg.batch_size, device, cfg.loss_chunk_rows).flatten().double()
    result: dict[str, Any] = {"test_loss": -logp.mean().item(), "test_tokens": logp.numel()}
    if logprob_dir is not None:
        import numpy as np

        half = logp.numpy().astype(np.float16)
        path = logprob_dir / LOGPROBS_FILE
        np.save(path, half)
        result["test_logprobs"] = {"file": LOGPROBS_FILE, "tokens": int(half.size), "sum": logp.sum().item(),
                                   "float16_mean_error": float(half.astype(np.float64).mean() - logp.mean().item())}
    return result


class IntervalClock:
    """Wall time of the training loop between log points (each comes after a device sync), minus paused spans
    (mid-run evals, checkpoints). `steady_tokens_per_s` leaves out the first interval, which holds the compile and
    warm-up, when there are later ones."""

    def __init__(self, device: str, step: int = 0) -> None:
        self.device, self.step = device, step
        self.start = self.last = time.perf_counter()
        self.paused_s, self.intervals = 0.0, []

    def tick(self, tokens: int, step: int) -> dict[str, float]:
        now = time.perf_counter()
        seconds = max(now - self.last - self.paused_s, 1e-9)
        self.intervals.append((tokens, seconds))
        self.last, self.paused_s, self.step = now, 0.0, step
        return {"tokens_per_s": tokens / seconds}

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.paused_s += time.perf_counter() - t0

    def total(self) -> float:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - self.start

    def since_start(self) -> float:
        return time.perf_counter() - self.start

    def steady_tokens_per_s(self) -> float:
        spans = self.intervals[1:] if len(self.intervals) > 1 else self.intervals
        seconds = sum(s for _, s in spans)
        return sum(t for t, _ in spans) / seconds if seconds > 0 else 0.0


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
