"""Vanilla speculative decoding: the draft proposes K tokens, the target verifies them in one forward.

Round for B sequences of lengths n_b (target cache holds tokens[:n_b-1]):
1. draft: feed the last two tokens (catch-up, T=2), then K-1 single-token steps, sampling d_1..d_K from the
   processed draft distribution q_i (one-hot argmax when greedy);
2. target: one forward over [last, d_1..d_K] at positions n_b-1 .. n_b-1+K -> p_1..p_{K+1};
3. `ssd.decoding.verification.verify(p, q, d, u)` -> accepted count a_b and bonus token; emit d_1..d_a, bonus.
Rejected tokens' cache entries are left in place and masked by position, so no cache rollback is needed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ssd.decoding.base import Strategy
from ssd.decoding.verification import verify
from ssd.engine.model_runner import ModelRunner
from ssd.engine.sampler import SamplingParams, processed_probs, sample_from
from ssd.engine.sequence import Sequence


class SpeculativeDecoding(Strategy):
    """Draft K tokens with a smaller model, verify with the target."""

    name = "sd"

    def __init__(self, target: ModelRunner | None, draft: ModelRunner, k: int = 4, seed: int = 0) -> None:
        if k < 1:
            raise ValueError(f"k={k} must be >= 1")
        if target is not None and draft.vocab_size != target.vocab_size:
            raise ValueError(f"draft vocab {draft.vocab_size} != target vocab {target.vocab_size}")
        self.k = k
        super().__init__(target, seed, device=draft.device)
        self.draft = draft
        self.vocab_size = draft.vocab_size

    def prefill(self, seqs: list[Sequence]) -> None:
        super().prefill(seqs)
        for seq in seqs:
            seq.draft_slots = [self.draft.slots.take()]
        self.draft.prefill([s.token_ids[:-1] for s in seqs], [s.draft_slots[0] for s in seqs])

    def release(self, seqs: list[Sequence]) -> None:
        super().release(seqs)
        for seq in seqs:
            for slot in seq.draft_slots:
                self.draft.slots.give(slot)
            seq.draft_slots = []

    def step(self, seqs: list[Sequence], params: SamplingParams) -> list[list[int]]:
        with self.telemetry.timer("draft"):
            slots = torch.tensor([s.draft_slots[0] for s in seqs], device=self.device)
            first, first_pos = self.catch_up_inputs(seqs)
            tokens, q, _ = self.draft_from(first, first_pos, slots, params, self.k)
        with self.telemetry.timer("verify"):
            accepted, bonus = self.verify(seqs, tokens, q, params)
        return self.emit(tokens, accepted, bonus)

    def draft_from(self, tokens: Tensor, pos: Tensor, slots: Tensor, params: SamplingParams, steps: int,
                   reweight=None) -> tuple[Tensor, Tensor, Tensor]:
        """Draft K tokens after feeding `tokens` (B, 2) at `pos` (B, 2) into draft cache `slots` (B,).

        Returns (tokens (B, K), the distributions they were sampled from q (B, K, V), raw logits (B, steps, V)).
        Runs `steps` forwards (K or K+1; the extra one gives the logits after d_K, for Saguaro's cache).
        `reweight(logits_i, probs_i, i)` may replace the sampling distribution at draft index i (Saguaro).
        """
        logits = self.draft.forward(tokens, pos, slots)[:, -1]
        next_pos = pos[:, -1] + 1
        drafted, dists, all_logits = [], [], [logits]
        for i in range(steps):
            if i == self.k:
                break
            probs = processed_probs(logits, params.temperature, params.top_p)
            if reweight is not None:
                probs = reweight(logits, probs, i)
            token = sample_from(probs, self.uniforms(tokens.shape[0]))
            drafted.append(token)
            dists.append(probs)
            if i + 1 < steps:
                logits = self.draft.forward(token[:, None], (next_pos + i)[:, None], slots)[:, 0]
                all_logits.append(logits)
        return torch.stack(drafted, 1), torch.stack(dists, 1), torch.stack(all_logits, 1)

    def verify(self, seqs: list[Sequence], tokens: Tensor, q: Tensor, params: SamplingParams) -> tuple[Tensor, Tensor]:
        """Target forward over [last, d_1..d_K] and the exact acceptance rule; (accepted (B,), bonus (B,))."""
        last, pos, slots = self.last_tokens(seqs)
        inputs = torch.cat([last[:, None], tokens], 1)
        positions = pos[:, None] + torch.arange(self.k + 1, device=self.device)
        p = self.target_probs(self.target.forward(inputs, positions, slots), params)
        return verify(p, q, tokens, self.uniforms(len(seqs), self.k + 1), greedy=params.greedy)

    def emit(self, tokens: Tensor, accepted: Tensor, bonus: Tensor) -> list[list[int]]:
        """Per sequence: accepted draft tokens followed by the bonus token; records acceptance telemetry."""
        counts = accepted.tolist()
        self.telemetry.record_acceptance(counts)
        rows = tokens.tolist()
        return [row[:n] + [b] for row, n, b in zip(rows, counts, bonus.tolist(), strict=True)]
