"""Reward model r(s_t, a_t, s_{t+1}) -> r_t: an MLP on normalized states (paper section 3.4)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from dmpc.models.mlp import MLP


class RewardModel:
    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256)) -> None:
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.net = MLP(tuple(hidden), 1)

    def init(self, key: jax.Array):
        return self.net.init(key, jnp.zeros((1, 2 * self.obs_dim + self.act_dim)))

    def __call__(self, params, s: jnp.ndarray, a: jnp.ndarray, s_next: jnp.ndarray) -> jnp.ndarray:
        """Rewards (...,) for s (..., S), a (..., A), s_next (..., S)."""
        return self.net.apply(params, jnp.concatenate([s, a, s_next], axis=-1))[..., 0]

    def loss(self, params, batch: dict[str, jnp.ndarray], key: jax.Array) -> jnp.ndarray:
        """MSE on every step of the window: s_{t+k}, a_{t+k}, s_{t+k+1} -> r_{t+k}."""
        states = jnp.concatenate([batch["hist"][:, -1:], batch["future"][:, :-1]], axis=1)
        pred = self(params, states, batch["actions"], batch["future"])
        return jnp.mean((pred - batch["rewards"]) ** 2)
