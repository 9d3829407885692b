"""`python -m dmpc.train task=hopper dataset=medium`: fit D-MPC's models and the baselines' models, resumably.

Trains each model named in `models` (proposal, dynamics, dynamics_1step, reward, value, bc, ensemble) in turn on the
dataset's windows (history H, horizon F), with a held-out loss on `val_fraction` of the episodes, and saves them to
`<model_dir>/<name>/` (default `<workspace>/models/<dataset>`). `finetune_from=<model dir>` loads a trained set,
keeps its normalizer and fine-tunes only `models` (e.g. `models=[dynamics]` on broken-ankle play data).

`datasets=[medium,medium-replay,medium-expert]` trains several datasets of the task side by side: each model's fits
are one vmapped compiled call (`dmpc.training.fit_many`), so the small models fill more of a GPU; each dataset gets
the parameters its own run would get (same seed and keys) in its own `<workspace>/models/<dataset>`.

Resume: `<model_dir>/train_state/` holds the run's `run_config.json` (common.run_config: resuming under another
config is refused unless `force_resume=true`) and per model a `dmpc.training.FitState` checkpoint, written every
`ckpt_every_s` seconds at a chunk boundary and when the model is done (then without its optimizer state). The same
command continues where a killed or budget-stopped (`time_budget_s`) launch left off, to the same parameters; a model
already done is not retrained. When every model is done the set is saved and `train_state/` removed, and so is a
distilled policy (dmpc.distill) of the model dir when one of the planner's models was (re)trained: it imitated the
old planner.
"""

from __future__ import annotations

import functools
import json
import shutil
import time
from dataclasses import dataclass
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
from dmpc.training import FitState, fit_many, load_fit_state, make_optimizer, save_fit_state

# where a launch stops and how often it checkpoints: free to differ between a run and its resumption
RESUME_IGNORED = (*IGNORED, "ckpt_every_s", "time_budget_s")
STATE_DIR = "train_state"


@hydra_app("dmpc", "train", TrainConfig)
def main(cfg: TrainConfig) -> dict:
    seed_everything(cfg.seed)
    name = f"dmpc-train-{cfg.task}-{'+'.join(cfg.dataset_names)}"
    with RunLogger(cfg.logger, run_dir(), config=as_dict(cfg), name=name) as log:
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


@dataclass
class DatasetRun:
    """One dataset's part of a train run: its model set, training/held-out rows, tables and checkpoint folder."""

    name: str
    model_dir: Path
    models: ModelSet
    rows: dict[str, np.ndarray]
    val_rows: dict[str, np.ndarray] | None
    tables: dict[str, np.ndarray]
    state_dir: Path
    summary: dict


def train(cfg: TrainConfig, log: RunLogger) -> dict:
    """Train (or resume training) every model of `cfg.models` on each dataset of `cfg.dataset_names` (side by side:
    one vmapped fit per model); returns the summary (`done`: all models finished). With several datasets the
    summary holds one per dataset under "datasets"."""
    start = time.perf_counter()
    ws = workspace_dir(cfg.workspace, cfg.task, cfg.scale)
    runs = [prepare(cfg, ws, name) for name in cfg.dataset_names]
    steps = cfg.sizes.finetune_steps if cfg.finetune_from else cfg.sizes.steps
    key = jax.random.key(cfg.seed)
    done = True
    for name in cfg.models:
        key, k_init, k_fit = jax.random.split(key, 3)
        params = [run.models.params[name] if cfg.finetune_from else run.models.init(name, k_init) for run in runs]
        states = fit_resumably(runs[0].models.models[name].loss, params, runs, name, steps=steps, sizes=cfg.sizes,
                               key=k_fit, ckpt_every_s=cfg.ckpt_every_s,
                               deadline=start + cfg.time_budget_s if cfg.time_budget_s else None, log=log)
        for run, state in zip(runs, states, strict=True):
            run.models.params[name] = state.params
            run.summary["losses"][name] = loss_summary(state.history)
        if states[0].step < steps:
            done = False
            break
    for run in runs:
        run.summary.update(done=done, wall_s=time.perf_counter() - start)
        if done:
            finish(cfg, run, steps)
        prefix = f"{run.name}/" if len(runs) > 1 else ""
        log.summary({f"{prefix}{n}/{k}": v for n, d in run.summary["losses"].items() for k, v in d.items()
                     if v is not None})
    if len(runs) == 1:
        return runs[0].summary
    return {"datasets": {run.name: run.summary for run in runs}, "done": done, "wall_s": time.perf_counter() - start}


def prepare(cfg: TrainConfig, ws: Path, dataset: str) -> DatasetRun:
    """Load `dataset`, build its windows, model set (or the fine-tuned one) and rows; check or record the resume
    config of its checkpoint folder."""
    data, manifest = load_dataset(ws / "datasets" / f"{cfg.task}-{dataset}.npz")
    model_dir = Path(cfg.model_dir) if cfg.model_dir else ws / "models" / dataset
    if cfg.finetune_from:
        models = ModelSet.load(cfg.finetune_from)
        history, horizon = models.dims.history, models.dims.horizon
    else:
        history, horizon = cfg.history, cfg.horizon
    win = windows(data, history, horizon, cfg.gamma)
    if not cfg.finetune_from:
        dims = ModelDims(data["observations"].shape[1], data["actions"].shape[1], history, horizon)
        models = ModelSet(dims, hyper_from(cfg.sizes), Normalizer.fit(data["observations"], win["value"]))
    rows, val_rows, tables = training_arrays(win, models.normalizer, cfg.sizes.val_fraction, cfg.seed)
    state_dir = model_dir / STATE_DIR
    resuming = any(list_checkpoints(state_dir / name) for name in cfg.models)
    if resuming:
        check_resume(state_dir, as_dict(cfg), cfg.force_resume, RESUME_IGNORED)
    else:
        state_dir.mkdir(parents=True, exist_ok=True)
        record_run_config(state_dir, as_dict(cfg), RESUME_IGNORED)
    summary = {"model_dir": str(model_dir), "dataset_sha256": manifest["sha256"], "n_windows": len(win["value"]),
               "n_val_windows": len(val_rows["value"]) if val_rows else 0, "losses": {}, "resumed": resuming}
    return DatasetRun(dataset, model_dir, models, rows, val_rows, tables, state_dir, summary)


def finish(cfg: TrainConfig, run: DatasetRun, steps: int) -> None:
    """Every model is done: save the set, drop what it made stale, remove the checkpoints."""
    if cfg.finetune_from and Path(cfg.finetune_from).resolve() != run.model_dir.resolve():
        for stale in MODEL_NAMES:
            shutil.rmtree(run.model_dir / stale, ignore_errors=True)
    if set(cfg.models) & set(PLANNER_MODELS):  # a distilled policy imitated the planner before this run
        run.models.params.pop("distilled", None)
        shutil.rmtree(run.model_dir / "distilled", ignore_errors=True)
    run.models.save(run.model_dir, step=steps)
    shutil.rmtree(run.state_dir)


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


def fit_resumably(loss_fn, params: list, runs: list[DatasetRun], name: str, *, steps: int, sizes: TrainSizes,
                  key: jax.Array, ckpt_every_s: float, deadline: float | None, log: RunLogger) -> list[FitState]:
    """`fit_many` of model `name` over the runs' datasets from the newest checkpoints in their
    `<state_dir>/<name>` (if any), checkpointing every `ckpt_every_s` seconds, when done (without the optimizer),
    and when stopping at `deadline` (time.perf_counter()) before the end."""
    dirs = [run.state_dir / name for run in runs]
    template = make_optimizer(steps, sizes.lr).init(params[0])
    starts = [load_fit_state(d, template) for d in dirs]
    at = {0 if s is None else s.step for s in starts}
    if len(at) > 1:
        raise CheckpointError(f"model {name!r} has checkpoints at different steps in {[str(d) for d in dirs]}; "
                              "train those datasets one at a time, or delete their train_state/")
    if at.pop() >= steps:
        return starts
    if deadline is not None and time.perf_counter() >= deadline:  # the budget went to the models before this one
        return [s or FitState(0, p, None, key) for s, p in zip(starts, params, strict=True)]
    for d, s in zip(dirs, starts, strict=True):
        if s is not None and s.opt_state is None:
            raise CheckpointError(f"{d.parent} holds model {name!r} at step {s.step} < {steps} without its "
                                  f"optimizer state; delete {d.parent} to train this model again")
    last_save = time.perf_counter()

    def checkpoint(states: list[FitState]) -> bool:
        nonlocal last_save
        now = time.perf_counter()
        stop = deadline is not None and now >= deadline
        if states[0].step >= steps:
            for d, state in zip(dirs, states, strict=True):
                save_fit_state(d, state, with_optimizer=False, keep_last=1)
        elif stop or now - last_save >= ckpt_every_s:
            for d, state in zip(dirs, states, strict=True):
                save_fit_state(d, state)
            last_save = now
        return stop

    names = [name] if len(runs) == 1 else [f"{run.name}/{name}" for run in runs]
    return fit_many(loss_fn, params, [run.rows for run in runs], steps=steps, batch_size=sizes.batch_size,
                    lr=sizes.lr, keys=[key] * len(runs), chunk=sizes.chunk, constants=[run.tables for run in runs],
                    val_arrays=[run.val_rows for run in runs], starts=starts, on_chunk=checkpoint,
                    progress=log.progress, logs=[functools.partial(log.log, series=n) for n in names], names=names)


def loss_summary(history: dict[str, list]) -> dict[str, float | None]:
    """First and last training loss of a fit; last and best held-out loss (None without held-out data)."""
    val = history.get("val_loss") or []
    return {"first": history["loss"][0] if history["loss"] else None,
            "last": history["loss"][-1] if history["loss"] else None,
            "val_last": val[-1] if val else None, "val_best": min(val) if val else None}


if __name__ == "__main__":
    main()
