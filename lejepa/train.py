"""Train a LeWM world model (or a baseline) on an offline pixel dataset: `python -m lejepa.train`.

    python -m lejepa.train                                   # cpu scale, Two-Room, LeWM
    python -m lejepa.train model.sigreg_lambda=0 name=lambda0
    python -m lejepa.train model.objective=pldm name=pldm
    python -m lejepa.train +experiment=push_t_gpu            # the authors' setup on one GPU

The authors' training protocol (le-wm train.py, config/train/*.yaml; stable-worldmodel scripts/train/lewm.py):
a sample is `history + num_preds` = 3 + 1 frames taken every `frameskip` = 5 env steps; the action of a model step
is the chunk of the 5 env actions leaving its frame, standardised per dimension over the training data (their
column normaliser) and concatenated (action input 5 x A); the predictor sees the 3 context frames and predicts the
3 next ones (teacher forcing); SIGReg per time step over the batch. AdamW, linear warm-up then cosine annealing,
gradient clipping 1.0, bf16 autocast on GPU.

Reads top to bottom: data, model, optimiser, resume, loop (loss, clip, step, log, collapse diagnostics,
checkpoint), final checkpoint and a JSON summary (`<ckpt_dir>/train_summary.json`). Resumes from the newest
checkpoint in `ckpt_dir`; `max_wall_s` ends a launch early with a checkpoint (a chunk), the next launch continues.
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
from common.results import write_result
from common.seed import seed_everything
from lejepa.checkpointing import load_state, restore, restore_optimizer, resume_state, save_state
from lejepa.collapse import latent_std, standardized_effective_rank, unit_variance_rank
from lejepa.envs.dataset import load_dataset
from lejepa.models.encoder import PIXEL_NORMS, EncoderConfig, count_parameters
from lejepa.models.lewm import OBJECTIVES, WorldModelConfig, build_world_model
from lejepa.models.predictor import PredictorConfig
from lejepa.probing import probe_targets, ridge_r2
from lejepa.sigreg import random_directions, sigreg


@dataclass
class DataConfig:
    dir: str = ""  # empty: <data_dir>/lejepa/<env>
    env: str = "two_room"
    frameskip: int = 5
    history: int = 3
    num_preds: int = 1
    val_episodes: int = 40
    on_device: bool = False  # keep the uint8 frames on the accelerator (GPU scale)


@dataclass
class OptimConfig:
    lr: float = 5e-5
    weight_decay: float = 1e-3
    batch_size: int = 128
    steps: int = 600
    warmup: int = 6
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0


@dataclass
class DiagnosticsConfig:
    every: int = 0  # 0: off; else every `every` steps and at the end
    frames: int = 1024  # held-out frames encoded for the measures
    probe_frames: int = 2048  # training frames the probe is fitted on


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
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    ckpt_dir: str = ""  # empty: <data_dir>/lejepa/runs/<data.env>/<name>
    ckpt_every: int = 200
    keep_last: int = 2
    log_every: int = 20
    max_wall_s: float = 0.0  # > 0: stop this launch (with a checkpoint) after this many seconds
    compile: bool = False  # torch.compile the training loss (faster steps on the GPU after ~1 min of compiling)
    write_results: bool = True  # experiments/lejepa/results/train_<env>_<name>_<scale>.json (curves, diagnostics)
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
        check_range("data.frameskip", self.data.frameskip, 1)
        check_range("data.history", self.data.history, 1)
        check_range("data.num_preds", self.data.num_preds, 1)
        check_range("data.history", self.data.history + self.data.num_preds, 2, self.model.predictor.max_len + 1)
        check_range("data.val_episodes", self.data.val_episodes, 1)
        check_range("optim.steps", self.optim.steps, 1)
        check_range("optim.lr", self.optim.lr, 0.0, low_open=True)
        check_range("optim.weight_decay", self.optim.weight_decay, 0.0)
        check_range("optim.batch_size", self.optim.batch_size, 2)
        check_range("optim.warmup", self.optim.warmup, 0, self.optim.steps)
        check_range("optim.min_lr_ratio", self.optim.min_lr_ratio, 0.0, 1.0)
        check_range("optim.grad_clip", self.optim.grad_clip, 0.0, low_open=True)
        check_range("diagnostics.every", self.diagnostics.every, 0)
        check_range("diagnostics.frames", self.diagnostics.frames, 8)
        check_range("diagnostics.probe_frames", self.diagnostics.probe_frames, 8)
        check_range("ckpt_every", self.ckpt_every, 1)
        check_range("keep_last", self.keep_last, 0)
        check_range("log_every", self.log_every, 1)
        check_range("max_wall_s", self.max_wall_s, 0.0)
        if self.model.objective == "patch_wm":
            if self.model.predictor.latent_dim != self.model.encoder.width:
                raise ConfigError(f"model.predictor.latent_dim={self.model.predictor.latent_dim} must equal "
                                  f"model.encoder.width={self.model.encoder.width} for objective=patch_wm")
            if not self.model.patch_encoder_ckpt:
                raise ConfigError("model.patch_encoder_ckpt is empty; objective=patch_wm needs the trained LeWM "
                                  "checkpoint whose encoder it freezes")
        elif self.model.encoder.latent_dim != self.model.predictor.latent_dim:
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
    check_choice(f"{prefix}.pixel_norm", enc.pixel_norm, PIXEL_NORMS)


def check_predictor(prefix: str, pred: PredictorConfig) -> None:
    """Range checks of the action-conditioned predictor's config, keys named `<prefix>.<field>`."""
    for key in ("latent_dim", "action_dim", "width", "depth", "heads", "max_len"):
        check_range(f"{prefix}.{key}", getattr(pred, key), 1)
    check_range(f"{prefix}.dim_head", pred.dim_head, 0)
    check_range(f"{prefix}.pred_proj_hidden", pred.pred_proj_hidden, 0)
    if not pred.dim_head and pred.width % pred.heads:
        raise ConfigError(f"{prefix}.width={pred.width} is not allowed with dim_head=0; expected a multiple of "
                          f"{prefix}.heads={pred.heads}")
    if pred.pred_proj_hidden and pred.residual:
        raise ConfigError(f"{prefix}.pred_proj_hidden={pred.pred_proj_hidden} needs {prefix}.residual=false")
    check_range(f"{prefix}.mlp_ratio", pred.mlp_ratio, 0.0, low_open=True)
    check_range(f"{prefix}.dropout", pred.dropout, 0.0, 1.0, high_open=True)


def dataset_dir(cfg_dir: str, env: str) -> Path:
    return Path(cfg_dir) if cfg_dir else data_dir() / "lejepa" / env


def checkpoint_dir(cfg: TrainConfig) -> Path:
    return Path(cfg.ckpt_dir) if cfg.ckpt_dir else data_dir() / "lejepa" / "runs" / cfg.data.env / cfg.name


def to_float(frames: torch.Tensor) -> torch.Tensor:
    """(..., S, S, 3) uint8 -> (..., 3, S, S) float32 in [0, 1]."""
    return frames.movedim(-1, -3).float().div(255.0)


def chunk_actions(actions: torch.Tensor, frameskip: int) -> torch.Tensor:
    """Env actions (..., K * frameskip, A) -> model-step actions (..., K, frameskip * A), chunks concatenated in
    time order (the loader's frameskip grouping)."""
    *lead, n, a = actions.shape
    return actions.reshape(*lead, n // frameskip, frameskip * a)


def sample_batch(frames: torch.Tensor, actions: torch.Tensor, batch: int, seq_len: int, frameskip: int,
                 gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows: frames (B, L, 3, S, S) float at env steps t0, t0 + fs, ..., and actions (B, L-1, fs * A)
    (the env actions t0 .. t0 + (L-1) fs - 1 in chunks), from episodes frames (E, T+1, ...), actions (E, T, A)."""
    span = (seq_len - 1) * frameskip
    e = torch.randint(frames.shape[0], (batch,), generator=gen).to(frames.device)
    t = torch.randint(frames.shape[1] - span, (batch,), generator=gen).to(frames.device)
    idx = t[:, None] + frameskip * torch.arange(seq_len, device=frames.device)
    f = frames[e[:, None], idx]
    a = actions[e[:, None], t[:, None] + torch.arange(span, device=frames.device)]
    return to_float(f), chunk_actions(a, frameskip)


def train(cfg: TrainConfig, out_dir: Path | None = None) -> dict:
    """Train and return the summary dict (also written to `<ckpt_dir>/train_summary.json`)."""
    start = time.perf_counter()
    seed_everything(cfg.seed)
    device = choose_device(cfg.device)
    dtype = torch_dtype(choose_dtype(cfg.dtype, device))
    data = load_dataset(dataset_dir(cfg.data.dir, cfg.data.env))
    manifest = data["manifest"]
    check_dataset(cfg, manifest)
    n_train = len(data["frames"]) - cfg.data.val_episodes
    if n_train < 1:
        raise ConfigError(f"data.val_episodes={cfg.data.val_episodes} leaves no training episode "
                          f"(dataset has {len(data['frames'])})")
    seq_len = cfg.data.history + cfg.data.num_preds
    if manifest["steps"] < (seq_len - 1) * cfg.data.frameskip:
        raise ConfigError(f"episodes of {manifest['steps']} env steps are shorter than one window "
                          f"((history + num_preds - 1) x frameskip = {(seq_len - 1) * cfg.data.frameskip})")
    raw_actions = np.asarray(data["actions"][:n_train], dtype=np.float32)
    action_mean, action_std = raw_actions.reshape(-1, raw_actions.shape[-1]).mean(0), \
        raw_actions.reshape(-1, raw_actions.shape[-1]).std(0) + 1e-6
    frames = torch.from_numpy(np.array(data["frames"][:n_train]))
    actions = torch.from_numpy((raw_actions - action_mean) / action_std)
    if cfg.data.on_device:
        frames, actions = frames.to(device), actions.to(device)

    model = build_world_model(cfg.model).to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    ckpt_dir = checkpoint_dir(cfg)
    step0, state = resume_state(ckpt_dir, as_dict(cfg), cfg.force_resume)
    if state is not None:
        restore(model, state["model"])
        restore_optimizer(opt, state["optim"])
    elif cfg.model.objective == "patch_wm":
        load_frozen_encoder(model, cfg.model.patch_encoder_ckpt)
    gen = torch.Generator().manual_seed(cfg.seed + step0)
    sig_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1 + step0)
    extra = {"model_config": as_dict(cfg.model), "env": cfg.data.env, "name": cfg.name, "seed": cfg.seed,
             "frameskip": cfg.data.frameskip, "history": cfg.data.history, "val_episodes": cfg.data.val_episodes,
             "action_mean": action_mean.tolist(),
             "action_std": action_std.tolist(), "dataset_sha256": manifest["files"]["frames"]["sha256"]}
    diag = Diagnostics(cfg, data, n_train, device) if cfg.diagnostics.every and cfg.model.objective != "patch_wm" \
        else None
    history, diagnostics = [], []
    loss_fn = torch.compile(model.loss) if cfg.compile else model.loss
    out_dir = out_dir or run_dir()
    stopped_early = False
    # log steps are 0-based update indices, checkpoint steps count updates done: update step0 is logged next
    with RunLogger(cfg.logger, out_dir, config=as_dict(cfg), name=f"train-{cfg.name}",
                   resume_step=max(step0 - 1, 0)) as log:
        model.train()
        step = step0
        for step in log.progress(range(step0, cfg.optim.steps), total=cfg.optim.steps - step0, desc=cfg.name):
            for group in opt.param_groups:
                group["lr"] = cfg.optim.lr * lr_factor(step, cfg.optim.warmup, cfg.optim.steps,
                                                       cfg.optim.min_lr_ratio)
            f, a = sample_batch(frames, actions, cfg.optim.batch_size, seq_len, cfg.data.frameskip, gen)
            with torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=dtype != torch.float32):
                terms = loss_fn(f.to(device, non_blocking=True), a.to(device, non_blocking=True), sig_gen)
            if not torch.isfinite(terms["loss"]):
                raise FloatingPointError(f"non-finite loss at step {step}: {terms}")
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            torch.nn.utils.clip_grad_norm_(trainable, cfg.optim.grad_clip)
            opt.step()
            if step % cfg.log_every == 0 or step == cfg.optim.steps - 1:
                record = {k: float(v.detach()) for k, v in terms.items()}
                history.append({"step": step, **record})
                log.log(record, step=step)
            if diag is not None and ((step + 1) % cfg.diagnostics.every == 0 or step == cfg.optim.steps - 1):
                diagnostics.append({"step": step + 1, **diag.measure(model)})
                log.log({f"collapse/{k}": v for k, v in diagnostics[-1].items() if k != "step"}, step=step)
                model.train()
            if (step + 1) % cfg.ckpt_every == 0 and step + 1 < cfg.optim.steps:
                save_state(ckpt_dir, step + 1, {"model": model}, opt, extra, cfg.keep_last)
            if cfg.max_wall_s and time.perf_counter() - start > cfg.max_wall_s and step + 1 < cfg.optim.steps:
                stopped_early = True
                break
        done = step + 1 if step0 < cfg.optim.steps else step0
        save_state(ckpt_dir, done, {"model": model}, opt, extra, cfg.keep_last)
        summary = {"name": cfg.name, "objective": cfg.model.objective, "sigreg_lambda": cfg.model.sigreg_lambda,
                   "params": count_parameters(model), "encoder_params": count_parameters(model.encoder),
                   "predictor_params": count_parameters(model) - count_parameters(model.encoder),
                   "steps": cfg.optim.steps, "steps_done": done, "complete": done >= cfg.optim.steps,
                   "resumed_from": step0, "stopped_early": stopped_early, "history": history,
                   "diagnostics": previous_diagnostics(ckpt_dir, step0) + diagnostics,
                   "device": describe_device(device), "wall_s": time.perf_counter() - start,
                   "dataset_sha256": extra["dataset_sha256"], "env": cfg.data.env, "seed": cfg.seed,
                   "dataset": {k: manifest[k] for k in ("policy", "episodes", "steps", "image_size", "policy_stats")}}
        log.summary({k: v for k, v in summary.items() if isinstance(v, int | float)})
    (ckpt_dir / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if cfg.write_results:
        write_result("lejepa", f"train_{cfg.data.env}_{cfg.name}", cfg.scale, summary, config=as_dict(cfg),
                     device=summary["device"], wall_s=summary["wall_s"])
    return summary


def check_dataset(cfg: TrainConfig, manifest: dict) -> None:
    if manifest["image_size"] != cfg.model.encoder.image_size:
        raise ConfigError(f"model.encoder.image_size={cfg.model.encoder.image_size} but the dataset has "
                          f"image_size={manifest['image_size']}")
    if manifest["env"] != cfg.data.env:
        raise ConfigError(f"data.env={cfg.data.env!r} but the dataset at data.dir is {manifest['env']!r}")
    expected = cfg.data.frameskip * manifest["action_dim"]
    if cfg.model.predictor.action_dim != expected:
        raise ConfigError(f"model.predictor.action_dim={cfg.model.predictor.action_dim}; expected data.frameskip x "
                          f"the env's action dim = {cfg.data.frameskip} x {manifest['action_dim']} = {expected}")


def previous_diagnostics(ckpt_dir: Path, step0: int) -> list[dict]:
    """Diagnostics of earlier launches of a resumed run (kept in its train_summary.json)."""
    path = ckpt_dir / "train_summary.json"
    if step0 == 0 or not path.exists():
        return []
    return [d for d in json.loads(path.read_text()).get("diagnostics", []) if d["step"] <= step0]


def load_frozen_encoder(model, ckpt: str) -> None:
    """Copy the encoder weights of a trained LeWM checkpoint into the patch-token model (which keeps it frozen)."""
    _, state = load_state(ckpt)
    enc = {k[len("encoder."):]: v for k, v in state["model"].items() if k.startswith("encoder.")}
    saved = state["extra"]["model_config"]["encoder"]
    mine = as_dict(model.cfg.encoder)
    if {k: saved.get(k) for k in mine} != mine:
        raise ConfigError(f"model.patch_encoder_ckpt={ckpt} has encoder {saved}; model.encoder is {mine}")
    model.encoder.load_state_dict(enc)


class Diagnostics:
    """Collapse measures on fixed frames: held-out latents (std, standardized and unit-variance ranks, SIGReg over
    batch-sized chunks of them with fixed directions) and a ridge probe fitted on training frames, scored on
    held-out ones (mean R^2 over the env's probe quantities, angles as sin/cos)."""

    def __init__(self, cfg: TrainConfig, data: dict, n_train: int, device: str) -> None:
        rng = np.random.default_rng(cfg.seed + 7)
        e, t = data["frames"].shape[:2]
        names = data["manifest"]["state_names"]
        cols = [names.index(n) for n in data["manifest"]["probe_names"]]
        targets, _ = probe_targets(np.asarray(data["states"])[..., cols], data["manifest"]["probe_names"])

        def pick(lo: int, hi: int, n: int) -> tuple[np.ndarray, np.ndarray]:
            flat = rng.choice((hi - lo) * t, size=min(n, (hi - lo) * t), replace=False)
            return lo + flat // t, flat % t

        self.val = pick(n_train, e, cfg.diagnostics.frames)
        self.fit = pick(0, n_train, cfg.diagnostics.probe_frames)
        self.frames = {k: np.asarray(data["frames"][idx]) for k, idx in (("val", self.val), ("fit", self.fit))}
        self.targets = {k: targets[idx] for k, idx in (("val", self.val), ("fit", self.fit))}
        self.device, self.batch = device, cfg.optim.batch_size
        self.dirs = random_directions(cfg.model.encoder.latent_dim, cfg.model.sigreg_directions,
                                      torch.Generator().manual_seed(12345), device=device)

    @torch.no_grad()
    def measure(self, model) -> dict:
        from lejepa.evaluation import encode_frames

        model.eval()
        z = {k: encode_frames(model, v, self.device).numpy() for k, v in self.frames.items()}
        r2 = ridge_r2(z["fit"], self.targets["fit"], z["val"], self.targets["val"])
        return {"latent_std": latent_std(z["val"]),
                "standardized_effective_rank": standardized_effective_rank(z["val"]),
                "unit_variance_rank": unit_variance_rank(z["val"]),
                "sigreg": self.sigreg(z["val"]),
                "probe_r2_mean": float(np.mean(r2)), "probe_r2": [float(v) for v in r2]}


    def sigreg(self, z: np.ndarray) -> float:
        """SIGReg over chunks of a training batch's size (the statistic grows with N), fixed directions."""
        n = len(z) // self.batch * self.batch
        chunks = torch.from_numpy(z[:n].reshape(-1, self.batch, z.shape[-1])).to(self.device)
        return float(sigreg(chunks, self.dirs).mean())


def lr_factor(step: int, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """Linear warm-up from 1% (stable-pretraining's LinearWarmupCosineAnnealing start_factor 0.01), then cosine
    annealing down to `min_ratio` of the peak."""
    if step < warmup:
        return 0.01 + 0.99 * step / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@hydra_app("lejepa", "train", TrainConfig)
def main(cfg: TrainConfig) -> None:
    np.set_printoptions(precision=4)
    train(cfg)


if __name__ == "__main__":
    main()
