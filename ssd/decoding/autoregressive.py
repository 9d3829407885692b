"""Autoregressive decoding: one target forward per token (the baseline every speed-up is measured against)."""

from __future__ import annotations

from ssd.decoding.base import Strategy
from ssd.engine.sampler import SamplingParams, sample_from
from ssd.engine.sequence import Sequence


class Autoregressive(Strategy):
    """Feed the last token, sample the next from the processed target distribution."""

    name = "ar"

    def step(self, seqs: list[Sequence], params: SamplingParams) -> list[list[int]]:
        last, pos, slots = self.last_tokens(seqs)
        with self.telemetry.timer("verify"):
            logits = self.target.forward(last[:, None], pos[:, None], slots)[:, 0]
            tokens = sample_from(self.target_probs(logits, params), self.uniforms(len(seqs)))
        return [[t] for t in tokens.tolist()]
