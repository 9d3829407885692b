"""Torch training state <-> common.checkpoint (safetensors): models, optimizers and the model config.

common.checkpoint joins nested keys with '/', so torch state dicts (dotted parameter names) are saved as they are
(`<module>/<dotted.param.name>`) and come back with their dotted keys; only the optimizer's integer keys need
restoring (`torch_optimizer_state`).

Resuming (`resume_state`): the checkpoint folder is the run's lasting home (Hydra's run dir is new per launch), so
it holds the run's `run_config.json` (common.run_config). A run resumed under another config is refused unless
forced; `TRAIN_RESUME_IGNORED` lists the keys of `lejepa.train.TrainConfig` that may change between launches.
A corrupt newest checkpoint falls back to the previous one (`keep_last` >= 2) with a warning.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from common.checkpoint import (
    CheckpointError,
    list_checkpoints,
    load_checkpoint,
    load_latest_checkpoint,
    save_checkpoint,
    torch_optimizer_state,
)
from common.run_config import IGNORED, check_resume, record_run_config

# how often it logs and checkpoints, where its checkpoints live, which device runs it, where this launch stops
TRAIN_RESUME_IGNORED = (*IGNORED, "ckpt_every", "keep_last", "log_every", "ckpt_dir", "device", "max_wall_s")


def save_state(directory: str | Path, step: int, modules: dict[str, torch.nn.Module],
               optimizer: torch.optim.Optimizer | None, extra: dict[str, Any], keep_last: int = 2) -> Path:
    """Save module weights, optimizer state and JSON-able `extra` (e.g. the model config) at `step`."""
    state: dict[str, Any] = {name: m.state_dict() for name, m in modules.items()}
    if optimizer is not None:
        state["optim"] = optimizer.state_dict()
    state["extra"] = extra
    return save_checkpoint(directory, step, state, keep_last=keep_last)


def load_state(path_or_dir: str | Path) -> tuple[int, dict[str, Any]]:
    """(step, state) from a checkpoint file or the newest readable one in a folder (CheckpointError if none)."""
    path = Path(path_or_dir)
    if path.is_dir():
        if not list_checkpoints(path):
            raise CheckpointError(f"no checkpoint (step_*.safetensors) in {path}; train first with "
                                  f"`python -m lejepa.train` or point ckpt at a checkpoint")
        return load_latest_checkpoint(path, framework="torch")
    return load_checkpoint(path, framework="torch")


def resume_state(directory: str | Path, config: dict[str, Any], force: bool = False,
                 ignore: tuple[str, ...] = TRAIN_RESUME_IGNORED) -> tuple[int, dict[str, Any] | None]:
    """(step, state) to resume the run whose checkpoints are in `directory`, once `config` (the run's resolved
    config) is checked against its run_config.json (ResumeError if it differs and not `force`); (0, None) for a
    fresh start, which records `config` there."""
    if not list_checkpoints(directory):
        record_run_config(directory, config, ignore)
        return 0, None
    check_resume(directory, config, force, ignore)
    return load_latest_checkpoint(directory, framework="torch")


def restore(module: torch.nn.Module, tree: dict[str, Any]) -> None:
    module.load_state_dict(tree)


def restore_optimizer(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    restored = torch_optimizer_state(state)
    for group in restored["param_groups"]:
        group["params"] = [int(p) for p in group["params"]]
    optimizer.load_state_dict(restored)


def dataclass_from_dict(cls, data: dict[str, Any]):
    """Rebuild a (nested) config dataclass from its `dataclasses.asdict` form."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        ftype = f.type if not isinstance(f.type, str) else _resolve(cls, f.type)
        kwargs[f.name] = dataclass_from_dict(ftype, value) if dataclasses.is_dataclass(ftype) else value
    return cls(**kwargs)


def _resolve(cls, name: str):
    import sys

    module = sys.modules[cls.__module__]
    return getattr(module, name, None)
