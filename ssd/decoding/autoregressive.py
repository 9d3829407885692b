"""Autoregressive decoding: one target forward per token (the baseline every speed-up is measured against).

A round: feed each row's last token at position length - 1, sample the next from the processed target
distribution (argmax when greedy), append it. One piece, one CUDA graph.
"""

from __future__ import annotations

from collections.abc import Callable

from ssd.decoding.base import RoundState, Strategy
from ssd.engine.sampler import sample_tokens


class Autoregressive(Strategy):
    """Feed the last token, sample the next."""

    name = "ar"
    timer_of = {"decode": "verify"}

    def width(self) -> int:
        return 1

    def lookahead(self) -> int:
        return 2

    def round_pieces(self, state: RoundState) -> dict[str, Callable[[], None]]:
        return {"decode": lambda: self.decode(state)}

    def decode(self, state: RoundState) -> None:
        batch, slots = state.batch, state.buffers["target_slots"]
        last, pos = batch.last(1)
        logits = self.target.forward(last, pos, slots)[:, 0]
        uniforms = None if state.params.greedy else self.uniforms(batch.rows)
        token, _ = sample_tokens(logits, state.params, uniforms)
        batch.emit(token[:, None], (~batch.done).long())
