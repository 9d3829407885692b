"""`python -m dmpc.train task=hopper dataset=medium`: fit D-MPC's models and the baselines' models.

Trains each model named in `models` (proposal, dynamics, dynamics_1step, reward, value, bc, ensemble) on the
dataset's windows (history H, horizon F) and saves them to `<workspace>/models/<dataset>/<name>/`.
`finetune_from=<model dir>` loads a trained set, keeps its normalizer and fine-tunes only `models` (e.g.
`models=[dynamics]` on broken-ankle play data), writing to `model_dir`.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import jax
import numpy as np

from common.config import as_dict, hydra_app, run_dir
from common.logging import RunLogger
from common.seed import seed_everything
from dmpc.config import TrainConfig, TrainSizes, workspace_dir
from dmpc.data.dataset import load_dataset, windows
from dmpc.models.conditional_diffusion import DiffusionSpec
from dmpc.models.model_set import ModelDims, ModelHyper, ModelSet, Normalizer
from dmpc.training import fit


@hydra_app("dmpc", "train", TrainConfig)
def main(cfg: TrainConfig) -> dict:
    seed_everything(cfg.seed)
    with RunLogger(cfg.logger, run_dir(), config=as_dict(cfg), name=f"dmpc-train-{cfg.task}-{cfg.dataset}") as log:
        return train(cfg, log)


def hyper_from(sizes: TrainSizes) -> ModelHyper:
    def spec(section) -> DiffusionSpec:
        return DiffusionSpec(section.denoiser, section.hidden, section.layers, section.heads, section.train_steps,
                             section.schedule, section.sample_steps, section.eta, section.clip,
                             section.prediction)

    return ModelHyper(proposal=spec(sizes.proposal), dynamics=spec(sizes.dynamics),
                      mlp_hidden=tuple(sizes.mlp_hidden), value_hidden=sizes.value_hidden,
                      value_layers=sizes.value_layers, ensemble_members=sizes.ensemble_members)


def train(cfg: TrainConfig, log: RunLogger) -> dict:
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
    norm = models.normalizer
    arrays = {"hist": norm.norm(win["hist"]), "future": norm.norm(win["future"]), "actions": win["actions"],
              "rewards": win["rewards"], "value": win["value"] / norm.value_scale}
    arrays = {k: np.asarray(v, np.float32) for k, v in arrays.items()}
    key = jax.random.key(cfg.seed)
    losses = {}
    for name in cfg.models:
        key, k_init, k_fit = jax.random.split(key, 3)
        params = models.params[name] if cfg.finetune_from else models.init(name, k_init)
        params, history_ = fit(models.models[name].loss, params, arrays, steps=steps,
                               batch_size=sizes.batch_size, lr=sizes.lr, key=k_fit, chunk=sizes.chunk,
                               progress=log.progress, log=log.log, name=name)
        models.params[name] = params
        losses[name] = {"first": history_[0], "last": history_[-1]}
    if cfg.finetune_from and Path(cfg.finetune_from).resolve() != model_dir.resolve():
        shutil.rmtree(model_dir, ignore_errors=True)
    models.save(model_dir, step=steps)
    summary = {"model_dir": str(model_dir), "dataset_sha256": manifest["sha256"], "n_windows": len(win["value"]),
               "losses": losses, "wall_s": time.perf_counter() - start}
    log.summary({f"{n}/final_loss": v["last"] for n, v in losses.items()})
    return summary


if __name__ == "__main__":
    main()
