"""Speculation cache: speculations prepared for the possible outcomes of the round in flight, batched.

An outcome of a verification round is (k, t): k draft tokens accepted and bonus token t. While the target
verifies round T, the draft prepares, for each k and each of its top-F_k guesses t, the next round's K draft
tokens as if the outcome were (k, t). For the B sequences of round T and N = sum_k F_k branches the cache holds:

    keys_k (N,) int64                 outcome k of each branch (the same for every sequence: F_k copies of k)
    keys_tok (B, N) int64             the bonus token each branch assumes
    tokens (B, N, K) int64            its draft tokens
    q (B, N, K, V) float32            the distribution each was sampled from (what verify needs)
    logits (B, N, K+1, V) float32     the draft's raw logits after t, e_1..e_K (ranks the next round's guesses)

and, once round T is verified, each sequence's outcome. `lookup(seq_ids)` matches outcomes against keys with
tensor ops only (no host round trip), returning per sequence whether it hit and which branch. Branch j's prefix
lives in the draft KV-cache slot `seq.draft_slots[1 + j]` (slot 0 is the sequence's own).
"""

from __future__ import annotations

import torch
from torch import Tensor


class SpeculationCache:
    """Batched speculations of the last round, addressed by sequence id."""

    def __init__(self, keys_k: Tensor) -> None:
        self.keys_k = keys_k
        self.row_of: dict[int, int] = {}
        self.keys_tok = self.tokens = self.q = self.logits = None
        self.accepted = self.bonus = None

    def store(self, seq_ids: list[int], keys_tok: Tensor, tokens: Tensor, q: Tensor, logits: Tensor) -> None:
        """Replace the cache with this round's speculations (row i belongs to seq_ids[i])."""
        self.row_of = {sid: i for i, sid in enumerate(seq_ids)}
        self.keys_tok, self.tokens, self.q, self.logits = keys_tok, tokens, q, logits

    def record_outcomes(self, accepted: Tensor, bonus: Tensor) -> None:
        """The verified outcome (k (B,), t (B,)) of the stored rows."""
        self.accepted, self.bonus = accepted, bonus

    def lookup(self, seq_ids: list[int]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(cached (B,) bool: the sequence has an entry, hit (B,) bool, branch (B,) int64, row (B,) int64)."""
        device = self.keys_k.device
        cached = torch.tensor([sid in self.row_of for sid in seq_ids], device=device)
        rows = torch.tensor([self.row_of.get(sid, 0) for sid in seq_ids], device=device)
        if self.keys_tok is None:
            zeros = torch.zeros(len(seq_ids), dtype=torch.long, device=device)
            return cached, cached, zeros, zeros
        match = (self.keys_k[None] == self.accepted[rows, None]) & (self.keys_tok[rows] == self.bonus[rows, None])
        hit = match.any(1) & cached
        return cached, hit, match.int().argmax(1), rows

    def take(self, rows: Tensor, branch: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(tokens (B, K), q (B, K, V), logits (B, K+1, V)) of the given (row, branch) pairs."""
        return self.tokens[rows, branch], self.q[rows, branch], self.logits[rows, branch]

    def clear(self) -> None:
        self.row_of = {}
        self.keys_tok = self.tokens = self.q = self.logits = None
        self.accepted = self.bonus = None
