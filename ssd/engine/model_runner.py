"""ModelRunner: one model + its KV cache; prefill and the forwards a decoding round is made of.

Every forward is `forward(tokens (R, T), positions (R, T), slots (R,)) -> logits (R, T, V)` in the model's dtype:
decode is T=1, speculative verification T=K+1, a draft catch-up step T=2; speculation branches add
`prefix_slots` / `prefix_lens` to read their sequence's prefix in place. The cache has `num_slots` slots for
sequences and speculation branches plus one scratch slot (the last) that padding rows of a batch write into, so
they never touch a real sequence. Forwards are plain calls (the strategies run them under inference mode and capture
whole rounds of them into CUDA graphs, `ssd.engine.round_graph`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ssd.engine.kv_cache import KVCache
from ssd.models.llama import Llama


class ModelRunner:
    """Owns `model` and a `KVCache` of `num_slots` usable slots (+1 scratch slot) of `max_len` positions."""

    def __init__(self, model: Llama, num_slots: int, max_len: int, device: str | torch.device) -> None:
        self.model, self.device, self.max_len = model, torch.device(device), max_len
        dtype = next(model.parameters()).dtype
        self.cache = KVCache.for_model(model.config, num_slots + 1, max_len, dtype, self.device)
        self.num_slots = num_slots
        self.scratch_slot = num_slots
        self.vocab_size = model.config.vocab_size
        if model.cos is None or model.cos.shape[0] < max_len:
            model.setup_rope(max_len, self.device)

    def prefill(self, prompts: list[list[int]], slots: list[int], chunk_tokens: int = 8192) -> None:
        """Write each prompt's tokens (positions 0..n-1) into its fresh slot; equal lengths run as one batch."""
        by_length: dict[int, list[int]] = {}
        for i, prompt in enumerate(prompts):
            if prompt:
                by_length.setdefault(len(prompt), []).append(i)
        for length, rows in by_length.items():
            step = max(1, chunk_tokens // length)
            for start in range(0, len(rows), step):
                part = rows[start:start + step]
                tokens = torch.tensor([prompts[i] for i in part], dtype=torch.long, device=self.device)
                positions = torch.arange(length, device=self.device).expand(len(part), -1)
                index = torch.tensor([slots[i] for i in part], device=self.device)
                self.model(tokens, positions, self.cache, index, last_only=True, prefill=True)

    def forward(self, tokens: Tensor, positions: Tensor, slots: Tensor, prefix_slots: Tensor | None = None,
                prefix_lens: Tensor | None = None) -> Tensor:
        """Logits (R, T, V) for `tokens` at `positions` in cache `slots` (optionally over a shared prefix)."""
        return self.model(tokens, positions, self.cache, slots, prefix_slots=prefix_slots, prefix_lens=prefix_lens)
