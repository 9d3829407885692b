"""Decode-path kernels: RMSNorm with an optional fused residual add, and rotary embedding of q and k.

- `rmsnorm(x, weight, eps, residual=None)`: with `residual`, h = x + residual is formed once in registers and both
  (rmsnorm(h) * weight, h) are returned, so a decoder layer reads its hidden state once instead of three times.
  Statistics in float32, outputs in x's dtype. One program per row (token or, for QK-norm, head).
- `rotary(q, k, positions, cos, sin)`: the Llama / Hugging Face "rotate half" convention, q and k in one launch:
  out[..., :d/2] = x1 cos - x2 sin, out[..., d/2:] = x2 cos + x1 sin, with cos/sin rows looked up by position
  (tables of shape (max_positions, d/2), float32; `rotary_tables` builds the plain-theta ones).
Each has a torch `*_reference` beside it; the Triton versions need CUDA tensors or TRITON_INTERPRET=1 on CPU.
"""

from __future__ import annotations

import torch
import triton.language as tl
from torch import Tensor

from ssd.kernels.launch import kernel_for, next_power_of_2

__all__ = ["rmsnorm", "rmsnorm_reference", "rotary", "rotary_reference", "rotary_tables"]


# ------------------------------------------------------------------------------------------------ RMSNorm


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


# ------------------------------------------------------------------------------------------------- rotary


def rotary_tables(max_positions: int, head_dim: int, theta: float = 10000.0,
                  device: str | torch.device = "cpu") -> tuple[Tensor, Tensor]:
    """(cos, sin), each (max_positions, head_dim // 2) float32, for inverse frequencies theta^(-2i/d)."""
    if head_dim % 2:
        raise ValueError(f"rotary: head_dim must be even, got {head_dim}")
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64, device=device) / head_dim)
    angles = torch.arange(max_positions, dtype=torch.float64, device=device)[:, None] * inv_freq[None, :]
    return angles.cos().float(), angles.sin().float()


def rotary(q: Tensor, k: Tensor, positions: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor]:
    """Rotate q (T, Hq, d) and k (T, Hk, d) by the angles of `positions` (T,) int; returns new (q, k).

    cos, sin: (max_positions, d // 2) float32 tables. Math in float32, outputs in q's / k's dtype.
    """
    _check_rotary(q, k, positions, cos, sin)
    tokens, heads_q, head_dim = q.shape
    heads_k = k.shape[1]
    q_in, k_in = q.contiguous(), k.contiguous()
    q_out, k_out = torch.empty_like(q_in), torch.empty_like(k_in)
    if tokens:
        kernel = kernel_for(_rotary_kernel, q.device)
        kernel[(tokens, heads_q + heads_k)](
            q_in, k_in, q_out, k_out, positions.contiguous(), cos.contiguous(), sin.contiguous(), heads_q,
            heads_k, HALF=head_dim // 2, BLOCK_HALF=next_power_of_2(head_dim // 2))
    return q_out, k_out


def rotary_reference(q: Tensor, k: Tensor, positions: Tensor, cos: Tensor,
                     sin: Tensor) -> tuple[Tensor, Tensor]:
    """Torch rotary embedding, Hugging Face `apply_rotary_pos_emb` convention, float32 math."""
    _check_rotary(q, k, positions, cos, sin)
    c = cos[positions.long()][:, None, :]
    s = sin[positions.long()][:, None, :]

    def rotate(x: Tensor) -> Tensor:
        x1, x2 = x.float().chunk(2, dim=-1)
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1).to(x.dtype)

    return rotate(q), rotate(k)


def _rotary_kernel(q_ptr, k_ptr, q_out_ptr, k_out_ptr, pos_ptr, cos_ptr, sin_ptr, HQ, HK,
                   HALF: tl.constexpr, BLOCK_HALF: tl.constexpr):
    """Program (t, h): head h of token t; heads [0, HQ) are q's, [HQ, HQ + HK) are k's."""
    t = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1)
    cols = tl.arange(0, BLOCK_HALF)
    mask = cols < HALF
    pos = tl.load(pos_ptr + t).to(tl.int64)
    c = tl.load(cos_ptr + pos * HALF + cols, mask=mask, other=0.0)
    s = tl.load(sin_ptr + pos * HALF + cols, mask=mask, other=0.0)
    if h < HQ:
        src = q_ptr + (t * HQ + h) * 2 * HALF
        dst = q_out_ptr + (t * HQ + h) * 2 * HALF
    else:
        src = k_ptr + (t * HK + (h - HQ)) * 2 * HALF
        dst = k_out_ptr + (t * HK + (h - HQ)) * 2 * HALF
    x1 = tl.load(src + cols, mask=mask, other=0.0)
    x2 = tl.load(src + HALF + cols, mask=mask, other=0.0)
    x1f = x1.to(tl.float32)
    x2f = x2.to(tl.float32)
    tl.store(dst + cols, (x1f * c - x2f * s).to(x1.dtype), mask=mask)
    tl.store(dst + HALF + cols, (x2f * c + x1f * s).to(x1.dtype), mask=mask)


def _check_rotary(q: Tensor, k: Tensor, positions: Tensor, cos: Tensor, sin: Tensor) -> None:
    if q.dim() != 3 or k.dim() != 3 or q.shape[0] != k.shape[0] or q.shape[2] != k.shape[2]:
        raise ValueError(f"rotary: q must be (T, Hq, d) and k (T, Hk, d); got {tuple(q.shape)}, {tuple(k.shape)}")
    if q.shape[2] % 2:
        raise ValueError(f"rotary: head_dim must be even, got {q.shape[2]}")
    if positions.shape != (q.shape[0],):
        raise ValueError(f"rotary: positions must be (T,) = ({q.shape[0]},), got {tuple(positions.shape)}")
    half = q.shape[2] // 2
    if cos.dim() != 2 or cos.shape[1] != half or sin.shape != cos.shape:
        raise ValueError(f"rotary: cos and sin must be (max_positions, {half}); got {tuple(cos.shape)}, "
                         f"{tuple(sin.shape)}")
