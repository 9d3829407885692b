"""The bookkeeping at the end of a decoding round, one Triton program per row (instead of ~25 small torch ops).

Row r offers `new[r, :count[r]]`; the kept prefix stops after the first stop token and at the row's limit, and a
done row keeps nothing. The kernel appends the kept tokens at tokens[r, length[r]:], advances length, updates
done (a kept stop token, or the limit reached) and writes the round's output row
out[r] = [new (W) | kept | done | (aux, untouched)]. `emit_reference` is the same in torch; both follow
`ssd.engine.batch.DeviceBatch.emit`.
"""

from __future__ import annotations

import torch
import triton.language as tl
from torch import Tensor

from ssd.kernels.launch import kernel_for, next_power_of_2

__all__ = ["emit", "emit_reference"]


def emit(new: Tensor, count: Tensor, tokens: Tensor, length: Tensor, limit: Tensor, done: Tensor,
         stop_ids: Tensor, out: Tensor) -> None:
    """In place: tokens (R, C), length (R,), done (R,) bool, out (R, W + 3); new (R, W) int64, count (R,),
    limit (R,), stop_ids (S,) int64 (-1 = unused)."""
    rows, width = new.shape
    if rows == 0:
        return
    kernel = kernel_for(_emit_kernel, new.device)
    kernel[(rows,)](new.contiguous(), count.contiguous(), tokens, length, limit, done.view(torch.uint8), stop_ids,
                    out, width, tokens.shape[1], out.shape[1], STOPS=stop_ids.numel(),
                    BLOCK_W=next_power_of_2(width))


def emit_reference(new: Tensor, count: Tensor, tokens: Tensor, length: Tensor, limit: Tensor, done: Tensor,
                   stop_ids: Tensor, out: Tensor) -> None:
    """The torch version of `emit` (same contract)."""
    width = new.shape[1]
    i = torch.arange(width, device=new.device)[None]
    offered = i < count[:, None]
    stop = offered & (new[..., None] == stop_ids).any(-1)
    stop_before = (stop.long().cumsum(1) - stop.long()) > 0
    keep = offered & ~stop_before & (i < (limit - length)[:, None]) & ~done[:, None]
    kept = keep.sum(1)
    at = (length[:, None] + i).clamp_max(tokens.shape[1] - 1)
    tokens.scatter_(1, at, torch.where(keep, new, tokens.gather(1, at)))
    length += kept
    done |= (stop & keep).any(1) | (length >= limit)
    out[:, :width].copy_(new)
    out[:, width] = kept
    out[:, width + 1] = done.long()


def _emit_kernel(new_ptr, count_ptr, tokens_ptr, length_ptr, limit_ptr, done_ptr, stop_ptr, out_ptr, W, C, OUT_W,
                 STOPS: tl.constexpr, BLOCK_W: tl.constexpr):
    r = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_W)
    in_row = cols < W
    new = tl.load(new_ptr + r * W + cols, mask=in_row, other=-1)
    count = tl.load(count_ptr + r)
    length = tl.load(length_ptr + r)
    limit = tl.load(limit_ptr + r)
    done = tl.load(done_ptr + r)
    is_stop = cols < 0
    for s in tl.static_range(STOPS):
        is_stop = is_stop | (new == tl.load(stop_ptr + s))
    offered = in_row & (cols < count)
    stop = offered & is_stop
    first_stop = tl.min(tl.where(stop, cols, BLOCK_W), 0)
    keep = offered & (cols <= first_stop) & (cols < limit - length) & (cols * 0 + done == 0)
    kept = tl.sum(keep.to(tl.int64), 0)
    at = length + cols
    tl.store(tokens_ptr + r * C + at, new, mask=keep & (at < C))
    new_length = length + kept
    stopped = tl.sum((keep & stop).to(tl.int32), 0) > 0
    now_done = (done != 0) | stopped | (new_length >= limit)
    tl.store(length_ptr + r, new_length)
    tl.store(done_ptr + r, now_done.to(tl.uint8))
    tl.store(out_ptr + r * OUT_W + cols, new, mask=in_row)
    tl.store(out_ptr + r * OUT_W + W, kept)
    tl.store(out_ptr + r * OUT_W + W + 1, now_done.to(tl.int64))
