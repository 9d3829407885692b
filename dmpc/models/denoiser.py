"""Denoiser networks eps_theta(x_t, t, cond) for sequences x of shape (B, F, D): an MLP and a Transformer."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


def timestep_embedding(t: jnp.ndarray, dim: int, max_period: float = 10_000.0) -> jnp.ndarray:
    """Sinusoidal embedding of integer steps t (B,) -> (B, dim)."""
    half = dim // 2
    freqs = jnp.exp(-jnp.log(max_period) * jnp.arange(half) / half)
    args = t.astype(jnp.float32)[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)


class MLPDenoiser(nn.Module):
    """Flattens x (B, F, D), concatenates time and condition embeddings, residual SiLU MLP blocks."""

    hidden: int = 256
    layers: int = 3

    @nn.compact
    def __call__(self, x: jnp.ndarray, t: jnp.ndarray, cond: jnp.ndarray) -> jnp.ndarray:
        b, f, d = x.shape
        temb = nn.Dense(self.hidden)(nn.silu(nn.Dense(self.hidden)(timestep_embedding(t, 64))))
        h = nn.Dense(self.hidden)(jnp.concatenate([x.reshape(b, f * d), cond], axis=-1)) + temb
        for _ in range(self.layers):
            h = h + nn.Dense(self.hidden)(nn.silu(nn.LayerNorm()(h)))
        return nn.Dense(f * d)(nn.silu(h)).reshape(b, f, d)


class TransformerDenoiser(nn.Module):
    """One token per step of x plus one condition token; time embedding added to every token (pre-LN)."""

    hidden: int = 128
    layers: int = 2
    heads: int = 4

    @nn.compact
    def __call__(self, x: jnp.ndarray, t: jnp.ndarray, cond: jnp.ndarray) -> jnp.ndarray:
        b, f, d = x.shape
        temb = nn.Dense(self.hidden)(nn.silu(nn.Dense(self.hidden)(timestep_embedding(t, 64))))
        tokens = jnp.concatenate([nn.Dense(self.hidden)(cond)[:, None, :], nn.Dense(self.hidden)(x)], axis=1)
        pos = self.param("pos", nn.initializers.normal(0.02), (f + 1, self.hidden))
        h = tokens + pos[None] + temb[:, None, :]
        for _ in range(self.layers):
            h = h + nn.MultiHeadDotProductAttention(num_heads=self.heads)(nn.LayerNorm()(h))
            y = nn.LayerNorm()(h)
            h = h + nn.Dense(self.hidden)(nn.gelu(nn.Dense(4 * self.hidden)(y)))
        return nn.Dense(d)(nn.LayerNorm()(h[:, 1:]))


def make_denoiser(kind: str, hidden: int, layers: int, heads: int = 4) -> nn.Module:
    if kind == "mlp":
        return MLPDenoiser(hidden, layers)
    if kind == "transformer":
        return TransformerDenoiser(hidden, layers, heads)
    raise ValueError(f"unknown denoiser {kind!r}; expected 'mlp' or 'transformer'")
