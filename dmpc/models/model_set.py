"""The set of models one training run produces, with the state normalizer; saved one checkpoint per model.

`ModelSet(dims, hyper, normalizer)` makes the model objects; `params[name]` holds each trained model's parameters.
`distilled` (written by dmpc.distill, not dmpc.train) is the planner's student, BC's network trained on the
planner's actions.
Checkpoints: `<dir>/<name>/step_*.safetensors` via common.checkpoint (flax params flattened to named arrays)
plus `<dir>/model_set.json` with dims, the normalizer and the model config, so evaluation needs only the dir.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np

from common.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, save_checkpoint
from dmpc.models.action_proposal import ActionProposal
from dmpc.models.bc import BCPolicy
from dmpc.models.conditional_diffusion import DiffusionSpec
from dmpc.models.dynamics import DiffusionDynamics
from dmpc.models.ensemble_dynamics import EnsembleDynamics
from dmpc.models.reward import RewardModel
from dmpc.models.value import ValueModel

MODEL_NAMES = ("proposal", "dynamics", "dynamics_1step", "reward", "value", "bc", "ensemble", "distilled")
PLANNER_MODELS = ("proposal", "dynamics", "reward", "value")  # what D-MPC plans with (and `distilled` imitates)


@dataclass
class ModelDims:
    obs_dim: int
    act_dim: int
    history: int
    horizon: int


@dataclass
class ModelHyper:
    """Architecture hyper-parameters (mirrors the `model` config group)."""

    proposal: DiffusionSpec = field(default_factory=DiffusionSpec)
    dynamics: DiffusionSpec = field(default_factory=DiffusionSpec)
    mlp_hidden: tuple[int, ...] = (256, 256)
    value_hidden: int = 64
    value_layers: int = 2
    ensemble_members: int = 3


@dataclass
class Normalizer:
    mean: np.ndarray
    std: np.ndarray
    value_scale: float = 1.0

    @classmethod
    def fit(cls, observations: np.ndarray, values: np.ndarray) -> Normalizer:
        return cls(observations.mean(0).astype(np.float32), np.maximum(observations.std(0), 1e-3).astype(np.float32),
                   float(max(values.std(), 1e-3)))

    def norm(self, s):
        return (s - self.mean) / self.std

    def denorm(self, s):
        return s * self.std + self.mean


class ModelSet:
    def __init__(self, dims: ModelDims, hyper: ModelHyper, normalizer: Normalizer) -> None:
        self.dims, self.hyper, self.normalizer = dims, hyper, normalizer
        d = dims
        self.models = {
            "proposal": ActionProposal(d.obs_dim, d.act_dim, d.history, d.horizon, hyper.proposal),
            "dynamics": DiffusionDynamics(d.obs_dim, d.act_dim, d.history, d.horizon, hyper.dynamics),
            "dynamics_1step": DiffusionDynamics(d.obs_dim, d.act_dim, d.history, 1, hyper.dynamics),
            "reward": RewardModel(d.obs_dim, d.act_dim, hyper.mlp_hidden),
            "value": ValueModel(d.horizon, d.obs_dim, hyper.value_hidden, hyper.value_layers),
            "bc": BCPolicy(d.obs_dim, d.act_dim, hyper.mlp_hidden),
            "ensemble": EnsembleDynamics(d.obs_dim, d.act_dim, hyper.ensemble_members, hyper.mlp_hidden),
            "distilled": BCPolicy(d.obs_dim, d.act_dim, hyper.mlp_hidden),  # the planner's student (dmpc.distill)
        }
        self.params: dict[str, Any] = {}

    def init(self, name: str, key: jax.Array):
        return self.models[name].init(key)

    def save(self, directory: str | Path, names: list[str] | None = None, step: int = 0) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name in names or list(self.params):
            save_checkpoint(directory / name, step, {"params": jax.tree_util.tree_map(np.asarray, self.params[name])},
                            keep_last=1)
        meta = {"dims": asdict(self.dims), "hyper": _jsonable(asdict(self.hyper)),
                "normalizer": {"mean": self.normalizer.mean.tolist(), "std": self.normalizer.std.tolist(),
                               "value_scale": self.normalizer.value_scale}}
        (directory / "model_set.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path, names: list[str] | None = None) -> ModelSet:
        """Load the model set in `directory`; CheckpointError names a missing model checkpoint."""
        directory = Path(directory)
        meta_path = directory / "model_set.json"
        if not meta_path.is_file():
            raise CheckpointError(f"no trained models at {directory} (missing {meta_path.name}); "
                                  f"run `python -m dmpc.train` first")
        meta = json.loads(meta_path.read_text())
        hyper = meta["hyper"]
        hyper = ModelHyper(proposal=DiffusionSpec(**hyper["proposal"]), dynamics=DiffusionSpec(**hyper["dynamics"]),
                           mlp_hidden=tuple(hyper["mlp_hidden"]), value_hidden=hyper["value_hidden"],
                           value_layers=hyper["value_layers"], ensemble_members=hyper["ensemble_members"])
        norm = meta["normalizer"]
        normalizer = Normalizer(np.asarray(norm["mean"], np.float32), np.asarray(norm["std"], np.float32),
                                norm["value_scale"])
        out = cls(ModelDims(**meta["dims"]), hyper, normalizer)
        for name in names or MODEL_NAMES:
            path = latest_checkpoint(directory / name)
            if path is None:
                if names is None:
                    continue
                raise CheckpointError(f"model {name!r} has no checkpoint under {directory / name}")
            out.params[name] = load_checkpoint(path, framework="numpy")[1]["params"]
        return out


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value
