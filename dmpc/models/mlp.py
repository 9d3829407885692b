"""A plain MLP (Flax linen), the building block of the BC policy, reward model, MBOP ensemble and SAC nets."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp


class MLP(nn.Module):
    """(..., D_in) -> (..., out_dim); `hidden` widths with SiLU (or ReLU) activations."""

    hidden: Sequence[int]
    out_dim: int
    activation: str = "silu"

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        act = nn.silu if self.activation == "silu" else nn.relu
        for width in self.hidden:
            x = act(nn.Dense(width)(x))
        return nn.Dense(self.out_dim)(x)
