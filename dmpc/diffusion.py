"""Diffusion math as pure functions (JAX): noise schedule, DDPM training loss, DDIM / ancestral sampling.

Conventions: x0 is the clean target (B, ...); the network sees (x_t, t, cond), with t an integer step in
[0, T), and predicts either the added noise eps (`prediction="eps"`) or x0 itself (`prediction="x0"`, as
Diffuser does for states: errors are not amplified by 1/sqrt(abar_t) at high noise, which matters for
low-dimensional targets much smaller than the unit noise). `alpha_bars[t]` = prod_{s<=t} (1 - beta_s).
DDPM loss (Ho et al. 2020): E_{t, eps} |target - net(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t)|^2.
DDIM (Song et al. 2021) over a sub-sequence of `steps` timesteps; eta=0 is deterministic, eta=1 is ancestral
(DDPM-like) sampling on that sub-sequence.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

# eps_fn(x_t (B, ...), t (B,) int32, cond (B, C)) -> eps (B, ...)
EpsFn = Callable[[jnp.ndarray, jnp.ndarray, jnp.ndarray], jnp.ndarray]


def cosine_alpha_bars(num_steps: int, s: float = 0.008) -> np.ndarray:
    """abar_t for t = 0..T-1 of the cosine schedule (Nichol & Dhariwal 2021), betas clipped to 0.999. (T,)"""
    t = np.arange(num_steps + 1, dtype=np.float64) / num_steps
    f = np.cos((t + s) / (1 + s) * np.pi / 2) ** 2
    betas = np.clip(1.0 - f[1:] / f[:-1], 0.0, 0.999)
    return np.cumprod(1.0 - betas)


def linear_alpha_bars(num_steps: int, beta_start: float = 1e-4, beta_end: float = 2e-2) -> np.ndarray:
    """abar_t of the linear beta schedule of DDPM, rescaled to `num_steps`. (T,)"""
    scale = 1000.0 / num_steps
    betas = np.linspace(scale * beta_start, scale * beta_end, num_steps)
    return np.cumprod(1.0 - betas)


def alpha_bars(schedule: str, num_steps: int) -> np.ndarray:
    if schedule == "cosine":
        return cosine_alpha_bars(num_steps)
    if schedule == "linear":
        return linear_alpha_bars(num_steps)
    raise ValueError(f"unknown noise schedule {schedule!r}; expected 'cosine' or 'linear'")


def q_sample(x0: jnp.ndarray, t: jnp.ndarray, noise: jnp.ndarray, abars: jnp.ndarray) -> jnp.ndarray:
    """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, with t (B,) broadcast over x0's trailing axes."""
    a = abars[t].reshape((-1,) + (1,) * (x0.ndim - 1))
    return jnp.sqrt(a) * x0 + jnp.sqrt(1.0 - a) * noise


def ddpm_loss(eps_fn: EpsFn, x0: jnp.ndarray, cond: jnp.ndarray, key: jax.Array, abars: jnp.ndarray,
              weights: jnp.ndarray | None = None, prediction: str = "eps") -> jnp.ndarray:
    """Mean squared error of the predicted noise (or x0) at a uniformly drawn step per example (scalar)."""
    k_t, k_n = jax.random.split(key)
    t = jax.random.randint(k_t, (x0.shape[0],), 0, abars.shape[0])
    noise = jax.random.normal(k_n, x0.shape, x0.dtype)
    target = noise if prediction == "eps" else x0
    err = (eps_fn(q_sample(x0, t, noise, abars), t, cond) - target) ** 2
    if weights is not None:
        err = err * weights
    return jnp.mean(err)


def ddim_timesteps(num_train_steps: int, steps: int) -> np.ndarray:
    """The decreasing sub-sequence of `steps` training timesteps that DDIM visits, from T-1 down to 0."""
    if not 1 <= steps <= num_train_steps:
        raise ValueError(f"sampling steps={steps} must be in [1, {num_train_steps}] (the training steps)")
    return np.unique(np.linspace(0, num_train_steps - 1, steps).round().astype(np.int32))[::-1].copy()


def ddim_sample(eps_fn: EpsFn, cond: jnp.ndarray, key: jax.Array, shape: tuple[int, ...], abars: jnp.ndarray,
                timesteps: np.ndarray, eta: float = 0.0, clip: float | None = None,
                prediction: str = "eps") -> jnp.ndarray:
    """Sample x0 of `shape` (B, ...) given cond (B, C) with DDIM over `timesteps` (decreasing, static).

    `eps_fn` returns the noise or x0 estimate according to `prediction` (see module docstring).

    x0-predictions are clipped to [-clip, clip] when `clip` is set. Runs as one `lax.scan`, so it is cheap to
    jit-compile whatever the number of steps.
    """
    k_init, k_loop = jax.random.split(key)
    x = jax.random.normal(k_init, shape)
    ts = jnp.asarray(timesteps, jnp.int32)
    prev = jnp.concatenate([ts[1:], jnp.asarray([-1], jnp.int32)])
    keys = jax.random.split(k_loop, len(timesteps))

    def step(x, inputs):
        t, t_prev, k = inputs
        a_t = abars[t]
        a_prev = jnp.where(t_prev >= 0, abars[jnp.maximum(t_prev, 0)], 1.0)
        out = eps_fn(x, jnp.full((shape[0],), t, jnp.int32), cond)
        x0 = (x - jnp.sqrt(1.0 - a_t) * out) / jnp.sqrt(a_t) if prediction == "eps" else out
        if clip is not None:
            x0 = jnp.clip(x0, -clip, clip)
        eps = (x - jnp.sqrt(a_t) * x0) / jnp.sqrt(1.0 - a_t)
        sigma = eta * jnp.sqrt((1.0 - a_prev) / (1.0 - a_t) * (1.0 - a_t / a_prev))
        direction = jnp.sqrt(jnp.maximum(1.0 - a_prev - sigma**2, 0.0)) * eps
        x = jnp.sqrt(a_prev) * x0 + direction + sigma * jax.random.normal(k, shape)
        return x, None

    x, _ = jax.lax.scan(step, x, (ts, prev, keys))
    return x
