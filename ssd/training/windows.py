"""Token windows from a flat corpus split: random training batches and fixed, non-overlapping validation windows.

Batches are a pure function of (seed, step), so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import numpy as np


def train_batch(tokens: np.ndarray, batch_size: int, seq_len: int, seed: int, step: int) -> tuple[np.ndarray,
                                                                                                  np.ndarray]:
    """(inputs, targets), each (batch_size, seq_len) int64: windows at random offsets, targets shifted by one."""
    if len(tokens) < seq_len + 2:
        raise ValueError(f"training split has {len(tokens)} tokens; need more than seq_len + 1 = {seq_len + 1}")
    rng = np.random.default_rng([seed, step])
    starts = rng.integers(0, len(tokens) - seq_len - 1, size=batch_size)
    rows = np.stack([np.asarray(tokens[s:s + seq_len + 1], dtype=np.int64) for s in starts])
    return rows[:, :-1], rows[:, 1:]


def eval_windows(tokens: np.ndarray, seq_len: int, max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), each (N, seq_len) int64: consecutive windows covering the first `max_tokens` tokens."""
    n = min(len(tokens) - 1, max_tokens) // seq_len
    if n < 1:
        raise ValueError(f"validation split has {len(tokens)} tokens; need at least seq_len + 1 = {seq_len + 1}")
    flat = np.asarray(tokens[:n * seq_len + 1], dtype=np.int64)
    return flat[:-1].reshape(n, seq_len), flat[1:].reshape(n, seq_len)
