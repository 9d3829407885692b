"""Shared evaluation pieces for the plan/surprise entry points: load a trained world model, draw the evaluation
problems from held-out dataset trajectories, encode frames.

Evaluation problems follow the authors' protocol (stable-worldmodel scripts/plan/eval_wm.py, world.py
`_evaluate_from_dataset`): among all rows (episode e, env step t) of the held-out episodes with
t <= len(e) - goal_offset - 1, draw `count` without replacement; the start is the state at t, the goal the state
`goal_offset` env steps later on the same trajectory, and the goal image is the dataset's frame there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lejepa.checkpointing import dataclass_from_dict, load_state, restore
from lejepa.models.lewm import WorldModelConfig, build_world_model


def load_world_model(ckpt: str | Path, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """(model in eval mode, checkpoint extra: model_config, env, name, frameskip, history, action stats, step)."""
    step, state = load_state(ckpt)
    extra = state["extra"]
    model = build_world_model(dataclass_from_dict(WorldModelConfig, extra["model_config"]))
    restore(model, state["model"])
    extra = {**extra, "step": step}
    return model.to(device).eval(), extra


@dataclass
class Problems:
    """Evaluation problems: episode and start step (P,), start/goal states (P, K), goal frames (P, S, S, 3)."""

    episodes: np.ndarray
    starts: np.ndarray
    start_states: np.ndarray
    goal_states: np.ndarray
    goal_frames: np.ndarray


def dataset_problems(data: dict, val_episodes: int, count: int, goal_offset: int, seed: int) -> Problems:
    """`count` problems from the last `val_episodes` (held-out) episodes of a dataset, drawn with
    np.random.default_rng(seed) over the valid rows as the official evaluation draws them."""
    n, rows = data["states"].shape[:2]  # rows = steps + 1 per episode
    held = np.arange(n - val_episodes, n)
    max_start = rows - goal_offset - 1
    if max_start < 0:
        raise ValueError(f"episodes of {rows - 1} env steps are too short for goal_offset={goal_offset}")
    valid = [(e, t) for e in held for t in range(max_start + 1)]
    if len(valid) < count:
        raise ValueError(f"only {len(valid)} valid start rows in {val_episodes} held-out episodes for {count} "
                         f"problems (goal_offset={goal_offset})")
    pick = np.sort(np.random.default_rng(seed).choice(len(valid), size=count, replace=False))
    ep = np.array([valid[i][0] for i in pick])
    t0 = np.array([valid[i][1] for i in pick])
    states = data["states"]
    return Problems(ep, t0, np.asarray(states[ep, t0], dtype=np.float64),
                    np.asarray(states[ep, t0 + goal_offset], dtype=np.float64),
                    np.asarray(data["frames"][ep, t0 + goal_offset]))


def to_tensor(frames: np.ndarray, device: str) -> torch.Tensor:
    """(N, S, S, 3) uint8 -> (N, 3, S, S) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float().div(255.0)


@torch.no_grad()
def encode_frames(model, frames: np.ndarray, device: str = "cpu", batch: int = 512) -> torch.Tensor:
    """frames (..., S, S, 3) uint8 -> states (..., *S) float32 on the CPU, in eval mode, in chunks
    (`model.encode_state`: a latent (D,) for LeWM and its baselines, patch tokens (P, W) for patch_wm)."""
    lead = frames.shape[:-3]
    flat = frames.reshape(-1, *frames.shape[-3:])
    out = [model.encode_state(to_tensor(flat[i: i + batch], device)).float().cpu()
           for i in range(0, len(flat), batch)]
    states = torch.cat(out)
    return states.view(*lead, *states.shape[1:])
