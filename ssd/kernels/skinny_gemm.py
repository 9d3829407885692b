"""y = x W^T (+ residual) for the few rows of a decode step (M <= 16), written to stream W at full bandwidth.

At batch 1 a decode step is one pass over every weight matrix, so each projection is a matrix-vector product
whose time is W's bytes over the memory bandwidth. Measured on the H200 (ssd.bandwidth.kernel_breakdown), cuBLAS
reaches ~87% of the copy bandwidth on the 2048 x 16384 gate-up matrix but only ~43% on the 8-12 MB q/k/v and o
projections and ~68% on the split-K down projection. Here each program owns BLOCK_N output columns for all rows
and streams its (BLOCK_N, K) slice of W in BLOCK_K tiles (tl.dot over a 16-row block of x, float32 accumulation),
so small N still gives ~N/BLOCK_N programs in flight; `residual` (M, N) is added in the epilogue.
`skinny_gemm_reference` is torch's.
"""

from __future__ import annotations

import torch
import triton.language as tl
from torch import Tensor

from ssd.kernels.launch import kernel_for

__all__ = ["MAX_ROWS", "skinny_gemm", "skinny_gemm_reference"]

MAX_ROWS = 16


def skinny_gemm(x: Tensor, weight: Tensor, residual: Tensor | None = None, block_n: int = 16,
                block_k: int = 256, num_warps: int = 4, num_stages: int = 4) -> Tensor:
    """x (M, K) @ weight (N, K)^T (+ residual (M, N)) -> (M, N) in x's dtype; M <= MAX_ROWS."""
    m, k = x.shape
    n = weight.shape[0]
    if m > MAX_ROWS or weight.shape[1] != k or weight.stride(-1) != 1:
        raise ValueError(f"skinny_gemm: x (M <= {MAX_ROWS}, K) and a K-contiguous weight (N, K); got x "
                         f"{tuple(x.shape)}, weight {tuple(weight.shape)}")
    if residual is not None and residual.shape != (m, n):
        raise ValueError(f"skinny_gemm: residual must be (M, N) = ({m}, {n}), got {tuple(residual.shape)}")
    x = x.contiguous()
    out = torch.empty((m, n), dtype=x.dtype, device=x.device)
    if m == 0 or n == 0:
        return out
    res = residual.contiguous() if residual is not None else out
    kernel = kernel_for(_skinny_gemm_kernel, x.device)
    kernel[(-(-n // block_n),)](x, weight, res, out, m, n, k, weight.stride(0), HAS_RESIDUAL=residual is not None,
                                BLOCK_M=MAX_ROWS, BLOCK_N=block_n, BLOCK_K=block_k,
                                IEEE=x.dtype == torch.float32, num_warps=num_warps, num_stages=num_stages)
    return out


def skinny_gemm_reference(x: Tensor, weight: Tensor, residual: Tensor | None = None) -> Tensor:
    out = x @ weight.t()
    return out if residual is None else out + residual


def _skinny_gemm_kernel(x_ptr, w_ptr, res_ptr, out_ptr, M, N, K, stride_w, HAS_RESIDUAL: tl.constexpr,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, IEEE: tl.constexpr):
    pid = tl.program_id(0)
    rows = tl.arange(0, BLOCK_M)
    cols = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    ks = tl.arange(0, BLOCK_K)
    row_ok = rows < M
    col_ok = cols < N
    acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k_ok = (k0 + ks) < K
        x = tl.load(x_ptr + rows[:, None] * K + (k0 + ks)[None, :], mask=row_ok[:, None] & k_ok[None, :],
                    other=0.0)
        w = tl.load(w_ptr + cols[:, None].to(tl.int64) * stride_w + (k0 + ks)[None, :],
                    mask=col_ok[:, None] & k_ok[None, :], other=0.0)
        if IEEE:
            acc += tl.dot(x, tl.trans(w), input_precision="ieee")
        else:
            acc += tl.dot(x, tl.trans(w))
    offs = rows[:, None] * N + cols[None, :]
    mask = row_ok[:, None] & col_ok[None, :]
    if HAS_RESIDUAL:
        acc += tl.load(res_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + offs, acc.to(out_ptr.dtype.element_ty), mask=mask)
