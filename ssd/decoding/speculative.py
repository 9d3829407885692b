"""Vanilla speculative decoding: the draft proposes K tokens, the target verifies them in one forward.

Round for R rows of lengths n_b (target cache holds tokens[:n_b-1], draft cache at least tokens[:n_b-2]):
1. draft: feed the last two tokens (catch-up, T=2), then K-1 single-token steps, sampling d_1..d_K from the
   processed draft distribution q_i (argmax when greedy);
2. target: one forward over [last, d_1..d_K] at positions n_b-1 .. n_b-1+K -> p_1..p_{K+1};
3. `ssd.decoding.verification.verify(p, q, d, u)` -> accepted count a_b and bonus token; emit d_1..d_a, bonus.
Rejected tokens' cache entries are left in place and never read, so no cache rollback is needed. The two steps
are two pieces (two CUDA graphs, timed apart when timing is on) run back to back on one stream.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ssd.decoding.base import RoundState, Strategy
from ssd.decoding.verification import verify, verify_greedy
from ssd.engine.model_runner import ModelRunner
from ssd.engine.sampler import SamplingParams, greedy_tokens, processed_probs, sample_from
from ssd.engine.sequence import Sequence

Reweight = Callable[[Tensor, Tensor, int], Tensor]


class SpeculativeDecoding(Strategy):
    """Draft K tokens with a smaller model, verify with the target."""

    name = "sd"
    timer_of = {"draft": "draft", "verify": "verify"}

    def __init__(self, target: ModelRunner | None, draft: ModelRunner, k: int = 4, seed: int = 0,
                 cuda_graphs: bool = True) -> None:
        if k < 1:
            raise ValueError(f"k={k} must be >= 1")
        if target is not None and draft.vocab_size != target.vocab_size:
            raise ValueError(f"draft vocab {draft.vocab_size} != target vocab {target.vocab_size}")
        self.k = k
        super().__init__(target, seed, device=draft.device, cuda_graphs=cuda_graphs)
        self.draft = draft
        self.vocab_size = draft.vocab_size

    def max_rows(self) -> int:
        return min(self.draft.num_slots, self.target.num_slots if self.target is not None else self.draft.num_slots)

    def max_len(self) -> int:
        return self.draft.max_len

    # state ------------------------------------------------------------------------------------------------
    def init_state(self, state: RoundState) -> None:
        if self.target is not None:
            super().init_state(state)
        rows, k = state.batch.rows, self.k
        buf = state.buffers
        buf["draft_slots"] = self.scratch_slots(rows, scratch=self.draft.scratch_slot)
        buf["tokens"] = torch.zeros((rows, k), dtype=torch.long, device=self.device)
        if not state.params.greedy:
            buf["q"] = torch.zeros((rows, k, self.vocab_size), device=self.device)

    def prefill(self, seqs: list[Sequence], state: RoundState) -> None:
        if self.target is not None:
            super().prefill(seqs, state)
        slots = state.buffers["draft_slots"]
        slots.fill_(self.draft.scratch_slot)
        slots[:len(seqs)] = torch.arange(len(seqs), device=self.device)
        self.draft.prefill([s.token_ids[:-1] for s in seqs], list(range(len(seqs))))

    # the round ----------------------------------------------------------------------------------------------
    def round_pieces(self, state: RoundState) -> dict[str, Callable[[], None]]:
        return {"draft": lambda: self.draft_round(state), "verify": lambda: self.verify_round(state)}

    def draft_round(self, state: RoundState) -> None:
        buf = state.buffers
        first, first_pos = state.batch.last(2)
        tokens, q, _ = self.draft_from(first, first_pos, buf["draft_slots"], state.params, self.k)
        buf["tokens"].copy_(tokens)
        if q is not None:
            buf["q"].copy_(q)

    def verify_round(self, state: RoundState) -> None:
        buf = state.buffers
        accepted, bonus = self.verify(state, buf["tokens"], buf.get("q"))
        self.emit(state, buf["tokens"], accepted, bonus)

    def draft_from(self, tokens: Tensor, pos: Tensor, slots: Tensor, params: SamplingParams, steps: int,
                   reweight: Reweight | None = None, prefix_slots: Tensor | None = None,
                   prefix_lens: Tensor | None = None) -> tuple[Tensor, Tensor | None, Tensor]:
        """Draft K tokens after feeding `tokens` (R, 2) at `pos` (R, 2) into draft cache `slots` (R,).

        Returns (tokens (R, K), the distributions they were sampled from q (R, K, V) float32 or None when
        greedy without reweighting, raw logits (R, steps, V)). Runs `steps` forwards (K or K+1; the extra one
        gives the logits after d_K, for Saguaro's cache). `reweight(logits_i, probs_i, i)` may replace the
        sampling distribution at draft index i (Saguaro). Branch rows read keys below `prefix_lens` from
        `prefix_slots` (both or neither).
        """
        prefix = {"prefix_slots": prefix_slots, "prefix_lens": prefix_lens}
        logits = self.draft.forward(tokens, pos, slots, **prefix)[:, -1]
        next_pos = pos[:, -1:] + 1
        drafted, dists, all_logits = [], [], [logits]
        for i in range(min(steps, self.k)):
            if params.greedy and reweight is None:
                token = greedy_tokens(logits)
            else:
                probs = processed_probs(logits, params.temperature, params.top_p)
                if reweight is not None:
                    probs = reweight(logits, probs, i)
                token = sample_from(probs, self.uniforms(tokens.shape[0]))
                dists.append(probs)
            drafted.append(token)
            if i + 1 < steps:
                logits = self.draft.forward(token[:, None], next_pos + i, slots, **prefix)[:, 0]
                all_logits.append(logits)
        q = torch.stack(dists, 1) if dists else None
        return torch.stack(drafted, 1), q, torch.stack(all_logits, 1)

    def verify(self, state: RoundState, tokens: Tensor, q: Tensor | None) -> tuple[Tensor, Tensor]:
        """Target forward over [last, d_1..d_K] and the exact acceptance rule; (accepted (R,), bonus (R,))."""
        last, pos = state.batch.last(1)
        inputs = torch.cat([last, tokens], 1)
        positions = pos + torch.arange(self.k + 1, device=self.device)
        logits = self.target.forward(inputs, positions, state.buffers["target_slots"])
        if state.params.greedy:  # argmax of the logits themselves: no float32 copy of (R, K+1, V)
            return verify_greedy(greedy_tokens(logits), tokens)
        p = self.target_probs(logits, state.params)
        return verify(p, q, tokens, self.uniforms(state.batch.rows, self.k + 1))

    def emit(self, state: RoundState, tokens: Tensor, accepted: Tensor, bonus: Tensor) -> Tensor:
        """Append the accepted drafts and the bonus token of each active row; count acceptance on the device."""
        batch = state.batch
        active = ~batch.done
        state.counters.record_acceptance(accepted, active)
        new = torch.cat([tokens, bonus[:, None]], 1).scatter(1, accepted[:, None], bonus[:, None])
        return batch.emit(new, (accepted + 1) * active.long())
