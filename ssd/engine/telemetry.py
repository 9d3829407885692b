"""Per-run telemetry: throughput, acceptance per position, accepted length, cache hits, time split, overlap.

Counting happens on the device, inside the rounds (`DeviceCounters`: no host synchronisation), and is read once
when the run ends. Timing is off unless asked for (`Telemetry(timing=True)`): then `timer(name)` brackets a piece
of a round with CUDA events on the stream it runs on (wall-clock on the CPU), resolved once at the end, so a timed
run pays no synchronisation inside the loop either. `summary()` turns the counters into the numbers we report:

- `tokens_per_s`: generated tokens / wall seconds of the generation loop (prefill excluded, `prefill_s` apart);
- `acceptance_per_position[i]`: P(draft token i+1 accepted | tokens 1..i accepted), over all rounds;
- `mean_accepted`: mean number of draft tokens accepted per round; `tokens_per_round` = that + 1 (bonus);
- `cache_hit_rate`: fraction of Saguaro rounds whose previous outcome (k, bonus) was in the speculation cache;
- `time_s` (timed runs): seconds in draft / verify / overhead; on a GPU the draft's cache building runs beside
  the verify, so draft + verify can exceed the loop time; `draft_overlap_fraction`: the fraction of the verify
  time during which the draft stream was building the cache (CUDA events on both streams);
- on the CPU, where the cache building runs after the verify: `async_time_s`, the round time a concurrent draft
  would give (sum over rounds of backup_draft + draft + max(cache_build, verify) + overhead), and
  `hidden_draft_tokens_per_s`: tokens / (loop time - cache_build time), the bound if the cache building ran on
  hardware of its own at no cost to the target (the draft-on-its-own-GPU layout with a free draft).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

TIMERS = ("draft", "verify", "cache_build", "backup_draft")


class DeviceCounters:
    """Acceptance and cache counters as one int64 device tensor, updated inside rounds.

    Layout: [sequence_rounds, accepted_total, cache_lookups, cache_hits, backup_neural, backup_random,
    reached (K), accepted_at (K)].
    """

    def __init__(self, k: int, device: torch.device) -> None:
        self.k = k
        self.values = torch.zeros(6 + 2 * k, dtype=torch.long, device=device)
        self.positions = torch.arange(k, device=device)

    def reset(self) -> None:
        self.values.zero_()

    def record_acceptance(self, accepted: Tensor, active: Tensor) -> None:
        """One round: accepted (R,) draft tokens per row, counted where `active` (R,) bool."""
        act = active.long()
        self.values[0] += act.sum()
        self.values[1] += (accepted * act).sum()
        if self.k:
            tested = (self.positions[None] <= accepted[:, None]) & active[:, None]  # position i tested if n >= i
            passed = (self.positions[None] < accepted[:, None]) & active[:, None]
            self.values[6:6 + self.k] += tested.long().sum(0)
            self.values[6 + self.k:] += passed.long().sum(0)

    def record_lookup(self, hit: Tensor, active: Tensor) -> None:
        """One Saguaro lookup: hit (R,) bool among the active rows."""
        self.values[2] += active.long().sum()
        self.values[3] += (hit & active).long().sum()

    def record_backup(self, missed: Tensor, neural: bool) -> None:
        """Rows (R,) bool that took the backup speculator."""
        self.values[4 if neural else 5] += missed.long().sum()

    def read_into(self, tel: Telemetry) -> None:
        """Copy the counts into the host-side telemetry (one device-to-host read)."""
        v = self.values.tolist()
        tel.sequence_rounds, tel.accepted_total, tel.cache_lookups, tel.cache_hits = v[0], v[1], v[2], v[3]
        tel.backup_neural, tel.backup_random = v[4], v[5]
        tel.reached, tel.accepted_at = v[6:6 + self.k], v[6 + self.k:]


@dataclass
class Telemetry:
    """Counters and timers for one `generate` call."""

    strategy: str = ""
    k: int = 0
    timing: bool = False
    concurrent: bool = False  # the cache building runs beside the verify (its own CUDA stream or process)
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
    timers: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TIMERS, 0.0))
    async_round_s: float = 0.0
    overlap_s: float = 0.0
    _pending: list[tuple[str, Any, Any]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.reached = [0] * self.k
        self.accepted_at = [0] * self.k

    @contextmanager
    def timer(self, name: str, stream: torch.cuda.Stream | None = None):
        """Time the enclosed device work under `name` (no-op unless `timing`); CUDA events on `stream`."""
        if not self.timing:
            yield
            return
        if stream is None:
            start = time.perf_counter()
            yield
            self.timers[name] = self.timers.get(name, 0.0) + time.perf_counter() - start
            return
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record(stream)
        yield
        end.record(stream)
        self._pending.append((name, begin, end))

    def resolve(self) -> None:
        """Turn the recorded CUDA events into seconds (one synchronisation; call after the loop).

        Also measures how long each verify overlapped the cache building of the same round.
        """
        if not self._pending:
            return
        torch.cuda.synchronize()
        origin = self._pending[0][1]
        spans: list[tuple[str, float, float]] = []
        for name, begin, end in self._pending:
            start_ms, end_ms = origin.elapsed_time(begin), origin.elapsed_time(end)
            self.timers[name] = self.timers.get(name, 0.0) + (end_ms - start_ms) / 1e3
            spans.append((name, start_ms, end_ms))
        builds = [(s, e) for name, s, e in spans if name == "cache_build"]
        verifies = [(s, e) for name, s, e in spans if name == "verify"]
        if builds and len(builds) == len(verifies):  # one of each per round, in order
            self.overlap_s = sum(max(0.0, min(ve, be) - max(vs, bs))
                                 for (vs, ve), (bs, be) in zip(verifies, builds, strict=True)) / 1e3
        self._pending.clear()

    def record_acceptance(self, num_accepted: list[int]) -> None:
        """One round's accepted counts, one per active sequence (host-side counting, e.g. the 2-process layout)."""
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
        serial = t["draft"] + t["backup_draft"] + t["verify"] + (0.0 if self.concurrent else t["cache_build"])
        overhead = max(self.loop_s - serial, 0.0) if self.timing else 0.0
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
        if self.timing and self.cache_lookups and t["cache_build"] > 0:
            if self.concurrent:
                out["draft_overlap_fraction"] = self.overlap_s / t["verify"] if t["verify"] > 0 else None
                out["time_s"]["cache_build"] = round(t["cache_build"], 6)
            else:  # single CPU: cache building timed apart, after the verify
                async_s = self.async_round_s + overhead
                out["async_time_s"] = round(async_s, 6)
                out["async_tokens_per_s"] = self.generated_tokens / async_s if async_s > 0 else None
                hidden_s = self.loop_s - t["cache_build"]
                out["hidden_draft_time_s"] = round(hidden_s, 6)
                out["hidden_draft_tokens_per_s"] = self.generated_tokens / hidden_s if hidden_s > 0 else None
        return out
