"""Behaviour-policy actors in NumPy: the forward pass every rollout uses, actor-only checkpoints, action codes.

No JAX here: env worker processes import this module only. An actor is a ReLU MLP given as a list of layers
`[(W (in, out), b (out,)), ...]`; its last layer has 2 * act_pad outputs, split into mean and log-std (clipped to
[LOG_STD_MIN, LOG_STD_MAX]); the action is tanh(mean + exp(log_std) * noise) on the first `act_dim` dimensions.
Training pads observations/actions of every task to a common width (agents/sac.py); padded inputs are zero and
padded outputs are ignored, so a padded actor computes exactly what its unpadded self would.

The forward pass runs in float64 and rounds the action to float32 once, at the end. Float64 keeps the results of
different BLAS/libm builds within ~1e-16 of each other, far below float32's rounding step, so the float32 action
(what the env steps with) is the same on any x86-64 machine except in a ~1e-9 chance per action dimension.

Actor checkpoints (`save_actor`) hold the layers in float16 (what the snapshot *is*: training evaluates and
rolls out the float16-rounded actor, so a committed checkpoint reproduces the evaluated policy exactly) plus
{task, obs_dim, act_dim, hidden, step}, in a `common.checkpoint` safetensors file (`step_<n>.safetensors`).

Action codes: actions executed during SAC training are rounded to a uint8 grid, a = (code - 127) / 127 (255
levels, step 2/254 ~ 0.008), so that the replay buffer is regenerated bit-exactly from 1 byte per action
dimension (data/rollouts.py `replay_episodes`); `encode_actions` / `decode_actions`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from common.checkpoint import load_checkpoint, save_checkpoint

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
ACTOR_FORMAT = "dmpc-actor-f16-v1"
CODE_SCALE = 127.0

Layers = Sequence[tuple[np.ndarray, np.ndarray]]
PolicyFn = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def actor_action(layers: Layers, obs: np.ndarray, noise: np.ndarray | None, act_dim: int) -> np.ndarray:
    """float32 action(s) (..., act_dim) for obs (..., obs_dim); `noise` (..., act_pad) standard normal, or None
    for the deterministic action tanh(mean). Inputs narrower than the first layer are zero-padded."""
    x = np.asarray(obs, np.float64)
    width = layers[0][0].shape[0]
    if x.shape[-1] < width:
        x = np.concatenate([x, np.zeros((*x.shape[:-1], width - x.shape[-1]))], axis=-1)
    for i, (w, b) in enumerate(layers):
        x = x @ np.asarray(w, np.float64) + np.asarray(b, np.float64)
        if i < len(layers) - 1:
            x = np.maximum(x, 0.0)
    mean, log_std = np.split(x, 2, axis=-1)
    if noise is None:
        u = mean
    else:
        log_std = np.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)
        u = mean + np.exp(log_std) * np.asarray(noise, np.float64)[..., : mean.shape[-1]]
    return np.tanh(u[..., :act_dim]).astype(np.float32)


def encode_actions(actions: np.ndarray) -> np.ndarray:
    """uint8 codes of actions in [-1, 1] (nearest of 255 levels)."""
    return np.clip(np.rint(np.asarray(actions, np.float64) * CODE_SCALE) + CODE_SCALE, 0, 254).astype(np.uint8)


def decode_actions(codes: np.ndarray) -> np.ndarray:
    """float32 actions of uint8 codes: (code - 127) / 127."""
    return ((codes.astype(np.float32) - np.float32(CODE_SCALE)) / np.float32(CODE_SCALE)).astype(np.float32)


def to_float16(layers: Layers) -> list[tuple[np.ndarray, np.ndarray]]:
    """The snapshot of an actor: its layers rounded to float16."""
    return [(np.asarray(w, np.float16), np.asarray(b, np.float16)) for w, b in layers]


def save_actor(directory: str | Path, step: int, layers: Layers, meta: dict[str, Any]) -> Path:
    """`<directory>/step_<step>.safetensors` with the float16 layers and `meta` (task, obs_dim, act_dim, ...)."""
    state = {"format": ACTOR_FORMAT, **meta,
             "actor": {str(i): {"w": np.asarray(w, np.float16), "b": np.asarray(b, np.float16)}
                       for i, (w, b) in enumerate(layers)}}
    return save_checkpoint(directory, step, state, keep_last=0)


def load_actor(path: str | Path) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict[str, Any]]:
    """(float16 layers, record) of an actor checkpoint; CheckpointError for a missing or foreign file."""
    from common.checkpoint import CheckpointError

    _, record = load_checkpoint(path, framework="numpy")
    if record.get("format") != ACTOR_FORMAT:
        raise CheckpointError(f"{path} is not a dmpc actor checkpoint (format {record.get('format')!r}, expected "
                              f"{ACTOR_FORMAT!r}); regenerate it with `python -m dmpc.collect`")
    actor = record.pop("actor")
    layers = [(actor[str(i)]["w"], actor[str(i)]["b"]) for i in range(len(actor))]
    return layers, record


def load_policy(path: str | Path, deterministic: bool = False) -> tuple[PolicyFn, dict[str, Any]]:
    """A policy function obs, rng -> action from an actor checkpoint, and the checkpoint's record."""
    layers, record = load_actor(path)
    return actor_policy_fn(layers, int(record["act_dim"]), deterministic), record


def actor_policy_fn(layers: Layers, act_dim: int, deterministic: bool = False) -> PolicyFn:
    act_pad = layers[-1][0].shape[1] // 2
    layers = [(np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in layers]  # once, not per step

    def act(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        noise = None if deterministic else rng.standard_normal(act_pad)
        return actor_action(layers, obs, noise, act_dim)

    return act


def uniform_policy_fn(act_dim: int) -> PolicyFn:
    return lambda obs, rng: rng.uniform(-1, 1, act_dim).astype(np.float32)


def noisy_policy_fn(policy: PolicyFn, noise_std: float) -> PolicyFn:
    """Behaviour policy + Gaussian action noise, clipped to [-1, 1] (the 'play data' policy)."""
    def act(obs, rng):
        a = policy(obs, rng)
        return np.clip(a + noise_std * rng.standard_normal(a.shape), -1, 1).astype(np.float32)

    return act
