"""The decoding state of a batch, resident on the device: what a round reads and writes without the host.

Row b of a batch of R rows (R padded up to a captured size; rows past the real sequences are padding, done from
the start) holds:

    tokens (R, C) int64     every token of the sequence so far (prompt + generated); C = context capacity
    length (R,) int64       how many; the last one, at length - 1, is not yet in the target's KV cache
    limit (R,) int64        prompt length + max_new_tokens: no token is kept at or past it
    done (R,) bool          stopped (stop token or limit); a done row's state no longer changes

A round proposes up to W new tokens per row and calls `emit(new (R, W), count (R,))`: the first `count[b]` are
kept, cut after the first stop token and at the limit. Each row's kept tokens, their number, the done flag and one
strategy-defined column (`aux`, e.g. Saguaro's cache-miss flag) are packed into `out` (R, W + 3), the one tensor
the host copies back per round (`read_out`); the host
may read round r while round r + 1 runs, so its stop check lags by a round while the device stops at once.
Writes past a row's new length (tokens a row did not keep) are scratch: nothing reads them as valid.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ssd.engine.sequence import Sequence
from ssd.kernels.emit import emit as emit_kernel
from ssd.kernels.emit import emit_reference

MAX_STOP_IDS = 16


class DeviceBatch:
    """Static per-row buffers (addresses fixed, so CUDA graphs can capture rounds over them)."""

    def __init__(self, rows: int, capacity: int, width: int, device: torch.device) -> None:
        self.rows, self.capacity, self.width, self.device = rows, capacity, width, device
        self.tokens = torch.zeros((rows, capacity), dtype=torch.long, device=device)
        self.length = torch.ones(rows, dtype=torch.long, device=device)
        self.limit = torch.ones(rows, dtype=torch.long, device=device)
        self.done = torch.ones(rows, dtype=torch.bool, device=device)
        self.stop_ids = torch.full((MAX_STOP_IDS,), -1, dtype=torch.long, device=device)
        self.out = torch.zeros((rows, width + 3), dtype=torch.long, device=device)

    def load(self, seqs: list[Sequence], stop_ids: list[int]) -> None:
        """Fill rows 0..len(seqs)-1 with the sequences (the rest become done padding); one host-to-device copy."""
        if len(seqs) > self.rows:
            raise ValueError(f"{len(seqs)} sequences do not fit a batch of {self.rows} rows")
        tokens = torch.zeros((self.rows, self.capacity), dtype=torch.long)
        length = torch.ones(self.rows, dtype=torch.long)
        limit = torch.ones(self.rows, dtype=torch.long)
        for b, seq in enumerate(seqs):
            if seq.num_tokens + self.width > self.capacity:
                raise ValueError(f"sequence {seq.seq_id} with {seq.num_tokens} tokens leaves no room for a round "
                                 f"of {self.width} in a context of {self.capacity}")
            tokens[b, :seq.num_tokens] = torch.tensor(seq.token_ids)
            length[b] = seq.num_tokens
            limit[b] = len(seq.prompt_ids) + seq.max_new_tokens
        done = torch.arange(self.rows) >= len(seqs)
        for dst, src in ((self.tokens, tokens), (self.length, length), (self.limit, limit), (self.done, done)):
            dst.copy_(src)
        if len(stop_ids) > MAX_STOP_IDS:
            raise ValueError(f"{len(stop_ids)} stop token ids; at most {MAX_STOP_IDS} are supported")
        stops = sorted(stop_ids) + [-1] * (MAX_STOP_IDS - len(stop_ids))
        self.stop_ids.copy_(torch.tensor(stops))

    def last(self, n: int) -> tuple[Tensor, Tensor]:
        """The last n tokens of each row and their positions, (R, n) each (positions below 0 clamp to 0)."""
        pos = (self.length[:, None] - n + torch.arange(n, device=self.device)).clamp_min(0)
        return self.tokens.gather(1, pos), pos

    def emit(self, new: Tensor, count: Tensor) -> Tensor:
        """Append up to `count[b]` of `new[b]` (R, W) to each row; returns the kept counts (R,) (a view of out).

        One Triton launch on CUDA (`ssd.kernels.emit`), the torch reference elsewhere.
        """
        run = emit_kernel if self.device.type == "cuda" else emit_reference
        run(new, count, self.tokens, self.length, self.limit, self.done, self.stop_ids, self.out)
        return self.out[:, new.shape[1]]

    @property
    def aux(self) -> Tensor:
        """The strategy's own column of `out` (R,) int64 (a view: write into it)."""
        return self.out[:, self.width + 2]

    def read_out(self, pinned: Tensor, event: torch.cuda.Event | None) -> None:
        """Start copying `out` into host memory `pinned` (non-blocking on CUDA; record `event` after it)."""
        pinned.copy_(self.out, non_blocking=event is not None)
        if event is not None:
            event.record()


def apply_out(seqs: list[Sequence], out: Tensor, width: int) -> list[list[int]]:
    """Host side of a round: append each sequence's kept tokens (from a copy of `DeviceBatch.out`)."""
    rows = out.tolist()
    kept: list[list[int]] = []
    for seq, row in zip(seqs, rows, strict=False):
        tokens = row[:row[width]] if not seq.finished else []
        appended = seq.append(tokens) if tokens else []
        kept.append(appended)
    return kept
