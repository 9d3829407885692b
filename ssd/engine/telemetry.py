"""Per-run telemetry: throughput, acceptance per position, accepted length, cache hits, time split.

Strategies call `round(...)` once per decoding round with what happened to each active sequence; `summary()`
turns the counters into the numbers we report:

- `tokens_per_s`: generated tokens / wall seconds of the generation loop (prefill excluded, `prefill_s` apart);
- `acceptance_per_position[i]`: P(draft token i+1 accepted | tokens 1..i accepted), over all rounds;
- `mean_accepted`: mean number of draft tokens accepted per round; `tokens_per_round` = that + 1 (bonus);
- `cache_hit_rate`: fraction of Saguaro rounds whose previous outcome (k, bonus) was in the speculation cache;
- `time_s`: wall seconds in draft / verify / overhead (overhead = loop time not inside draft or verify);
  `async_time_s`: the round time a concurrent draft would give, sum over rounds of
  backup_draft + max(cache_build, verify) + overhead, for runs whose draft and verify ran one after the other;
  `hidden_draft_tokens_per_s`: tokens / (loop time - cache_build time), the bound if the cache building ran on
  hardware of its own at no cost to the target (the draft-on-its-own-GPU layout with a free draft).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Telemetry:
    """Counters for one `generate` call."""

    strategy: str = ""
    k: int = 0
    rounds: int = 0
    sequence_rounds: int = 0
    generated_tokens: int = 0
    accepted_total: int = 0
    reached: list[int] = field(default_factory=list)
    accepted_at: list[int] = field(default_factory=list)
    cache_lookups: int = 0
    cache_hits: int = 0
    backup_neural: int = 0
    backup_random: int = 0
    prefill_s: float = 0.0
    loop_s: float = 0.0
    timers: dict[str, float] = field(default_factory=lambda: {"draft": 0.0, "verify": 0.0, "cache_build": 0.0,
                                                              "backup_draft": 0.0})
    async_round_s: float = 0.0

    def __post_init__(self) -> None:
        self.reached = [0] * self.k
        self.accepted_at = [0] * self.k

    @contextmanager
    def timer(self, name: str):
        """Accumulate wall time (device-synchronised on CUDA) under `name`."""
        _sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            _sync()
            self.timers[name] = self.timers.get(name, 0.0) + time.perf_counter() - start

    def record_acceptance(self, num_accepted: list[int]) -> None:
        """One round's accepted counts, one per active sequence."""
        self.sequence_rounds += len(num_accepted)
        for n in num_accepted:
            self.accepted_total += n
            for i in range(min(n + 1, self.k)):  # position i is tested when tokens 0..i-1 were accepted
                self.reached[i] += 1
                self.accepted_at[i] += int(i < n)

    def summary(self) -> dict[str, Any]:
        """The reported numbers (see module docstring)."""
        t = self.timers
        draft = t["draft"] + t["cache_build"] + t["backup_draft"]
        overhead = max(self.loop_s - draft - t["verify"], 0.0)
        out: dict[str, Any] = {
            "strategy": self.strategy,
            "generated_tokens": self.generated_tokens,
            "rounds": self.rounds,
            "tokens_per_s": self.generated_tokens / self.loop_s if self.loop_s > 0 else None,
            "prefill_s": round(self.prefill_s, 6),
            "time_s": {"draft": round(draft, 6), "verify": round(t["verify"], 6), "overhead": round(overhead, 6),
                       "total": round(self.loop_s, 6)},
        }
        if self.k:
            out["mean_accepted"] = self.accepted_total / max(self.sequence_rounds, 1)
            out["tokens_per_round"] = out["mean_accepted"] + 1
            out["acceptance_per_position"] = [a / r if r else None for a, r in zip(self.accepted_at, self.reached,
                                                                                   strict=True)]
        if self.cache_lookups:
            out["cache_hit_rate"] = self.cache_hits / self.cache_lookups
            out["cache_lookups"] = self.cache_lookups
            out["backup_neural"] = self.backup_neural
            out["backup_random"] = self.backup_random
        if self.cache_lookups and t["cache_build"] > 0:  # single process: cache building timed apart
            async_s = self.async_round_s + overhead
            out["async_time_s"] = round(async_s, 6)
            out["async_tokens_per_s"] = self.generated_tokens / async_s if async_s > 0 else None
            hidden_s = self.loop_s - t["cache_build"]
            out["hidden_draft_time_s"] = round(hidden_s, 6)
            out["hidden_draft_tokens_per_s"] = self.generated_tokens / hidden_s if hidden_s > 0 else None
        return out


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
