"""A piece of a decoding round: run eagerly, or captured once into a CUDA graph and replayed.

    piece = RoundGraph(strategy.verify_round, device, capture=True, generator=strategy.generator)
    piece()          # first call: warm-up (compiles Triton kernels, creates cuBLAS handles), capture, replay

A piece reads and writes only static buffers (`ssd.engine.batch.DeviceBatch`, the strategy's proposal and cache
buffers) through in-place ops, so every replay works on the same addresses; tensors it allocates live in the
graph's private pool. Strategies capture their pieces (`prepare`) before loading a batch, while every row is
done, so the warm-up call changes nothing a sequence will read. Random numbers come from the strategy's own generator,
registered with the graph so each replay draws fresh numbers (the same seed gives the same stream).
On the CPU, or with capture off, a call simply runs the function.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class RoundGraph:
    """`fn()` as a replayable CUDA graph (capture=True on a CUDA device) or a plain call."""

    def __init__(self, fn: Callable[[], None], device: torch.device, capture: bool,
                 generator: torch.Generator | None = None) -> None:
        self.fn, self.device, self.generator = fn, device, generator
        self.capture = capture and device.type == "cuda"
        self.graph: torch.cuda.CUDAGraph | None = None

    def __call__(self) -> None:
        if not self.capture:
            self.fn()
            return
        self.prepare()
        self.graph.replay()

    def prepare(self) -> None:
        """Capture now (warm-up included) if this piece is graphed and not captured yet; run nothing after."""
        if self.capture and self.graph is None:
            self.graph = self._capture()

    def _capture(self) -> torch.cuda.CUDAGraph:
        current = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            self.fn()  # warm-up outside the graph
        current.wait_stream(side)
        torch.cuda.synchronize(self.device)
        graph = torch.cuda.CUDAGraph()
        if self.generator is not None:
            graph.register_generator_state(self.generator)
        with torch.cuda.graph(graph):
            self.fn()
        return graph
