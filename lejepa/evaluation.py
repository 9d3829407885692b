"""Shared evaluation pieces for the plan/surprise entry points: load a trained world model, draw held-out
start/goal pairs, encode frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lejepa.checkpointing import dataclass_from_dict, load_state, restore
from lejepa.models.lewm import WorldModel, WorldModelConfig


def load_world_model(ckpt: str | Path, device: str = "cpu") -> tuple[WorldModel, dict]:
    """(model in eval mode, checkpoint extra: model_config, env, name) from a checkpoint file or folder."""
    step, state = load_state(ckpt)
    extra = state["extra"]
    model = WorldModel(dataclass_from_dict(WorldModelConfig, extra["model_config"]))
    restore(model, state["model"])
    extra = {**extra, "step": step}
    return model.to(device).eval(), extra


PUSH_T_GOAL_OFFSET = 10


def start_goal_pairs(env, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Held-out (starts (P, K), goals (P, K)) states from a seed disjoint from the data seeds (offset 10^6).

    Two-Room: two free positions. Push-T (DINO-WM style): start and the state `PUSH_T_GOAL_OFFSET` steps later on a
    held-out noisy-expert episode. Reacher: a reset state and, as goal, the same state with the arm's fingertip on
    the target (inverse kinematics), so the goal image shows the reach that `is_success` scores."""
    rng = np.random.default_rng(10**6 + seed)
    starts, goals = [], []
    for _ in range(count):
        if env.name == "two_room":
            starts.append(env.sample_free_position(rng))
            goals.append(env.sample_free_position(rng))
        elif env.name == "push_t":
            from lejepa.envs.dataset import rollout

            _, _, states = rollout(env, "noisy_expert", PUSH_T_GOAL_OFFSET, int(rng.integers(2**31)), 0.3)
            starts.append(states[0].astype(np.float64))
            goals.append(states[-1].astype(np.float64))
        elif env.name == "reacher":
            from lejepa.envs.reacher import reach_state

            env.reset(int(rng.integers(2**31)))
            starts.append(env.state())
            env.set_state(reach_state(env.state()))
            goals.append(env.state())
        else:
            env.reset(int(rng.integers(2**31)))
            starts.append(env.state())
            env.reset(int(rng.integers(2**31)))
            goals.append(env.state())
    return np.stack(starts), np.stack(goals)


@torch.no_grad()
def encode_frames(model: WorldModel, frames: np.ndarray, device: str = "cpu", batch: int = 512) -> torch.Tensor:
    """frames (..., S, S, 3) uint8 -> latents (..., D) float32, in eval mode, in chunks."""
    lead = frames.shape[:-3]
    flat = frames.reshape(-1, *frames.shape[-3:])
    out = []
    for i in range(0, len(flat), batch):
        x = torch.from_numpy(flat[i: i + batch]).to(device).permute(0, 3, 1, 2).float().div(255.0)
        out.append(model.encode(x).float().cpu())
    return torch.cat(out).view(*lead, -1)
