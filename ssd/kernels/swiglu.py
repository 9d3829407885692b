"""SwiGLU activation after the fused gate-up projection: silu(gate) * up in one pass.

`silu_mul(gate_up)` takes (N, 2I) rows laid out as [gate (I) | up (I)] (the order of
`torch.cat([gate_proj, up_proj])` weights) and returns (N, I) in the input dtype, math in float32 and the product
rounded once (torch's `F.silu(g) * u` rounds silu(g) first: results can differ by one rounding step in bf16).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton.language as tl
from torch import Tensor

from ssd.kernels.launch import kernel_for

__all__ = ["silu_mul", "silu_mul_reference"]

BLOCK = 1024


def silu_mul(gate_up: Tensor) -> Tensor:
    """silu(gate_up[:, :I]) * gate_up[:, I:], (N, I) in gate_up's dtype; gate_up (N, 2I) contiguous."""
    if gate_up.dim() != 2 or gate_up.shape[1] % 2 or not gate_up.is_contiguous():
        raise ValueError(f"silu_mul: gate_up must be contiguous (N, 2I); got {tuple(gate_up.shape)}")
    n, width = gate_up.shape
    inter = width // 2
    out = torch.empty((n, inter), dtype=gate_up.dtype, device=gate_up.device)
    if n:
        kernel = kernel_for(_silu_mul_kernel, gate_up.device)
        kernel[(n, _cdiv(inter, BLOCK))](gate_up, out, inter, BLOCK=BLOCK)
    return out


def silu_mul_reference(gate_up: Tensor) -> Tensor:
    """The torch version (float32 math, one rounding)."""
    gate, up = gate_up.float().chunk(2, dim=-1)
    return (F.silu(gate) * up).to(gate_up.dtype)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _silu_mul_kernel(x_ptr, out_ptr, INTER, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < INTER
    gate = tl.load(x_ptr + row * 2 * INTER + cols, mask=mask, other=0.0).to(tl.float32)
    up = tl.load(x_ptr + row * 2 * INTER + INTER + cols, mask=mask, other=0.0).to(tl.float32)
    out = gate / (1.0 + tl.exp(-gate)) * up
    tl.store(out_ptr + row * INTER + cols, out.to(out_ptr.dtype.element_ty), mask=mask)
