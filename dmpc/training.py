"""Fitting any of our models: minibatches drawn inside jit from device arrays, `chunk` steps per compiled call,
a held-out loss after every chunk, and a state that checkpoints and resumes to the same bits.

`fit(loss_fn, params, arrays, ...)` runs AdamW with gradient clipping on `loss_fn(params, batch, key)`; the batch
is a dict of rows of `arrays` (the normalized training windows) plus the `constants` (tables passed whole, e.g. the
value model's per-episode tail states). One `lax.scan` over `chunk` steps per call keeps Python dispatch (costly
on CPU) out of the inner loop; the last chunk is shortened so exactly `steps` steps run. `fit_many` runs D such
fits of one model on D datasets side by side, each chunk one call vmapped over them (`fit` is the case D = 1).

Determinism: every random number comes from `key`, split once per chunk; `FitState` (step, params, optimizer state,
key, history) taken at a chunk boundary and passed back as `start` continues exactly as the uninterrupted fit
(`save_fit_state` / `load_fit_state`: one `common.checkpoint` file). The held-out loss uses its own fixed key, so
measuring it changes nothing.
"""

from __future__ import annotations

import functools
import time
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
    return fit_many(loss_fn, [params], [arrays], steps=steps, batch_size=batch_size, lr=lr, keys=[key], chunk=chunk,
                    weight_decay=weight_decay, constants=[constants or {}], val_arrays=[val_arrays],
                    starts=[start], on_chunk=None if on_chunk is None else lambda states: on_chunk(states[0]),
                    progress=progress, logs=[log], names=[name])[0]


def fit_many(loss_fn: LossFn, params: list, arrays: list[dict[str, np.ndarray]], *, steps: int, batch_size: int,
             lr: float, keys: list[jax.Array], chunk: int = 100, weight_decay: float = 1e-4,
             constants: list[dict[str, np.ndarray]] | None = None,
             val_arrays: list[dict[str, np.ndarray] | None] | None = None, starts: list[FitState | None] | None = None,
             on_chunk: Callable[[list[FitState]], bool] | None = None, progress=None,
             logs: list[Callable[[dict, int], None] | None] | None = None, names: list[str] | None = None
             ) -> list[FitState]:
    """D fits of one model (one `loss_fn`, parameters of one shape) on D datasets side by side: each chunk is one
    compiled call vmapped over the D fits, so small models fill more of an accelerator. Fit d is `fit` with
    `params[d]`, `arrays[d]`, `keys[d]`, ... (datasets of any row counts: rows are padded to the longest and a
    fit samples only its own). The starts must be at one step; `on_chunk(states)` runs after every chunk.
    """
    count = len(params)
    constants = constants or [{} for _ in range(count)]
    val_arrays = val_arrays or [None] * count
    starts = starts or [None] * count
    logs, names = logs or [None] * count, names or [f"model{d}" for d in range(count)]
    at = [0 if s is None else s.step for s in starts]
    if len(set(at)) > 1:
        raise ValueError(f"fit_many: the fits start at different steps ({at})")
    data, n = _stack_padded(arrays)
    tables, _ = _stack_padded(constants)
    opt = make_optimizer(steps, lr, weight_decay)
    states = [start or FitState(0, p, opt.init(p), key) for start, p, key in zip(starts, params, keys, strict=True)]
    evaluates = [_held_out_loss(loss_fn, v, {k: jnp.asarray(t) for k, t in c.items()}, batch_size) if v else None
                 for v, c in zip(val_arrays, constants, strict=True)]
    for state, evaluate in zip(states, evaluates, strict=True):
        if evaluate is not None:
            state.history.setdefault("val_loss", [])
    run_chunk = _chunk_runner(loss_fn, opt, batch_size)

    chunk = max(1, chunk)
    n_chunks = -(-(steps - states[0].step) // chunk)
    desc = "train " + " + ".join(names)
    iterator = progress(range(n_chunks), total=n_chunks, desc=desc) if progress else range(n_chunks)
    for _ in iterator:
        length = min(chunk, steps - states[0].step)
        split = [jax.random.split(state.key) for state in states]
        tick = time.perf_counter()
        params_d, opt_d, losses = run_chunk(_stack([s.params for s in states]), _stack([s.opt_state for s in states]),
                                            jnp.stack([k for _, k in split]), data, n, tables, length)
        losses = np.asarray(losses)  # waits for the chunk
        steps_per_s = length / (time.perf_counter() - tick)  # each fit's; the first chunk includes compilation
        done = states[0].step + length
        for d in range(count):
            state = FitState(done, _index(params_d, d), _index(opt_d, d), split[d][0], states[d].history)
            state.history["step"].append(done)
            state.history["loss"].append(float(losses[d]))
            metrics = {f"{names[d]}/loss": state.history["loss"][-1], f"{names[d]}/steps_per_s": steps_per_s}
            if evaluates[d] is not None:
                state.history["val_loss"].append(float(evaluates[d](state.params)))
                metrics[f"{names[d]}/val_loss"] = state.history["val_loss"][-1]
            if logs[d]:
                logs[d](metrics, done)
            states[d] = state
        if on_chunk is not None and on_chunk(states) and done < steps:
            break
    return states


def _chunk_runner(loss_fn: LossFn, opt: optax.GradientTransformation, batch_size: int):
    """The compiled chunk over stacked fits: (params, opt_state, keys, data, n, tables, length) with a leading fit
    axis on all but `length` -> (params, opt_state, mean training loss per fit); fit d draws rows below n[d]."""

    def one(params, opt_state, key, data, n, tables, length: int):
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

    @functools.partial(jax.jit, static_argnames="length")
    def run(params, opt_state, keys, data, n, tables, length: int):
        return jax.vmap(functools.partial(one, length=length))(params, opt_state, keys, data, n, tables)

    return run


def _stack_padded(arrays: list[dict[str, np.ndarray]]) -> tuple[dict[str, jnp.ndarray], jnp.ndarray]:
    """Each name's arrays stacked on a new leading axis, rows zero-padded to the longest; and the row counts of the
    first name (the datasets' lengths)."""
    if not arrays[0]:
        return {}, jnp.zeros(len(arrays), jnp.int32)
    out = {}
    for name in arrays[0]:
        rows = max(np.shape(a[name])[0] for a in arrays)
        out[name] = jnp.stack([jnp.asarray(np.concatenate([a[name], np.zeros((rows - len(a[name]), *np.shape(a[name])[1:]),
                                                                             np.asarray(a[name]).dtype)]))
                               for a in arrays])
    first = next(iter(arrays[0]))
    return out, jnp.asarray([len(a[first]) for a in arrays], jnp.int32)


def _stack(trees: list) -> Any:
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)


def _index(tree, d: int) -> Any:
    return jax.tree_util.tree_map(lambda leaf: leaf[d], tree)


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
