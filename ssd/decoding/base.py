"""The one interface every decoding strategy implements.

    strategy = SpeculativeDecoding(target_runner, draft_runner, k=4, seed=0)
    telemetry = strategy.generate(sequences, params, on_tokens=print)

`step(seqs, params)` runs one round for the active sequences and returns each one's new tokens (1 for
autoregressive, 1..K+1 for speculative strategies); `generate` prefills, loops `step` until every sequence has
finished (stop token or length), streams each round's kept tokens through `on_tokens(seq, tokens)`, and returns
the run's `Telemetry`. Strategies draw every random number from their own `torch.Generator` (seeded), so a seed
fixes the output.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import Tensor

from ssd.engine.model_runner import ModelRunner
from ssd.engine.sampler import SamplingParams, processed_probs
from ssd.engine.sequence import Sequence
from ssd.engine.telemetry import Telemetry

TokenCallback = Callable[[Sequence, list[int]], None]


class Strategy:
    """Base class: prefill + round loop; subclasses implement `step` (and extend `prefill` for a draft)."""

    name = "base"
    k = 0

    def __init__(self, target: ModelRunner | None, seed: int = 0, device: torch.device | None = None) -> None:
        self.target = target  # None on a draft-only process (`ssd.engine.distributed`)
        self.device = target.device if target is not None else torch.device(device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.telemetry = Telemetry(strategy=self.name, k=self.k)

    def lookahead(self) -> int:
        """How many positions past the current length one round may write (the cache must fit them)."""
        return self.k + 2

    def prefill(self, seqs: list[Sequence]) -> None:
        """Take a target slot per sequence and write `token_ids[:-1]` into it."""
        if self.target is None:
            return
        for seq in seqs:
            seq.slot = self.target.slots.take()
        self.target.prefill([s.token_ids[:-1] for s in seqs], [s.slot for s in seqs])

    def release(self, seqs: list[Sequence]) -> None:
        """Give the sequences' cache slots back."""
        for seq in seqs:
            if seq.slot >= 0 and self.target is not None:
                self.target.slots.give(seq.slot)
                seq.slot = -1

    def step(self, seqs: list[Sequence], params: SamplingParams) -> list[list[int]]:
        raise NotImplementedError

    def generate(self, seqs: list[Sequence], params: SamplingParams,
                 on_tokens: TokenCallback | None = None) -> Telemetry:
        """Decode every sequence to completion; return this run's telemetry."""
        self.telemetry = Telemetry(strategy=self.name, k=self.k)
        start = time.perf_counter()
        self.prefill(seqs)
        self.telemetry.prefill_s = time.perf_counter() - start
        start = time.perf_counter()
        try:
            active = [s for s in seqs if not s.finished]
            while active:
                new_tokens = self.step(active, params)
                self.telemetry.rounds += 1
                for seq, tokens in zip(active, new_tokens, strict=True):
                    kept = seq.append(tokens)
                    self.telemetry.generated_tokens += len(kept)
                    if on_tokens is not None and kept:
                        on_tokens(seq, kept)
                active = [s for s in active if not s.finished]
        finally:
            self.telemetry.loop_s = time.perf_counter() - start
            self.release(seqs)
        return self.telemetry

    # helpers shared by the strategies -------------------------------------------------------------------------
    def uniforms(self, *shape: int) -> Tensor:
        """Uniform [0, 1) float32 numbers from this strategy's generator."""
        return torch.rand(shape, generator=self.generator, device=self.device)

    def target_probs(self, logits: Tensor, params: SamplingParams) -> Tensor:
        """The distribution the output must follow (temperature, top-p; one-hot if greedy)."""
        return processed_probs(logits, params.temperature, params.top_p)

    def last_tokens(self, seqs: list[Sequence]) -> tuple[Tensor, Tensor, Tensor]:
        """(last token (B,), its position (B,), target slots (B,)) of each sequence."""
        last = torch.tensor([s.token_ids[-1] for s in seqs], device=self.device)
        pos = torch.tensor([s.num_tokens - 1 for s in seqs], device=self.device)
        slots = torch.tensor([s.slot for s in seqs], device=self.device)
        return last, pos, slots

    def catch_up_inputs(self, seqs: list[Sequence]) -> tuple[Tensor, Tensor]:
        """Last two tokens and positions (B, 2) (the first repeated for a 1-token sequence): a draft's first step."""
        tokens = torch.tensor([s.token_ids[-2:] if s.num_tokens > 1 else s.token_ids * 2 for s in seqs],
                              device=self.device)
        pos = torch.tensor([[max(s.num_tokens - 2, 0), s.num_tokens - 1] for s in seqs], device=self.device)
        return tokens, pos
