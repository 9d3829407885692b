"""Speculation cache: speculations prepared for the possible outcomes of the round in flight, in static buffers.

An outcome of a verification round is (k, t): k draft tokens accepted and bonus token t. While the target
verifies round T, the draft prepares, for each k and each of its top-F_k guesses t, the next round's K draft
tokens as if the outcome were (k, t). For R rows and N = sum_k F_k branches the cache holds, row-aligned with the
batch (row b's speculations are in row b):

    keys_k (N,) int64                 outcome k of each branch (the same for every row: F_k copies of k)
    keys_tok (R, N) int64             the bonus token each branch assumes
    tokens (R, N, K) int64            its draft tokens
    q (R, N, K, V) float32            the distribution each was sampled from (what verify needs; absent if greedy)
    logits (R, N, K+1, V)             the draft's raw logits after t, e_1..e_K (ranks the next round's guesses)

`lookup(accepted, bonus)` matches each row's verified outcome against its keys with tensor ops only, and `take`
gathers the matched branch's speculation, so a round can consult the cache inside a CUDA graph. Branch j of row b
keeps its own tokens in a draft KV-cache slot of its own and reads the row's prefix in place (tree attention).
"""

from __future__ import annotations

import torch
from torch import Tensor


class SpeculationCache:
    """Batched speculations of the last round, one row per batch row."""

    def __init__(self, keys_k: Tensor, rows: int, k: int, vocab: int, logits_dtype: torch.dtype,
                 with_q: bool) -> None:
        device = keys_k.device
        n = keys_k.numel()
        self.keys_k = keys_k
        self.keys_tok = torch.full((rows, n), -1, dtype=torch.long, device=device)
        self.tokens = torch.zeros((rows, n, k), dtype=torch.long, device=device)
        self.q = torch.zeros((rows, n, k, vocab), device=device) if with_q else None
        self.logits = torch.zeros((rows, n, k + 1, vocab), dtype=logits_dtype, device=device)
        self.rows = torch.arange(rows, device=device)

    def store(self, keys_tok: Tensor, tokens: Tensor, q: Tensor | None, logits: Tensor) -> None:
        """Replace the cache with this round's speculations ((R, N), (R, N, K), (R, N, K, V), (R, N, K+1, V))."""
        self.keys_tok.copy_(keys_tok)
        self.tokens.copy_(tokens)
        if self.q is not None:
            self.q.copy_(q)
        self.logits.copy_(logits)

    def lookup(self, accepted: Tensor, bonus: Tensor) -> tuple[Tensor, Tensor]:
        """(hit (R,) bool, branch (R,) int64): the branch whose key equals each row's outcome (k, t), if any."""
        match = (self.keys_k[None] == accepted[:, None]) & (self.keys_tok == bonus[:, None])
        return match.any(1), match.int().argmax(1)

    def take(self, branch: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
        """(tokens (R, K), q (R, K, V) or None, logits (R, K+1, V)) of branch[b] in each row b."""
        q = None if self.q is None else self.q[self.rows, branch]
        return self.tokens[self.rows, branch], q, self.logits[self.rows, branch]
