"""RMSNorm with an optional fused residual add, one Triton program per row.

`rmsnorm(x, weight, eps, residual=None)`: with `residual`, h = x + residual is formed once in registers and both
(rmsnorm(h) * weight, h) are returned, so a decoder layer reads its hidden state once instead of three times.
Statistics in float32, outputs in x's dtype. `rmsnorm_reference` is the torch version; the Triton one needs CUDA
tensors or TRITON_INTERPRET=1 on CPU.
"""

from __future__ import annotations

import torch
import triton.language as tl
from torch import Tensor

from ssd.kernels.launch import kernel_for, next_power_of_2

__all__ = ["rmsnorm", "rmsnorm_reference"]


def rmsnorm(x: Tensor, weight: Tensor, eps: float = 1e-6,
            residual: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
    """RMSNorm over the last dim of x (..., D) with weight (D,); with `residual` (..., D) also return x + residual.

    Returns y, or (y, x + residual) when `residual` is given; both in x's dtype.
    """
    _check_rmsnorm(x, weight, residual)
    dim = x.shape[-1]
    x2 = x.reshape(-1, dim).contiguous()
    out = torch.empty_like(x2)
    res_in = x2 if residual is None else residual.reshape(-1, dim).contiguous()
    res_out = out if residual is None else torch.empty_like(x2)
    rows = x2.shape[0]
    if rows:
        kernel = kernel_for(_rmsnorm_kernel, x.device)
        kernel[(rows,)](x2, res_in, weight.contiguous(), out, res_out, dim, float(eps),
                        HAS_RESIDUAL=residual is not None, BLOCK_D=next_power_of_2(dim))
    if residual is None:
        return out.view_as(x)
    return out.view_as(x), res_out.view_as(x)


def rmsnorm_reference(x: Tensor, weight: Tensor, eps: float = 1e-6,
                      residual: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
    """Torch RMSNorm (as Hugging Face LlamaRMSNorm: float32 statistics, weight applied in x's dtype)."""
    _check_rmsnorm(x, weight, residual)
    h = x if residual is None else x + residual
    hf = h.float()
    normed = (hf * torch.rsqrt(hf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)
    y = (weight.to(x.dtype) * normed).to(x.dtype)
    return y if residual is None else (y, h)


def _rmsnorm_kernel(x_ptr, res_ptr, w_ptr, out_ptr, res_out_ptr, D, eps,
                    HAS_RESIDUAL: tl.constexpr, BLOCK_D: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_D)
    mask = cols < D
    h = tl.load(x_ptr + row * D + cols, mask=mask, other=0.0)
    if HAS_RESIDUAL:
        h = h + tl.load(res_ptr + row * D + cols, mask=mask, other=0.0)
        tl.store(res_out_ptr + row * D + cols, h, mask=mask)
    hf = h.to(tl.float32)
    inv_rms = 1.0 / tl.sqrt(tl.sum(hf * hf, 0) / D + eps)
    normed = (hf * inv_rms).to(h.dtype)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(h.dtype)
    tl.store(out_ptr + row * D + cols, w * normed, mask=mask)


def _check_rmsnorm(x: Tensor, weight: Tensor, residual: Tensor | None) -> None:
    if x.dim() < 1 or weight.shape != (x.shape[-1],):
        raise ValueError(f"rmsnorm: weight must be (D,) with D = x.shape[-1]; got x {tuple(x.shape)}, "
                         f"weight {tuple(weight.shape)}")
    if residual is not None and residual.shape != x.shape:
        raise ValueError(f"rmsnorm: residual must have x's shape {tuple(x.shape)}, got {tuple(residual.shape)}")
