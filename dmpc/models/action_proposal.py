"""Multi-step diffusion action proposal p(a_{t:t+F-1} | s_{t-H+1:t}) (paper section 3.2).

Actions live in [-1, 1] and are modelled as they are (x0 clipped to [-1, 1] when sampling); the history of
normalized states is flattened into the condition vector.
"""

from __future__ import annotations

from dataclasses import replace

import jax
import jax.numpy as jnp

from dmpc.models.conditional_diffusion import ConditionalDiffusion, DiffusionSpec


class ActionProposal:
    def __init__(self, obs_dim: int, act_dim: int, history: int, horizon: int, spec: DiffusionSpec) -> None:
        self.history, self.horizon = history, horizon
        self.model = ConditionalDiffusion(horizon, act_dim, history * obs_dim, replace(spec, clip=1.0))

    def init(self, key: jax.Array):
        return self.model.init(key)

    def loss(self, params, batch: dict[str, jnp.ndarray], key: jax.Array) -> jnp.ndarray:
        """batch: `hist` (B, H, S) normalized, `actions` (B, F, A)."""
        return self.model.loss(params, batch["actions"], _flat(batch["hist"]), key)

    def sample(self, params, hist: jnp.ndarray, key: jax.Array, steps: int | None = None,
               eta: float | None = None) -> jnp.ndarray:
        """(N, F, A) action sequences for normalized histories (N, H, S) (`steps`, `eta`: DDIM overrides)."""
        return self.model.sample(params, _flat(hist), key, steps, eta)


def _flat(x: jnp.ndarray) -> jnp.ndarray:
    return x.reshape(x.shape[0], -1)
