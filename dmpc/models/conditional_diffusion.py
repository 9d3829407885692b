"""A conditional diffusion model over sequences x (F, D) given a flat condition vector (C,).

The shared machinery of the action proposal and the dynamics model: a denoiser network (denoiser.py), a noise
schedule, the DDPM loss and DDIM sampling from `dmpc.diffusion`. Parameters are a plain pytree.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from dmpc import diffusion
from dmpc.models.denoiser import make_denoiser


@dataclass(frozen=True)
class DiffusionSpec:
    """Architecture and sampler of one diffusion model (mirrors the `diffusion` config group)."""

    denoiser: str = "mlp"
    hidden: int = 256
    layers: int = 3
    heads: int = 4
    train_steps: int = 100  # T, the number of noise levels
    schedule: str = "cosine"
    sample_steps: int = 10  # DDIM steps at planning time
    eta: float = 0.0
    clip: float = 5.0  # clip x0 predictions (targets are normalized)
    prediction: str = "eps"  # what the network predicts: "eps" or "x0"


class ConditionalDiffusion:
    """p(x | cond) for x of shape (F, D): `init`, `loss`, `sample` (all jit-friendly, pure in params)."""

    def __init__(self, seq_len: int, dim: int, cond_dim: int, spec: DiffusionSpec) -> None:
        self.seq_len, self.dim, self.cond_dim, self.spec = seq_len, dim, cond_dim, spec
        self.net = make_denoiser(spec.denoiser, spec.hidden, spec.layers, spec.heads)
        self.abars = jnp.asarray(diffusion.alpha_bars(spec.schedule, spec.train_steps), jnp.float32)
        self.timesteps = diffusion.ddim_timesteps(spec.train_steps, spec.sample_steps)

    def init(self, key: jax.Array):
        x = jnp.zeros((1, self.seq_len, self.dim))
        return self.net.init(key, x, jnp.zeros((1,), jnp.int32), jnp.zeros((1, self.cond_dim)))

    def loss(self, params, x0: jnp.ndarray, cond: jnp.ndarray, key: jax.Array) -> jnp.ndarray:
        """DDPM noise-prediction loss on x0 (B, F, D) given cond (B, C)."""
        return diffusion.ddpm_loss(lambda x, t, c: self.net.apply(params, x, t, c), x0, cond, key, self.abars,
                                  prediction=self.spec.prediction)

    def sample(self, params, cond: jnp.ndarray, key: jax.Array, steps: int | None = None,
               eta: float | None = None) -> jnp.ndarray:
        """(B, F, D) samples for cond (B, C) with DDIM (`steps`, `eta` override the spec's sample_steps, eta)."""
        timesteps = self.timesteps if steps is None else diffusion.ddim_timesteps(self.spec.train_steps, steps)
        return diffusion.ddim_sample(lambda x, t, c: self.net.apply(params, x, t, c), cond, key,
                                     (cond.shape[0], self.seq_len, self.dim), self.abars, timesteps,
                                     eta=self.spec.eta if eta is None else eta, clip=self.spec.clip,
                                     prediction=self.spec.prediction)
