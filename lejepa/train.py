"""Train a LeWM world model (or a baseline) on an offline pixel dataset: `python -m lejepa.train`.

    python -m lejepa.train                                   # cpu scale, Two-Room, LeWM lambda=0.1
    python -m lejepa.train model.sigreg_lambda=0 name=lewm_lambda0
    python -m lejepa.train model.objective=pldm name=pldm
    python -m lejepa.train +experiment=two_room_gpu         # paper-size model on one GPU

Reads top to bottom: data, model, optimiser, resume, loop (loss, clip, step, log, checkpoint), final checkpoint
and a JSON summary (`<ckpt_dir>/train_summary.json`). Resumes from the newest checkpoint in `ckpt_dir`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from common.config import ConfigError, LoggerConfig, as_dict, check_choice, check_range, hydra_app, run_dir
from common.device import choose_device, choose_dtype, describe_device, torch_dtype
from common.logging import RunLogger
from common.paths import data_dir
from common.seed import seed_everything
from lejepa.checkpointing import restore, restore_optimizer, resume_state, save_state
from lejepa.envs.dataset import load_dataset
from lejepa.models.encoder import EncoderConfig, count_parameters
from lejepa.models.lewm import OBJECTIVES, WorldModel, WorldModelConfig
from lejepa.models.predictor import PredictorConfig


@dataclass
class DataConfig:
    dir: str = ""  # empty: <data_dir>/lejepa/<env>
    env: str = "two_room"
    seq_len: int = 4
    val_episodes: int = 40


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.05
    batch_size: int = 64
    steps: int = 600
    warmup: int = 50
    grad_clip: float = 1.0


@dataclass
class TrainConfig:
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    name: str = "lewm"
    scale: str = "cpu"
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    model: WorldModelConfig = field(default_factory=WorldModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ckpt_dir: str = ""  # empty: <data_dir>/lejepa/runs/<data.env>/<name>
    ckpt_every: int = 200
    keep_last: int = 2
    log_every: int = 20
    force_resume: bool = False  # continue a run's checkpoints under a config that differs from its run_config.json

    def __post_init__(self) -> None:
        check_choice("scale", self.scale, ("tiny", "cpu", "gpu"))
        check_range("seed", self.seed, 0)
        check_choice("model.objective", self.model.objective, OBJECTIVES)
        check_range("model.sigreg_lambda", self.model.sigreg_lambda, 0.0)
        check_range("model.sigreg_directions", self.model.sigreg_directions, 1)
        check_range("model.sigreg_knots", self.model.sigreg_knots, 2)
        for term, coeff in self.model.pldm_coeffs.items():
            check_range(f"model.pldm_coeffs.{term}", coeff, 0.0)
        check_range("model.decoder_width", self.model.decoder_width, 1)
        check_encoder("model.encoder", self.model.encoder)
        check_predictor("model.predictor", self.model.predictor)
        check_range("data.seq_len", self.data.seq_len, 2, self.model.predictor.max_len + 1)
        check_range("data.val_episodes", self.data.val_episodes, 1)
        check_range("optim.steps", self.optim.steps, 1)
        check_range("optim.lr", self.optim.lr, 0.0, low_open=True)
        check_range("optim.weight_decay", self.optim.weight_decay, 0.0)
        check_range("optim.batch_size", self.optim.batch_size, 1)
        check_range("optim.warmup", self.optim.warmup, 0, self.optim.steps)
        check_range("optim.grad_clip", self.optim.grad_clip, 0.0, low_open=True)
        check_range("ckpt_every", self.ckpt_every, 1)
        check_range("keep_last", self.keep_last, 0)
        check_range("log_every", self.log_every, 1)
        if self.model.encoder.latent_dim != self.model.predictor.latent_dim:
            raise ConfigError(f"model.predictor.latent_dim={self.model.predictor.latent_dim} must equal "
                              f"model.encoder.latent_dim={self.model.encoder.latent_dim}")


def check_encoder(prefix: str, enc: EncoderConfig) -> None:
    """Range checks of a ViT encoder's config, keys named `<prefix>.<field>` (train and pretrain use it)."""
    for key in ("image_size", "channels", "patch_size", "width", "depth", "heads", "projector_hidden",
                "latent_dim"):
        check_range(f"{prefix}.{key}", getattr(enc, key), 1)
    if enc.image_size % enc.patch_size:
        raise ConfigError(f"{prefix}.image_size={enc.image_size} is not allowed; expected a multiple of "
                          f"{prefix}.patch_size={enc.patch_size}")
    if enc.width % enc.heads:
        raise ConfigError(f"{prefix}.width={enc.width} is not allowed; expected a multiple of "
                          f"{prefix}.heads={enc.heads}")
    check_range(f"{prefix}.mlp_ratio", enc.mlp_ratio, 0.0, low_open=True)
    check_range(f"{prefix}.dropout", enc.dropout, 0.0, 1.0, high_open=True)


def check_predictor(prefix: str, pred: PredictorConfig) -> None:
    """Range checks of the action-conditioned predictor's config, keys named `<prefix>.<field>`."""
    for key in ("latent_dim", "action_dim", "width", "depth", "heads", "max_len"):
        check_range(f"{prefix}.{key}", getattr(pred, key), 1)
    if pred.width % pred.heads:
        raise ConfigError(f"{prefix}.width={pred.width} is not allowed; expected a multiple of "
                          f"{prefix}.heads={pred.heads}")
    check_range(f"{prefix}.mlp_ratio", pred.mlp_ratio, 0.0, low_open=True)
    check_range(f"{prefix}.dropout", pred.dropout, 0.0, 1.0, high_open=True)


def dataset_dir(cfg_dir: str, env: str) -> Path:
    return Path(cfg_dir) if cfg_dir else data_dir() / "lejepa" / env


def checkpoint_dir(cfg: TrainConfig) -> Path:
    return Path(cfg.ckpt_dir) if cfg.ckpt_dir else data_dir() / "lejepa" / "runs" / cfg.data.env / cfg.name


def to_float(frames: torch.Tensor) -> torch.Tensor:
    """(..., S, S, 3) uint8 -> (..., 3, S, S) float32 in [0, 1]."""
    return frames.movedim(-1, -3).float().div(255.0)


def sample_batch(frames: torch.Tensor, actions: torch.Tensor, batch: int, seq_len: int,
                 gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows: frames (B, L, 3, S, S) float, actions (B, L-1, A) from episodes (E, T+1, ...)."""
    e = torch.randint(frames.shape[0], (batch,), generator=gen)
    t = torch.randint(frames.shape[1] - seq_len + 1, (batch,), generator=gen)
    idx = t[:, None] + torch.arange(seq_len)
    f = frames[e[:, None], idx]
    a = actions[e[:, None], idx[:, :-1]]
    return to_float(f), a


def train(cfg: TrainConfig, out_dir: Path | None = None) -> dict:
    """Train and return the summary dict (also written to `<ckpt_dir>/train_summary.json`)."""
    start = time.perf_counter()
    seed_everything(cfg.seed)
    device = choose_device(cfg.device)
    dtype = torch_dtype(choose_dtype(cfg.dtype, device))
    data = load_dataset(dataset_dir(cfg.data.dir, cfg.data.env))
    manifest = data["manifest"]
    if manifest["image_size"] != cfg.model.encoder.image_size:
        raise ConfigError(f"model.encoder.image_size={cfg.model.encoder.image_size} but the dataset has "
                          f"image_size={manifest['image_size']}")
    n_train = len(data["frames"]) - cfg.data.val_episodes
    if n_train < 1:
        raise ConfigError(f"data.val_episodes={cfg.data.val_episodes} leaves no training episode "
                          f"(dataset has {len(data['frames'])})")
    frames = torch.from_numpy(data["frames"][:n_train])
    actions = torch.from_numpy(data["actions"][:n_train])

    model = WorldModel(cfg.model).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    ckpt_dir = checkpoint_dir(cfg)
    step0, state = resume_state(ckpt_dir, as_dict(cfg), cfg.force_resume)
    if state is not None:
        restore(model, state["model"])
        restore_optimizer(opt, state["optim"])
    gen = torch.Generator().manual_seed(cfg.seed + step0)
    sig_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1 + step0)
    extra = {"model_config": as_dict(cfg.model), "env": cfg.data.env, "name": cfg.name}
    history: list[dict] = []
    out_dir = out_dir or run_dir()
    # log steps are 0-based update indices, checkpoint steps count updates done: update step0 is logged next
    with RunLogger(cfg.logger, out_dir, config=as_dict(cfg), name=f"train-{cfg.name}",
                   resume_step=max(step0 - 1, 0)) as log:
        model.train()
        for step in log.progress(range(step0, cfg.optim.steps), total=cfg.optim.steps - step0, desc=cfg.name):
            for group in opt.param_groups:
                group["lr"] = cfg.optim.lr * lr_factor(step, cfg.optim.warmup, cfg.optim.steps)
            f, a = sample_batch(frames, actions, cfg.optim.batch_size, cfg.data.seq_len, gen)
            with torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=dtype != torch.float32):
                terms = model.loss(f.to(device, non_blocking=True), a.to(device, non_blocking=True), sig_gen)
            if not torch.isfinite(terms["loss"]):
                raise FloatingPointError(f"non-finite loss at step {step}: {terms}")
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            opt.step()
            if step % cfg.log_every == 0 or step == cfg.optim.steps - 1:
                record = {k: float(v.detach()) for k, v in terms.items()}
                history.append({"step": step, **record})
                log.log(record, step=step)
            if (step + 1) % cfg.ckpt_every == 0 and step + 1 < cfg.optim.steps:
                save_state(ckpt_dir, step + 1, {"model": model}, opt, extra, cfg.keep_last)
        save_state(ckpt_dir, cfg.optim.steps, {"model": model}, opt, extra, cfg.keep_last)
        summary = {"name": cfg.name, "objective": cfg.model.objective, "sigreg_lambda": cfg.model.sigreg_lambda,
                   "params": count_parameters(model), "encoder_params": count_parameters(model.encoder),
                   "predictor_params": count_parameters(model.predictor), "steps": cfg.optim.steps,
                   "resumed_from": step0, "history": history, "device": describe_device(device),
                   "wall_s": time.perf_counter() - start, "dataset_sha256": manifest["sha256"]}
        log.summary({k: v for k, v in summary.items() if isinstance(v, int | float)})
    (ckpt_dir / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up then cosine decay to 10%."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@hydra_app("lejepa", "train", TrainConfig)
def main(cfg: TrainConfig) -> None:
    np.set_printoptions(precision=4)
    train(cfg)


if __name__ == "__main__":
    main()
