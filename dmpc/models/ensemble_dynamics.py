"""MBOP's single-step model: an ensemble of K MLPs (s_t, a_t) -> (s_{t+1} - s_t, r_t) on normalized states.

Members are trained on the same data from different initializations (and different minibatch noise through
the per-member key), as in MBOP (Argenson & Dulac-Arnold 2021).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from dmpc.models.mlp import MLP


class EnsembleDynamics:
    def __init__(self, obs_dim: int, act_dim: int, members: int = 3, hidden: Sequence[int] = (256, 256)) -> None:
        self.obs_dim, self.act_dim, self.members = obs_dim, act_dim, members
        self.net = MLP(tuple(hidden), obs_dim + 1)

    def init(self, key: jax.Array):
        keys = jax.random.split(key, self.members)
        x = jnp.zeros((1, self.obs_dim + self.act_dim))
        return jax.vmap(lambda k: self.net.init(k, x))(keys)

    def __call__(self, params, s: jnp.ndarray, a: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Per-member next states (K, ..., S) and rewards (K, ...) for s (..., S), a (..., A)."""
        out = jax.vmap(lambda p: self.net.apply(p, jnp.concatenate([s, a], axis=-1)))(params)
        return s + out[..., :-1], out[..., -1]

    def step(self, params, s: jnp.ndarray, a: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Member k advances trajectory group k: s, a (K, N, ...) -> next s (K, N, S), r (K, N)."""
        out = jax.vmap(lambda p, x: self.net.apply(p, x))(params, jnp.concatenate([s, a], axis=-1))
        return s + out[..., :-1], out[..., -1]

    def loss(self, params, batch: dict[str, jnp.ndarray], key: jax.Array) -> jnp.ndarray:
        s, a = batch["hist"][:, -1], batch["actions"][:, 0]
        next_s, r = self(params, s, a)
        return jnp.mean((next_s - batch["future"][:, 0]) ** 2) + jnp.mean((r - batch["rewards"][:, 0]) ** 2)
