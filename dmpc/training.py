"""Fitting any of our models: minibatches drawn inside jit from device arrays, `chunk` steps per compiled call,
a held-out loss after every chunk, and a state that checkpoints and resumes to the same bits.

`fit(loss_fn, params, arrays, ...)` runs AdamW with gradient clipping on `loss_fn(params, batch, key)`; the batch
is a dict of rows of `arrays` (the normalized training windows) plus the `constants` (tables passed whole, e.g. the
value model's per-episode tail states). One `lax.scan` over `chunk` steps per call keeps Python dispatch (costly
on CPU) out of the inner loop; the last chunk is shortened so exactly `steps` steps run.

Determinism: every random number comes from `key`, split once per chunk; `FitState` (step, params, optimizer state,
key, history) taken at a chunk boundary and passed back as `start` continues exactly as the uninterrupted fit
(`save_fit_state` / `load_fit_state`: one `common.checkpoint` file). The held-out loss uses its own fixed key, so
measuring it changes nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from common.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, save_checkpoint

LossFn = Callable[[Any, dict[str, jnp.ndarray], jax.Array], jnp.ndarray]
VAL_BATCHES = 8  # held-out loss on at most this many batches (evenly spaced rows, the same every chunk)


@dataclass
class FitState:
    """A fit at a chunk boundary: `step` steps done; `history` has per chunk "step", "loss" (mean training loss
    of the chunk) and, with held-out data, "val_loss"."""

    step: int
    params: Any
    opt_state: Any
    key: jax.Array
    history: dict[str, list] = field(default_factory=lambda: {"step": [], "loss": []})


def make_optimizer(steps: int, lr: float, weight_decay: float = 1e-4) -> optax.GradientTransformation:
    """AdamW with global-norm clipping at 1 and a cosine decay of the learning rate to 0.1 lr over `steps`."""
    return optax.chain(optax.clip_by_global_norm(1.0),
                       optax.adamw(optax.cosine_decay_schedule(lr, steps, 0.1), weight_decay=weight_decay))


def fit(loss_fn: LossFn, params, arrays: dict[str, np.ndarray], *, steps: int, batch_size: int, lr: float,
        key: jax.Array, chunk: int = 100, weight_decay: float = 1e-4, constants: dict[str, np.ndarray] | None = None,
        val_arrays: dict[str, np.ndarray] | None = None, start: FitState | None = None,
        on_chunk: Callable[[FitState], bool] | None = None, progress=None,
        log: Callable[[dict, int], None] | None = None, name: str = "model") -> FitState:
    """Train until `steps` steps are done (from `start` when resuming) and return the final state.

    `on_chunk(state)` runs after every chunk (to checkpoint); returning True stops the fit there (a time budget).
    """
    data = {k: jnp.asarray(v) for k, v in arrays.items()}
    tables = {k: jnp.asarray(v) for k, v in (constants or {}).items()}
    n = next(iter(data.values())).shape[0]
    opt = make_optimizer(steps, lr, weight_decay)
    state = start or FitState(0, params, opt.init(params), key)
    evaluate = _held_out_loss(loss_fn, val_arrays, tables, batch_size) if val_arrays else None
    if evaluate is not None:
        state.history.setdefault("val_loss", [])

    @functools.partial(jax.jit, static_argnames="length")
    def run_chunk(params, opt_state, key, length: int):
        def step(carry, k):
            params, opt_state = carry
            k_idx, k_loss = jax.random.split(k)
            idx = jax.random.randint(k_idx, (batch_size,), 0, n)
            batch = {**{name: v[idx] for name, v in data.items()}, **tables}
            loss, grads = jax.value_and_grad(loss_fn)(params, batch, k_loss)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), jax.random.split(key, length))
        return params, opt_state, jnp.mean(losses)

    chunk = max(1, chunk)
    n_chunks = -(-(steps - state.step) // chunk)
    iterator = progress(range(n_chunks), total=n_chunks, desc=f"train {name}") if progress else range(n_chunks)
    for _ in iterator:
        length = min(chunk, steps - state.step)
        key, k = jax.random.split(state.key)
        params, opt_state, loss = run_chunk(state.params, state.opt_state, k, length)
        state = FitState(state.step + length, params, opt_state, key, state.history)
        state.history["step"].append(state.step)
        state.history["loss"].append(float(loss))
        metrics = {f"{name}/loss": state.history["loss"][-1]}
        if evaluate is not None:
            state.history["val_loss"].append(float(evaluate(params)))
            metrics[f"{name}/val_loss"] = state.history["val_loss"][-1]
        if log:
            log(metrics, state.step)
        if on_chunk is not None and on_chunk(state) and state.step < steps:
            break
    return state


def _held_out_loss(loss_fn: LossFn, val_arrays: dict[str, np.ndarray], tables: dict[str, jnp.ndarray],
                   batch_size: int) -> Callable[[Any], jnp.ndarray]:
    """params -> mean loss over up to VAL_BATCHES batches of evenly spaced held-out rows, with a fixed key."""
    n = next(iter(val_arrays.values())).shape[0]
    groups = max(1, min(VAL_BATCHES, n // batch_size))
    size = min(batch_size, n // groups)
    rows = np.linspace(0, n - 1, groups * size).round().astype(np.int64)
    batches = {k: jnp.asarray(np.asarray(v)[rows].reshape(groups, size, *np.shape(v)[1:]))
               for k, v in val_arrays.items()}
    keys = jax.random.split(jax.random.key(0), groups)

    @jax.jit
    def evaluate(params):
        return jnp.mean(jax.lax.map(lambda b: loss_fn(params, {**b[0], **tables}, b[1]), (batches, keys)))

    return evaluate


def save_fit_state(directory: str | Path, state: FitState, with_optimizer: bool = True, keep_last: int = 2) -> Path:
    """Checkpoint `state` in `directory` (`common.checkpoint`; step = state.step). Without the optimizer (a
    finished fit) the file holds only what evaluation and skipping need: params, key, history."""
    record: dict[str, Any] = {"params": jax.tree_util.tree_map(np.asarray, state.params),
                              "key": np.asarray(jax.random.key_data(state.key)), "history": state.history}
    if with_optimizer:
        leaves = jax.tree_util.tree_leaves(state.opt_state)
        record["opt"] = {f"{i:04d}": np.asarray(x) for i, x in enumerate(leaves)}
    return save_checkpoint(directory, state.step, record, keep_last=keep_last)


def load_fit_state(directory: str | Path, opt_template: Any) -> FitState | None:
    """The newest `FitState` in `directory`, or None; `opt_template` (any optimizer state of the same optimizer and
    parameter shapes, e.g. `make_optimizer(...).init(params)`) gives the optimizer state its structure. A file
    saved without the optimizer comes back with `opt_state=None` (a finished fit)."""
    path = latest_checkpoint(directory)
    if path is None:
        return None
    step, saved = load_checkpoint(path, framework="numpy")
    opt_state = None
    if "opt" in saved:
        leaves, treedef = jax.tree_util.tree_flatten(opt_template)
        if len(saved["opt"]) != len(leaves):
            raise CheckpointError(f"{path} holds {len(saved['opt'])} optimizer arrays; this model's optimizer has "
                                  f"{len(leaves)} (another model or optimizer was checkpointed here)")
        opt_state = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(saved["opt"][f"{i:04d}"])
                                                           for i in range(len(leaves))])
    params = jax.tree_util.tree_map(jnp.asarray, saved["params"])
    history = {k: list(v) for k, v in saved["history"].items()}
    return FitState(step, params, opt_state, jax.random.wrap_key_data(jnp.asarray(saved["key"])), history)
