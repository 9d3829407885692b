"""The one interface every decoding strategy implements, and the round loop they share.

    strategy = SpeculativeDecoding(target_runner, draft_runner, k=4, seed=0)
    telemetry = strategy.generate(sequences, params, on_tokens=print)

A round advances every row of a `DeviceBatch` (the batch's state on the device) by 1 (autoregressive) or 1..K+1
(speculative) tokens with device work only: forwards, sampling, verification and bookkeeping. Each strategy
builds its round from pieces (`round_pieces`) that read and write static buffers; on CUDA each piece is captured
once per (padded batch size, sampling settings) into a CUDA graph and replayed (`ssd.engine.round_graph`). The
host's only contact per round is one small copy of the round's output (new tokens, kept counts, done flags):
it is read a round late where the strategy needs nothing from it (`lag = 1`), so the device never waits for the
host, and the loop stops one round after every sequence is done. Telemetry counters are summed on the device and
read once at the end. Strategies draw every random number from their own `torch.Generator` (seeded, registered
with the graphs), so a seed fixes the output.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ssd.engine.batch import DeviceBatch, apply_out
from ssd.engine.model_runner import ModelRunner
from ssd.engine.round_graph import RoundGraph
from ssd.engine.sampler import SamplingParams, processed_probs
from ssd.engine.sequence import Sequence
from ssd.engine.telemetry import DeviceCounters, Telemetry

TokenCallback = Callable[[Sequence, list[int]], None]


@dataclass
class RoundState:
    """Everything a strategy's rounds need for one (padded batch size, sampling settings)."""

    batch: DeviceBatch
    params: SamplingParams
    counters: DeviceCounters
    buffers: dict[str, Tensor] = field(default_factory=dict)
    pieces: dict[str, RoundGraph] = field(default_factory=dict)  # replayed one by one when timing
    whole: RoundGraph | None = None  # the round as one graph, replayed when not timing
    extra: dict[str, RoundGraph] = field(default_factory=dict)  # graphs outside the round (Saguaro's backups)
    host: dict[str, Any] = field(default_factory=dict)  # host-side per-run values a strategy keeps (flags)


class Strategy:
    """Base class: padded batches, prefill, the round loop; subclasses define the round."""

    name = "base"
    k = 0
    lag = 1  # rounds between a round and the host reading its output (0: read at once)
    concurrent_build = False  # Saguaro on a GPU: the cache building runs beside the verify
    timer_of: dict[str, str] = {}  # piece name -> the telemetry timer its replays count under

    def __init__(self, target: ModelRunner | None, seed: int = 0, device: torch.device | str | None = None,
                 cuda_graphs: bool = True) -> None:
        self.target = target  # None on a draft-only process (`ssd.engine.distributed`)
        self.device = target.device if target is not None else torch.device(device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda"
        self.telemetry = Telemetry(strategy=self.name, k=self.k)
        self._states: dict[tuple, RoundState] = {}

    # sizes --------------------------------------------------------------------------------------------------
    def width(self) -> int:
        """Tokens one round may emit per row."""
        return self.k + 1

    def lookahead(self) -> int:
        """How many positions past the current length one round may write (the cache must fit them)."""
        return self.k + 2

    def max_rows(self) -> int:
        """Rows the KV caches have slots for (real sequences per batch)."""
        return self.target.num_slots

    def padded_rows(self, n: int) -> int:
        """Batch rows for n sequences: the next power of two on CUDA (one graph per size), n elsewhere."""
        return 1 << max(n - 1, 0).bit_length() if self.cuda_graphs else n

    # the round loop -----------------------------------------------------------------------------------------
    def generate(self, seqs: list[Sequence], params: SamplingParams, on_tokens: TokenCallback | None = None,
                 timing: bool = False) -> Telemetry:
        """Decode every sequence to completion; return this run's telemetry."""
        if len(seqs) > self.max_rows():
            raise ValueError(f"{len(seqs)} sequences exceed the {self.max_rows()} KV-cache slots")
        with torch.inference_mode():
            state = self.state_for(self.padded_rows(len(seqs)), params)
            tel = self.telemetry = Telemetry(strategy=self.name, k=self.k, timing=timing,
                                             concurrent=self.concurrent_build)
            for graph in self.graphs_to_run(state, timing):
                graph.prepare()  # capture before the batch is loaded: the warm-up runs on done rows
            state.counters.reset()
            stops = sorted(set().union(*(s.stop_token_ids for s in seqs)))
            state.batch.load(seqs, stops)
            start = time.perf_counter()
            self.prefill(seqs, state)
            self._sync()
            tel.prefill_s = time.perf_counter() - start
            start = time.perf_counter()
            self._loop(seqs, state, on_tokens)
            tel.loop_s = time.perf_counter() - start
            state.counters.read_into(tel)
            tel.resolve()
        return tel

    def _loop(self, seqs: list[Sequence], state: RoundState, on_tokens: TokenCallback | None) -> None:
        cuda = self.device.type == "cuda"
        shape = tuple(state.batch.out.shape)
        pinned = [torch.empty(shape, dtype=torch.long, pin_memory=cuda) for _ in range(self.lag + 1)]
        events = [torch.cuda.Event() if cuda else None for _ in pinned]
        in_flight: list[int] = []
        r = 0
        while any(not s.finished for s in seqs):
            self.run_round(state)
            slot = r % len(pinned)
            state.batch.read_out(pinned[slot], events[slot])
            in_flight.append(slot)
            r += 1
            if len(in_flight) > self.lag:
                slot = in_flight.pop(0)
                if events[slot] is not None:
                    events[slot].synchronize()
                self._consume(seqs, state, pinned[slot], on_tokens)
        self._sync()

    def _consume(self, seqs: list[Sequence], state: RoundState, out: Tensor, on_tokens: TokenCallback | None) -> None:
        """Apply one round's output (a host copy of `DeviceBatch.out`) to the sequences and stream it."""
        self.on_output(state, out)
        active = [s for s in seqs if not s.finished]
        kept = apply_out(seqs, out, self.width())
        if active:
            self.telemetry.rounds += 1
        for seq, tokens in zip(seqs, kept, strict=False):
            self.telemetry.generated_tokens += len(tokens)
            if on_tokens is not None and tokens:
                on_tokens(seq, tokens)

    def on_output(self, state: RoundState, out: Tensor) -> None:
        """What a strategy reads from a round's output besides tokens (default: nothing)."""

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # what subclasses define ---------------------------------------------------------------------------------
    def state_for(self, rows: int, params: SamplingParams) -> RoundState:
        """The (cached) buffers and captured pieces for `rows` padded rows and these sampling settings."""
        key = (rows, params.temperature, params.top_p)
        if key not in self._states:
            batch = DeviceBatch(rows, self.max_len(), self.width(), self.device)
            state = RoundState(batch, params, DeviceCounters(self.k, self.device))
            self.init_state(state)
            pieces = self.round_pieces(state)
            for name, fn in pieces.items():
                state.pieces[name] = self.graph(fn)
            state.whole = self.graph(self.whole_round(pieces))
            self._states[key] = state
        return self._states[key]

    def max_len(self) -> int:
        return self.target.max_len

    def init_state(self, state: RoundState) -> None:
        """Allocate the strategy's static buffers in `state.buffers` (slots, proposals, caches)."""
        state.buffers["target_slots"] = self.scratch_slots(state.batch.rows, scratch=self.target.scratch_slot)

    def scratch_slots(self, *shape: int, scratch: int) -> Tensor:
        """A slot-index buffer filled with the scratch slot (what padding rows use; `prefill` sets real rows)."""
        return torch.full(shape, scratch, dtype=torch.long, device=self.device)

    def round_pieces(self, state: RoundState) -> dict[str, Callable[[], None]]:
        """The device work of one round as named pieces, in order (each reads/writes static buffers only)."""
        raise NotImplementedError

    def whole_round(self, pieces: dict[str, Callable[[], None]]) -> Callable[[], None]:
        """The round as one function (default: the pieces one after the other on the current stream)."""
        def run() -> None:
            for fn in pieces.values():
                fn()
        return run

    def graph(self, fn: Callable[[], None]) -> RoundGraph:
        """`fn` as a CUDA graph captured on first call (a plain call on the CPU or with graphs off)."""
        return RoundGraph(fn, self.device, self.cuda_graphs, self.generator)

    def graphs_to_run(self, state: RoundState, timing: bool) -> list[RoundGraph]:
        """The graphs a run replays: each piece when timing, else the whole round (and any extras)."""
        return [*(state.pieces.values() if timing else [state.whole]), *state.extra.values()]

    def run_round(self, state: RoundState) -> None:
        """Enqueue one round: the whole-round graph, or, when timing, each piece timed under `timer_of[name]`."""
        if not self.telemetry.timing:
            state.whole()
            return
        stream = self.stream()
        for name, piece in state.pieces.items():
            with self.telemetry.timer(self.timer_of[name], stream):
                piece()

    def stream(self) -> torch.cuda.Stream | None:
        """The stream the pieces run on (None on the CPU: wall-clock timers)."""
        return torch.cuda.current_stream(self.device) if self.device.type == "cuda" else None

    def prefill(self, seqs: list[Sequence], state: RoundState) -> None:
        """Assign rows 0..n-1 slots 0..n-1 and write each sequence's `token_ids[:-1]` into its target slot."""
        slots = state.buffers["target_slots"]
        slots.fill_(self.target.scratch_slot)
        slots[:len(seqs)] = torch.arange(len(seqs), device=self.device)
        self.target.prefill([s.token_ids[:-1] for s in seqs], list(range(len(seqs))))

    # helpers shared by the strategies -----------------------------------------------------------------------
    def uniforms(self, *shape: int) -> Tensor:
        """Uniform [0, 1) float32 numbers from this strategy's generator."""
        return torch.rand(shape, generator=self.generator, device=self.device)

    def target_probs(self, logits: Tensor, params: SamplingParams) -> Tensor:
        """The distribution the output must follow (temperature, top-p; one-hot if greedy)."""
        return processed_probs(logits, params.temperature, params.top_p)
