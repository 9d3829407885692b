"""After the fused QKV projection: optional QK-norm, rotary on q and k, and k/v written into the KV cache, one launch.

    q = qkv_rotary_cache(qkv, positions, slots, cos, sin, cache_k, cache_v, heads, kv_heads)

qkv (N, (H + 2 Hkv) * Dh) holds each token's query heads, then key heads, then value heads (the order of
`torch.cat([q_proj, k_proj, v_proj])` weights). Token n goes to cache slot `slots[n]` at position `positions[n]`.
Returns the rotated queries (N, H, Dh); keys are rotated and, with values, stored as `cache[slot, h, position]`.
Rotary is the Hugging Face "rotate half" convention with (max_positions, Dh/2) float32 cos/sin tables; QK-norm
(Qwen3) is an RMSNorm over each head's Dh values with weights q_norm / k_norm, before rotary, statistics in float32.
`rotary_tables` builds plain-theta tables (the models build theirs with rope scaling, `ssd.models.layers`).
One program per (token, head) of the H + Hkv query/key heads; key programs also copy their value head.
`qkv_rotary_cache_reference` is the same in torch.
"""

from __future__ import annotations

import torch
import triton.language as tl
from torch import Tensor

from ssd.kernels.launch import kernel_for, next_power_of_2

__all__ = ["qkv_rotary_cache", "qkv_rotary_cache_reference", "rotary_tables"]


def qkv_rotary_cache(qkv: Tensor, positions: Tensor, slots: Tensor, cos: Tensor, sin: Tensor, cache_k: Tensor,
                     cache_v: Tensor, heads: int, kv_heads: int, q_norm: Tensor | None = None,
                     k_norm: Tensor | None = None, eps: float = 1e-6) -> Tensor:
    """Rotated queries (N, H, Dh) in qkv's dtype; writes rotated keys and values into cache_k / cache_v.

    qkv: (N, (H + 2 Hkv) Dh) contiguous; positions, slots: (N,) int64; cos, sin: (max_positions, Dh/2) float32;
    cache_k, cache_v: (S, Hkv, L, Dh); q_norm, k_norm: (Dh,) QK-norm weights (both or neither).
    """
    n = qkv.shape[0]
    dh = cache_k.shape[3]
    _check(qkv, positions, slots, cos, cache_k, cache_v, heads, kv_heads, q_norm, k_norm)
    q = torch.empty((n, heads, dh), dtype=qkv.dtype, device=qkv.device)
    if n:
        has_norm = q_norm is not None
        kernel = kernel_for(_qkv_rotary_cache_kernel, qkv.device)
        kernel[(n, heads + kv_heads)](
            qkv, q, cache_k, cache_v, positions.contiguous(), slots.contiguous(), cos.contiguous(), sin.contiguous(),
            q_norm if has_norm else cos,
            k_norm if has_norm else cos, heads, kv_heads, cache_k.stride(0), cache_k.stride(1), cache_k.stride(2),
            float(eps), HALF=dh // 2, BLOCK_HALF=next_power_of_2(dh // 2), HAS_NORM=has_norm)
    return q


def qkv_rotary_cache_reference(qkv: Tensor, positions: Tensor, slots: Tensor, cos: Tensor, sin: Tensor,
                               cache_k: Tensor, cache_v: Tensor, heads: int, kv_heads: int,
                               q_norm: Tensor | None = None, k_norm: Tensor | None = None,
                               eps: float = 1e-6) -> Tensor:
    """The torch version of `qkv_rotary_cache` (same contract)."""
    n = qkv.shape[0]
    dh = cache_k.shape[3]
    q, k, v = qkv.view(n, heads + 2 * kv_heads, dh).split([heads, kv_heads, kv_heads], dim=1)
    if q_norm is not None:
        q, k = _head_rmsnorm(q, q_norm, eps), _head_rmsnorm(k, k_norm, eps)
    c, s = cos[positions][:, None, :], sin[positions][:, None, :]

    def rotate(x: Tensor) -> Tensor:
        x1, x2 = x.float().chunk(2, dim=-1)
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1).to(x.dtype)

    cache_k[slots, :, positions] = rotate(k).to(cache_k.dtype)
    cache_v[slots, :, positions] = v.to(cache_v.dtype)
    return rotate(q)


def rotary_tables(max_positions: int, head_dim: int, theta: float = 10000.0,
                  device: str | torch.device = "cpu") -> tuple[Tensor, Tensor]:
    """(cos, sin), each (max_positions, head_dim // 2) float32, for inverse frequencies theta^(-2i/d)."""
    if head_dim % 2:
        raise ValueError(f"rotary: head_dim must be even, got {head_dim}")
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64, device=device) / head_dim)
    angles = torch.arange(max_positions, dtype=torch.float64, device=device)[:, None] * inv_freq[None, :]
    return angles.cos().float(), angles.sin().float()


def _head_rmsnorm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    xf = x.float()
    normed = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)
    return weight.to(x.dtype) * normed


def _qkv_rotary_cache_kernel(qkv_ptr, q_ptr, k_cache_ptr, v_cache_ptr, pos_ptr, slot_ptr, cos_ptr, sin_ptr,
                             qn_ptr, kn_ptr, HQ, HK, stride_cs, stride_ch, stride_cl, eps,
                             HALF: tl.constexpr, BLOCK_HALF: tl.constexpr, HAS_NORM: tl.constexpr):
    """Program (n, h): heads [0, HQ) are queries, [HQ, HQ + HK) keys (which also move value head h - HQ)."""
    n = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1)
    cols = tl.arange(0, BLOCK_HALF)
    mask = cols < HALF
    width = (HQ + 2 * HK) * 2 * HALF
    src = qkv_ptr + n * width + h * 2 * HALF
    x1 = tl.load(src + cols, mask=mask, other=0.0)
    x2 = tl.load(src + HALF + cols, mask=mask, other=0.0)
    x1f = x1.to(tl.float32)
    x2f = x2.to(tl.float32)
    if HAS_NORM:  # as the torch RMSNorm: normalise in float32, round to the input dtype, then scale
        inv = 1.0 / tl.sqrt((tl.sum(x1f * x1f, 0) + tl.sum(x2f * x2f, 0)) / (2 * HALF) + eps)
        w_ptr = qn_ptr if h < HQ else kn_ptr
        w1 = tl.load(w_ptr + cols, mask=mask, other=0.0).to(x1.dtype)
        w2 = tl.load(w_ptr + HALF + cols, mask=mask, other=0.0).to(x1.dtype)
        x1f = (w1 * (x1f * inv).to(x1.dtype)).to(tl.float32)
        x2f = (w2 * (x2f * inv).to(x1.dtype)).to(tl.float32)
    pos = tl.load(pos_ptr + n).to(tl.int64)
    c = tl.load(cos_ptr + pos * HALF + cols, mask=mask, other=0.0)
    s = tl.load(sin_ptr + pos * HALF + cols, mask=mask, other=0.0)
    y1 = x1f * c - x2f * s
    y2 = x2f * c + x1f * s
    if h < HQ:
        dst = q_ptr + (n * HQ + h) * 2 * HALF
        tl.store(dst + cols, y1.to(x1.dtype), mask=mask)
        tl.store(dst + HALF + cols, y2.to(x1.dtype), mask=mask)
    else:
        kv = h - HQ
        slot = tl.load(slot_ptr + n).to(tl.int64)
        cache = slot * stride_cs + kv * stride_ch + pos * stride_cl
        # rounded to the input dtype first, like the torch path's rotate(k).to(cache dtype)
        tl.store(k_cache_ptr + cache + cols, y1.to(x1.dtype).to(k_cache_ptr.dtype.element_ty), mask=mask)
        tl.store(k_cache_ptr + cache + HALF + cols, y2.to(x1.dtype).to(k_cache_ptr.dtype.element_ty), mask=mask)
        vsrc = qkv_ptr + n * width + (HQ + HK + kv) * 2 * HALF
        v1 = tl.load(vsrc + cols, mask=mask, other=0.0)
        v2 = tl.load(vsrc + HALF + cols, mask=mask, other=0.0)
        tl.store(v_cache_ptr + cache + cols, v1.to(v_cache_ptr.dtype.element_ty), mask=mask)
        tl.store(v_cache_ptr + cache + HALF + cols, v2.to(v_cache_ptr.dtype.element_ty), mask=mask)


def _check(qkv: Tensor, positions: Tensor, slots: Tensor, cos: Tensor, cache_k: Tensor, cache_v: Tensor,
           heads: int, kv_heads: int, q_norm: Tensor | None, k_norm: Tensor | None) -> None:
    dh = cache_k.shape[3]
    n = qkv.shape[0]
    if qkv.dim() != 2 or qkv.shape[1] != (heads + 2 * kv_heads) * dh or not qkv.is_contiguous():
        raise ValueError(f"qkv_rotary_cache: qkv must be contiguous (N, (H + 2 Hkv) Dh) = (N, "
                         f"{(heads + 2 * kv_heads) * dh}); got {tuple(qkv.shape)}")
    if cache_k.shape != cache_v.shape or cache_k.shape[1] != kv_heads or dh % 2:
        raise ValueError(f"qkv_rotary_cache: caches must be (S, {kv_heads}, L, even Dh); got {tuple(cache_k.shape)}")
    if positions.shape != (n,) or slots.shape != (n,):
        raise ValueError(f"qkv_rotary_cache: positions and slots must be (N,) = ({n},)")
    if cos.dim() != 2 or cos.shape[1] != dh // 2:
        raise ValueError(f"qkv_rotary_cache: cos/sin must be (max_positions, {dh // 2}); got {tuple(cos.shape)}")
    if (q_norm is None) != (k_norm is None):
        raise ValueError("qkv_rotary_cache: give both q_norm and k_norm, or neither")
