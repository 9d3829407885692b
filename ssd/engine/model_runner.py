"""ModelRunner: one model + its KV cache; prefill, batched decode and multi-token verify forwards.

Every forward is `forward(tokens (B, T), positions (B, T), slots (B,)) -> logits (B, T, V) float32`: decode is
T=1, speculative verification T=K+1, a draft catch-up step T=2. On CUDA (`cuda_graphs=True`) each (B, T) shape is
captured once into a CUDA graph over preallocated input/output buffers; B is padded up to the next captured batch
size, padding rows write into a reserved scratch slot (the cache's last slot) so they never touch a real sequence.
On the CPU the same calls run eagerly.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ssd.engine.kv_cache import KVCache, SlotPool
from ssd.models.llama import Llama

GRAPH_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ModelRunner:
    """Owns `model` and a `KVCache` of `num_slots` usable slots (+1 scratch slot) of `max_len` positions."""

    def __init__(self, model: Llama, num_slots: int, max_len: int, device: str, cuda_graphs: bool = False) -> None:
        self.model, self.device, self.max_len = model, torch.device(device), max_len
        dtype = next(model.parameters()).dtype
        self.cache = KVCache.for_model(model.config, num_slots + 1, max_len, dtype, device)
        self.scratch_slot = num_slots
        self.slots = SlotPool(num_slots)
        self.vocab_size = model.config.vocab_size
        self.use_graphs = cuda_graphs and self.device.type == "cuda"
        self._graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, dict[str, Tensor]]] = {}
        self._pool = None
        if model.cos is None or model.cos.shape[0] < max_len:
            model.setup_rope(max_len, device)

    @torch.inference_mode()
    def prefill(self, prompts: list[list[int]], slots: list[int], chunk_tokens: int = 8192) -> None:
        """Write each prompt's tokens (positions 0..n-1) into its slot; equal lengths run as one batch."""
        by_length: dict[int, list[int]] = {}
        for i, prompt in enumerate(prompts):
            if prompt:
                by_length.setdefault(len(prompt), []).append(i)
        for length, rows in by_length.items():
            step = max(1, chunk_tokens // length)
            for start in range(0, len(rows), step):
                part = rows[start:start + step]
                tokens = torch.tensor([prompts[i] for i in part], dtype=torch.long, device=self.device)
                positions = torch.arange(length, device=self.device).expand(len(part), -1)
                index = torch.tensor([slots[i] for i in part], device=self.device)
                self.model(tokens, positions, self.cache, index, last_only=True)

    @torch.inference_mode()
    def forward(self, tokens: Tensor, positions: Tensor, slots: Tensor) -> Tensor:
        """Logits (B, T, V) for `tokens` at `positions` in cache `slots`; graphed on CUDA."""
        if not self.use_graphs:
            return self.model(tokens, positions, self.cache, slots)
        return self._replay(tokens, positions, slots)

    def _replay(self, tokens: Tensor, positions: Tensor, slots: Tensor) -> Tensor:
        b, t = tokens.shape
        padded = next((size for size in GRAPH_BATCH_SIZES if size >= b), None)
        if padded is None:
            return self.model(tokens, positions, self.cache, slots)
        if (padded, t) not in self._graphs:
            self._capture(padded, t)
        graph, buf = self._graphs[(padded, t)]
        buf["tokens"][:b].copy_(tokens)
        buf["positions"][:b].copy_(positions)
        buf["slots"][:b].copy_(slots)
        buf["tokens"][b:].zero_()
        buf["positions"][b:].zero_()
        buf["slots"][b:].fill_(self.scratch_slot)
        graph.replay()
        return buf["logits"][:b].clone()  # the buffer is overwritten by the next replay

    def _capture(self, b: int, t: int) -> None:
        buf = {
            "tokens": torch.zeros((b, t), dtype=torch.long, device=self.device),
            "positions": torch.zeros((b, t), dtype=torch.long, device=self.device),
            "slots": torch.full((b,), self.scratch_slot, dtype=torch.long, device=self.device),
        }
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(2):  # warm-up (allocator, autotuning) outside the graph
                self.model(buf["tokens"], buf["positions"], self.cache, buf["slots"])
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            buf["logits"] = self.model(buf["tokens"], buf["positions"], self.cache, buf["slots"])
        self._pool = graph.pool()
        self._graphs[(b, t)] = (graph, buf)
