"""Multi-step diffusion dynamics p(s_{t+1:t+F} | s_{t-H+1:t}, a_{t:t+F-1}) (paper section 3.3).

`DiffusionDynamics(horizon=F)` predicts the whole future in one joint sample (the paper's model);
with `horizon=1` and `rollout(..., autoregressive=True)` it is the single-step autoregressive ablation, whose
errors compound over F calls. States are normalized; the diffusion target is the displacement from the
current state, s_{t+k} - s_t (k = 1..F), which is added back after sampling.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dmpc.models.conditional_diffusion import ConditionalDiffusion, DiffusionSpec


class DiffusionDynamics:
    def __init__(self, obs_dim: int, act_dim: int, history: int, horizon: int, spec: DiffusionSpec) -> None:
        self.obs_dim, self.act_dim, self.history, self.horizon = obs_dim, act_dim, history, horizon
        self.model = ConditionalDiffusion(horizon, obs_dim, history * obs_dim + horizon * act_dim, spec)

    def init(self, key: jax.Array):
        return self.model.init(key)

    def condition(self, hist: jnp.ndarray, actions: jnp.ndarray) -> jnp.ndarray:
        return jnp.concatenate([hist.reshape(hist.shape[0], -1), actions.reshape(actions.shape[0], -1)], axis=-1)

    def loss(self, params, batch: dict[str, jnp.ndarray], key: jax.Array) -> jnp.ndarray:
        """batch: `hist` (B, H, S), `actions` (B, >=F, A), `future` (B, >=F, S), normalized."""
        f = self.horizon
        target = batch["future"][:, :f] - batch["hist"][:, -1:]
        return self.model.loss(params, target, self.condition(batch["hist"], batch["actions"][:, :f]), key)

    def sample(self, params, hist: jnp.ndarray, actions: jnp.ndarray, key: jax.Array,
               steps: int | None = None) -> jnp.ndarray:
        """(N, F, S) future states for hist (N, H, S) and actions (N, F, A)."""
        return hist[:, -1:] + self.model.sample(params, self.condition(hist, actions), key, steps)

    def rollout(self, params, hist: jnp.ndarray, actions: jnp.ndarray, key: jax.Array,
                steps: int | None = None) -> jnp.ndarray:
        """Future states for actions (N, L, A) of any length L that is a multiple of `horizon`, chaining
        samples of `horizon` steps and sliding the history window (L/horizon model calls). (N, L, S)"""
        n, length, _ = actions.shape
        if length % self.horizon:
            raise ValueError(f"rollout length {length} is not a multiple of the model horizon {self.horizon}")
        chunks = actions.reshape(n, length // self.horizon, self.horizon, -1).transpose(1, 0, 2, 3)
        keys = jax.random.split(key, chunks.shape[0])

        def step(h, inputs):
            a, k = inputs
            future = self.sample(params, h, a, k, steps)
            h = jnp.concatenate([h, future], axis=1)[:, -self.history:]
            return h, future

        _, futures = jax.lax.scan(step, hist, (chunks, keys))
        return futures.transpose(1, 0, 2, 3).reshape(n, length, self.obs_dim)
