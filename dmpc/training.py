"""Fitting any of our models: minibatches drawn inside jit from device arrays, `chunk` steps per compiled call.

`fit(loss_fn, params, arrays, ...)` runs AdamW with gradient clipping on `loss_fn(params, batch, key)`; the
batch is a dict of rows of `arrays` (the normalized training windows). One `lax.scan` over `chunk` steps per
call keeps Python dispatch (costly on CPU) out of the inner loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

LossFn = Callable[[Any, dict[str, jnp.ndarray], jax.Array], jnp.ndarray]


def fit(loss_fn: LossFn, params, arrays: dict[str, np.ndarray], *, steps: int, batch_size: int, lr: float,
        key: jax.Array, chunk: int = 100, weight_decay: float = 1e-4, progress=None,
        log: Callable[[dict, int], None] | None = None, name: str = "model") -> tuple[Any, list[float]]:
    """Train for `steps` steps; returns (params, mean loss of each chunk)."""
    data = {k: jnp.asarray(v) for k, v in arrays.items()}
    n = next(iter(data.values())).shape[0]
    opt = optax.chain(optax.clip_by_global_norm(1.0),
                      optax.adamw(optax.cosine_decay_schedule(lr, steps, 0.1), weight_decay=weight_decay))
    opt_state = opt.init(params)
    chunk = max(1, min(chunk, steps))

    @jax.jit
    def run_chunk(params, opt_state, key):
        def step(carry, k):
            params, opt_state = carry
            k_idx, k_loss = jax.random.split(k)
            idx = jax.random.randint(k_idx, (batch_size,), 0, n)
            batch = {name: v[idx] for name, v in data.items()}
            loss, grads = jax.value_and_grad(loss_fn)(params, batch, k_loss)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), jax.random.split(key, chunk))
        return params, opt_state, jnp.mean(losses)

    history: list[float] = []
    n_chunks = -(-steps // chunk)
    iterator = progress(range(n_chunks), total=n_chunks, desc=f"train {name}") if progress else range(n_chunks)
    for i in iterator:
        key, k = jax.random.split(key)
        params, opt_state, loss = run_chunk(params, opt_state, k)
        history.append(float(loss))
        if log:
            log({f"{name}/loss": history[-1]}, (i + 1) * chunk)
    return params, history
