"""A trained model's checkpoint: the state `train.py` saves and the `Transformer` rebuilt from it.

One `common.checkpoint` file holds {"model": the model's torch state dict (dotted keys kept), "optim": the
optimizer's, "model_config": the `ModelConfig` as a dict}, so a checkpoint alone rebuilds its model (`export.py`,
`sweep.py`'s continued pre-training). Below both `train.py` (writes) and `export.py` (reads), so neither imports
the other.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from common.checkpoint import load_checkpoint
from data_constrained.model import ModelConfig, Transformer


def checkpoint_state(model: Transformer, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """State for common.checkpoint: the model's and optimizer's torch state dicts and the model's config."""
    return {"model": model.state_dict(), "optim": optimizer.state_dict(), "model_config": asdict(model.cfg)}


def load_model_from_checkpoint(path: str | Path) -> Transformer:
    """A `Transformer` with the weights of a checkpoint written by `train.train_run`."""
    _, state = load_checkpoint(path)
    model = Transformer(ModelConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    return model
