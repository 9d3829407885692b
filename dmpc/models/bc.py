"""Behaviour cloning: a deterministic MLP policy a = tanh(MLP(s)) fit by MSE (baseline, and MBOP's proposal)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from dmpc.models.mlp import MLP


class BCPolicy:
    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256)) -> None:
        self.obs_dim = obs_dim
        self.net = MLP(tuple(hidden), act_dim)

    def init(self, key: jax.Array):
        return self.net.init(key, jnp.zeros((1, self.obs_dim)))

    def __call__(self, params, s: jnp.ndarray) -> jnp.ndarray:
        """Actions (..., A) for normalized states (..., S)."""
        return jnp.tanh(self.net.apply(params, s))

    def loss(self, params, batch: dict[str, jnp.ndarray], key: jax.Array) -> jnp.ndarray:
        return jnp.mean((self(params, batch["hist"][:, -1]) - batch["actions"][:, 0]) ** 2)
