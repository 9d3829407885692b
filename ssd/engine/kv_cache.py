"""Pre-allocated KV cache: one fixed-size slot per sequence (or per speculation branch).

Layout: for each layer, `k[i]` and `v[i]` are (num_slots, Hkv, max_len, Dh) tensors allocated once. A sequence
owns a slot; the token at position p has its key/value at `[slot, :, p]`. Nothing is freed or compacted while
decoding: a sequence's valid length lives in its `Sequence` object, and attention masks by position, so
rejecting draft tokens is free (their entries are simply overwritten later) and every decode/verify step has
static shapes, which is what CUDA graphs need. Why not paged: our batches are small (the paper's regime is batch
1-16) and slots keep the GPU path free of block tables; the memory cost is num_slots * max_len per layer.

`copy_slot` clones one slot into another (used to fork a draft cache into speculation branches), `SlotPool`
hands out and takes back slot indices.
"""

from __future__ import annotations

import torch
from torch import Tensor


class KVCache:
    """Per-layer key/value tensors (S, Hkv, L, Dh) for `num_slots` sequences of at most `max_len` tokens."""

    def __init__(self, num_layers: int, num_slots: int, num_kv_heads: int, max_len: int, head_dim: int,
                 dtype: torch.dtype, device: torch.device | str) -> None:
        shape = (num_slots, num_kv_heads, max_len, head_dim)
        self.k: list[Tensor] = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.v: list[Tensor] = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.num_slots, self.max_len = num_slots, max_len
        # the decode-attention kernel's per-(row, KV head) split counters; rows <= 2 * slots (graph padding)
        self.attention_locks = torch.zeros(2 * num_slots * num_kv_heads, dtype=torch.int32, device=device)

    @classmethod
    def for_model(cls, config, num_slots: int, max_len: int, dtype: torch.dtype,
                  device: torch.device | str) -> KVCache:
        """A cache sized for a `LlamaConfig`."""
        return cls(config.num_layers, num_slots, config.num_kv_heads, max_len, config.head_dim, dtype, device)

    def copy_slot(self, src: Tensor, dst: Tensor) -> None:
        """Copy slots `src` (N,) into slots `dst` (N,) in every layer."""
        for k, v in zip(self.k, self.v, strict=True):
            k[dst] = k[src]
            v[dst] = v[src]

    def nbytes(self) -> int:
        """Memory held by the cache in bytes."""
        return sum(t.numel() * t.element_size() for t in (*self.k, *self.v))


class SlotPool:
    """Free-list of slot indices 0..n-1."""

    def __init__(self, n: int) -> None:
        self.free = list(range(n - 1, -1, -1))
        self.n = n

    def take(self) -> int:
        if not self.free:
            raise RuntimeError(f"all {self.n} KV-cache slots are in use; raise max_batch_size")
        return self.free.pop()

    def give(self, slot: int) -> None:
        self.free.append(slot)
