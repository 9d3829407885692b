"""`python -m dmpc.train task=hopper dataset=medium`: fit D-MPC's models and the baselines' models, resumably.

Trains each model named in `models` (proposal, dynamics, dynamics_1step, reward, value, bc, ensemble) in turn on the
dataset's windows (history H, horizon F), with a held-out loss on `val_fraction` of the episodes, and saves them to
`<model_dir>/<name>/` (default `<workspace>/models/<dataset>`). `finetune_from=<model dir>` loads a trained set,
keeps its normalizer and fine-tunes only `models` (e.g. `models=[dynamics]` on broken-ankle play data).

Resume: `<model_dir>/train_state/` holds the run's `run_config.json` (common.run_config: resuming under another
config is refused unless `force_resume=true`) and per model a `dmpc.training.FitState` checkpoint, written every
`ckpt_every_s` seconds at a chunk boundary and when the model is done (then without its optimizer state). The same
command continues where a killed or budget-stopped (`time_budget_s`) launch left off, to the same parameters; a model
already done is not retrained. When every model is done the set is saved and `train_state/` removed, and so is a
distilled policy (dmpc.distill) of the model dir when one of the planner's models was (re)trained: it imitated the
old planner.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import jax
import numpy as np

from common.checkpoint import CheckpointError, list_checkpoints
from common.config import as_dict, hydra_app, run_dir
from common.logging import RunLogger
from common.run_config import IGNORED, check_resume, record_run_config
from common.seed import seed_everything
from dmpc.config import TrainConfig, TrainSizes, workspace_dir
from dmpc.data.dataset import holdout_episodes, load_dataset, windows
from dmpc.models.conditional_diffusion import DiffusionSpec
from dmpc.models.model_set import MODEL_NAMES, PLANNER_MODELS, ModelDims, ModelHyper, ModelSet, Normalizer
from dmpc.training import FitState, fit, load_fit_state, make_optimizer, save_fit_state

# where a launch stops and how often it checkpoints: free to differ between a run and its resumption
RESUME_IGNORED = (*IGNORED, "ckpt_every_s", "time_budget_s")
STATE_DIR = "train_state"


@hydra_app("dmpc", "train", TrainConfig)
def main(cfg: TrainConfig) -> dict:
    seed_everything(cfg.seed)
    with RunLogger(cfg.logger, run_dir(), config=as_dict(cfg), name=f"dmpc-train-{cfg.task}-{cfg.dataset}") as log:
        summary = train(cfg, log)
    print(json.dumps(summary, indent=1))
    return summary


def hyper_from(sizes: TrainSizes) -> ModelHyper:
    def spec(section) -> DiffusionSpec:
        return DiffusionSpec(section.denoiser, section.hidden, section.layers, section.heads, section.train_steps,
                             section.schedule, section.sample_steps, section.eta, section.clip,
                             section.prediction)

    return ModelHyper(proposal=spec(sizes.proposal), dynamics=spec(sizes.dynamics),
                      mlp_hidden=tuple(sizes.mlp_hidden), value_hidden=sizes.value_hidden,
                      value_layers=sizes.value_layers, ensemble_members=sizes.ensemble_members)


def train(cfg: TrainConfig, log: RunLogger) -> dict:
    """Train (or resume training) every model of `cfg.models`; returns the summary (`done`: all models finished)."""
    start = time.perf_counter()
    ws = workspace_dir(cfg.workspace, cfg.task, cfg.scale)
    data, manifest = load_dataset(ws / "datasets" / f"{cfg.task}-{cfg.dataset}.npz")
    model_dir = Path(cfg.model_dir) if cfg.model_dir else ws / "models" / cfg.dataset
    sizes = cfg.sizes
    if cfg.finetune_from:
        models = ModelSet.load(cfg.finetune_from)
        history, horizon = models.dims.history, models.dims.horizon
        steps = sizes.finetune_steps
    else:
        history, horizon, steps = cfg.history, cfg.horizon, sizes.steps
    win = windows(data, history, horizon, cfg.gamma)
    if not cfg.finetune_from:
        dims = ModelDims(data["observations"].shape[1], data["actions"].shape[1], history, horizon)
        models = ModelSet(dims, hyper_from(sizes), Normalizer.fit(data["observations"], win["value"]))
    train_rows, val_rows, tables = training_arrays(win, models.normalizer, sizes.val_fraction, cfg.seed)
    state_dir = model_dir / STATE_DIR
    resuming = any(list_checkpoints(state_dir / name) for name in cfg.models)
    if resuming:
        check_resume(state_dir, as_dict(cfg), cfg.force_resume, RESUME_IGNORED)
    else:
        state_dir.mkdir(parents=True, exist_ok=True)
        record_run_config(state_dir, as_dict(cfg), RESUME_IGNORED)
    key = jax.random.key(cfg.seed)
    losses, done = {}, True
    for name in cfg.models:
        key, k_init, k_fit = jax.random.split(key, 3)
        params = models.params[name] if cfg.finetune_from else models.init(name, k_init)
        state = fit_resumably(models.models[name].loss, params, train_rows, val_rows, tables, state_dir / name,
                              steps=steps, sizes=sizes, key=k_fit, ckpt_every_s=cfg.ckpt_every_s,
                              deadline=start + cfg.time_budget_s if cfg.time_budget_s else None, log=log, name=name)
        models.params[name] = state.params
        losses[name] = loss_summary(state.history)
        if state.step < steps:
            done = False
            break
    summary = {"model_dir": str(model_dir), "dataset_sha256": manifest["sha256"], "n_windows": len(win["value"]),
               "n_val_windows": len(val_rows["value"]) if val_rows else 0, "losses": losses, "done": done,
               "resumed": resuming, "wall_s": time.perf_counter() - start}
    if done:
        if cfg.finetune_from and Path(cfg.finetune_from).resolve() != model_dir.resolve():
            for stale in MODEL_NAMES:
                shutil.rmtree(model_dir / stale, ignore_errors=True)
        if set(cfg.models) & set(PLANNER_MODELS):  # a distilled policy imitated the planner before this run
            models.params.pop("distilled", None)
            shutil.rmtree(model_dir / "distilled", ignore_errors=True)
        models.save(model_dir, step=steps)
        shutil.rmtree(state_dir)
    log.summary({f"{n}/{k}": v for n, d in losses.items() for k, v in d.items() if v is not None})
    return summary


def training_arrays(win: dict[str, np.ndarray], norm: Normalizer, val_fraction: float,
                    seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None, dict[str, np.ndarray]]:
    """(training rows, held-out rows or None, whole tables) of normalized windows for every model's loss; the held-out
    rows are the windows of `holdout_episodes`."""
    rows = {"hist": norm.norm(win["hist"]), "future": norm.norm(win["future"]), "actions": win["actions"],
            "rewards": win["rewards"], "value": win["value"] / norm.value_scale, "bootstrap": win["bootstrap"]}
    rows = {k: np.asarray(v, np.float32) for k, v in rows.items()}
    rows["episode"] = win["episode"]
    tables = {"tail_future": np.asarray(norm.norm(win["tail_future"]), np.float32)}
    held = holdout_episodes(len(win["tail_future"]), val_fraction, seed)[win["episode"]]
    if not held.any():
        return rows, None, tables
    return {k: v[~held] for k, v in rows.items()}, {k: v[held] for k, v in rows.items()}, tables


def fit_resumably(loss_fn, params, rows, val_rows, tables, state_dir: Path, *, steps: int, sizes: TrainSizes,
                  key: jax.Array, ckpt_every_s: float, deadline: float | None, log: RunLogger,
                  name: str) -> FitState:
    """`fit` from the newest checkpoint in `state_dir` (if any), checkpointing every `ckpt_every_s` seconds, when
    done (without the optimizer), and when stopping at `deadline` (time.perf_counter()) before the end."""
    template = make_optimizer(steps, sizes.lr).init(params)
    start = load_fit_state(state_dir, template)
    if start is not None and start.step >= steps:
        return start
    if deadline is not None and time.perf_counter() >= deadline:  # the budget went to the models before this one
        return start or FitState(0, params, None, key)
    if start is not None and start.opt_state is None:
        raise CheckpointError(f"{state_dir} holds model {name!r} at step {start.step} < {steps} without its "
                              f"optimizer state; delete {state_dir} to train this model again")
    last_save = time.perf_counter()

    def checkpoint(state: FitState) -> bool:
        nonlocal last_save
        now = time.perf_counter()
        stop = deadline is not None and now >= deadline
        if state.step >= steps:
            save_fit_state(state_dir, state, with_optimizer=False, keep_last=1)
        elif stop or now - last_save >= ckpt_every_s:
            save_fit_state(state_dir, state)
            last_save = now
        return stop

    return fit(loss_fn, params, rows, steps=steps, batch_size=sizes.batch_size, lr=sizes.lr, key=key,
               chunk=sizes.chunk, constants=tables, val_arrays=val_rows, start=start, on_chunk=checkpoint,
               progress=log.progress, log=log.log, name=name)


def loss_summary(history: dict[str, list]) -> dict[str, float | None]:
    """First and last training loss of a fit; last and best held-out loss (None without held-out data)."""
    val = history.get("val_loss") or []
    return {"first": history["loss"][0] if history["loss"] else None,
            "last": history["loss"][-1] if history["loss"] else None,
            "val_last": val[-1] if val else None, "val_best": min(val) if val else None}


if __name__ == "__main__":
    main()
