"""Transformer value estimator: the discounted return after the planning horizon, from the planned states.

V(s_{t+1:t+F}) ~ sum_{j >= t+F} gamma^{j-t-F} r_j (paper section 3.4: a Transformer over the trajectory
predicts the return beyond F). One token per state, a learned [value] token read out at the end.
Targets are divided by `scale` (the dataset's value std) for training.

Targets (`value_targets`, windows from `dmpc.data.dataset.windows`): the observed discounted rewards after t+F up to
the episode's last step e, plus, when the episode ended at a timeout, gamma^(e+1-t-F) times the network's own
(stop-gradient) value of the episode's last planned states s_{e-F+2:e+1}: a time limit does not end the return, a
terminal does. (The episode's last window bootstraps from itself, so it carries no gradient.)
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def value_targets(observed: jnp.ndarray, bootstrap: jnp.ndarray, tail_values: jnp.ndarray) -> jnp.ndarray:
    """Value targets (B,) = observed (B,) + bootstrap (B,) * tail_values (B,), all in the same (scaled) units."""
    return observed + bootstrap * tail_values


class ValueTransformer(nn.Module):
    hidden: int = 64
    layers: int = 2
    heads: int = 4

    @nn.compact
    def __call__(self, states: jnp.ndarray) -> jnp.ndarray:
        b, f, _ = states.shape
        cls = self.param("cls", nn.initializers.normal(0.02), (1, 1, self.hidden))
        h = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, self.hidden)), nn.Dense(self.hidden)(states)], axis=1)
        h = h + self.param("pos", nn.initializers.normal(0.02), (f + 1, self.hidden))[None]
        for _ in range(self.layers):
            h = h + nn.MultiHeadDotProductAttention(num_heads=self.heads)(nn.LayerNorm()(h))
            h = h + nn.Dense(self.hidden)(nn.gelu(nn.Dense(2 * self.hidden)(nn.LayerNorm()(h))))
        return nn.Dense(1)(nn.LayerNorm()(h[:, 0]))[:, 0]


class ValueModel:
    def __init__(self, horizon: int, obs_dim: int, hidden: int = 64, layers: int = 2, heads: int = 4) -> None:
        self.horizon, self.obs_dim = horizon, obs_dim
        self.net = ValueTransformer(hidden, layers, heads)

    def init(self, key: jax.Array):
        return self.net.init(key, jnp.zeros((1, self.horizon, self.obs_dim)))

    def __call__(self, params, future: jnp.ndarray) -> jnp.ndarray:
        """Scaled value (N,) of normalized planned states (N, F, S)."""
        return self.net.apply(params, future)

    def loss(self, params, batch: dict[str, jnp.ndarray], key: jax.Array) -> jnp.ndarray:
        """MSE to `value_targets`; batch: `future` (B, F, S), `value` (B,), `bootstrap` (B,), `episode` (B,) int
        rows of `tail_future` (E, F, S) (a table passed whole, not minibatched)."""
        tail = jax.lax.stop_gradient(self(params, batch["tail_future"][batch["episode"]]))
        target = value_targets(batch["value"], batch["bootstrap"], tail)
        return jnp.mean((self(params, batch["future"]) - target) ** 2)
