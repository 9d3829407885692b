"""Building blocks of a Llama-family decoder written for inference with an explicit KV cache.

Shapes: B batch rows, T new tokens per row, D hidden size, H query heads, Hkv key/value heads, Dh head dim,
S cache slots, L cache length (max positions). The KV cache of one layer is a pair of tensors
`(S, Hkv, L, Dh)`; a forward writes the new tokens' keys/values at `(slot, position)` and attends over the
whole slot with a causal mask by position, so every step has static shapes (CUDA-graph friendly) and rolling
back rejected draft tokens only means lowering a sequence's length: stale entries beyond it are masked out.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class RMSNorm(nn.Module):
    """y = w * x / sqrt(mean(x^2) + eps), computed in float32 like the reference implementation.

    `fused=True` runs the Triton kernel of `ssd.kernels.rmsnorm_rotary` (CUDA, or CPU under TRITON_INTERPRET=1).
    """

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps
        self.fused = False

    def forward(self, x: Tensor) -> Tensor:
        if self.fused:
            from ssd.kernels.rmsnorm_rotary import rmsnorm

            return rmsnorm(x, self.weight, self.eps)
        dtype = x.dtype
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(dtype)


def rope_inverse_frequencies(head_dim: int, theta: float, scaling: dict | None) -> Tensor:
    """(Dh/2,) float32 inverse frequencies; `scaling` = HF rope parameters (types default/llama3/linear)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    kind = (scaling or {}).get("rope_type", (scaling or {}).get("type", "default"))
    if kind == "default":
        return inv_freq
    if kind == "linear":
        return inv_freq / float(scaling["factor"])
    if kind == "llama3":
        factor = float(scaling["factor"])
        low, high = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
        old_len = float(scaling["original_max_position_embeddings"])
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
        smooth = (old_len / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old_len / high) & ~(wavelen > old_len / low)
        return torch.where(medium, smoothed, scaled)
    raise ValueError(f"unsupported rope_type {kind!r}; supported: default, linear, llama3")


def rope_table(inv_freq: Tensor, max_len: int, device: torch.device | str) -> tuple[Tensor, Tensor]:
    """(cos, sin), each (max_len, Dh) float32, for positions 0..max_len-1."""
    positions = torch.arange(max_len, dtype=torch.float32, device=device)
    freqs = torch.outer(positions, inv_freq.to(device))
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate x (B, T, heads, Dh) by cos/sin (B, T, Dh) (the 'rotate half' convention of HF Llama)."""
    cos = cos.unsqueeze(2).to(x.dtype)
    sin = sin.unsqueeze(2).to(x.dtype)
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    """Grouped-query attention reading/writing one layer of a slot-indexed KV cache (optional QK-norm)."""

    def __init__(self, hidden: int, heads: int, kv_heads: int, head_dim: int, bias: bool, qk_norm: bool,
                 eps: float) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.q_proj = nn.Linear(hidden, heads * head_dim, bias=bias)
        self.k_proj = nn.Linear(hidden, kv_heads * head_dim, bias=bias)
        self.v_proj = nn.Linear(hidden, kv_heads * head_dim, bias=bias)
        self.o_proj = nn.Linear(heads * head_dim, hidden, bias=bias)
        self.q_norm = RMSNorm(head_dim, eps) if qk_norm else None
        self.k_norm = RMSNorm(head_dim, eps) if qk_norm else None
        self.fused = False  # Triton rotary: cos/sin are then (L, Dh/2) tables looked up in the kernel

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, cache_k: Tensor, cache_v: Tensor, slots: Tensor,
                positions: Tensor, mask: Tensor) -> Tensor:
        """x (B, T, D); cache_* (S, Hkv, L, Dh); slots (B,); positions (B, T); mask (B, 1, T, L) bool.

        cos/sin: (B, T, Dh) rows for `positions`, or with `fused` the (L, Dh/2) tables.
        """
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.fused:
            from ssd.kernels.rmsnorm_rotary import rotary

            q, k = rotary(q.reshape(b * t, self.heads, self.head_dim), k.reshape(b * t, self.kv_heads, self.head_dim),
                          positions.reshape(-1), cos, sin)
            q, k = q.view(b, t, self.heads, self.head_dim), k.view(b, t, self.kv_heads, self.head_dim)
        else:
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        rows = slots[:, None].expand(b, t)
        cache_k[rows, :, positions] = k.to(cache_k.dtype)
        cache_v[rows, :, positions] = v.to(cache_v.dtype)
        keys, values = cache_k[slots], cache_v[slots]  # (B, Hkv, L, Dh)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), keys.to(q.dtype), values.to(q.dtype),
                                             attn_mask=mask, enable_gqa=self.kv_heads != self.heads)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, self.heads * self.head_dim))


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x))."""

    def __init__(self, hidden: int, intermediate: int, bias: bool) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=bias)
        self.up_proj = nn.Linear(hidden, intermediate, bias=bias)
        self.down_proj = nn.Linear(intermediate, hidden, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, hidden: int, intermediate: int, heads: int, kv_heads: int, head_dim: int, eps: float,
                 attention_bias: bool, mlp_bias: bool, qk_norm: bool) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(hidden, eps)
        self.self_attn = Attention(hidden, heads, kv_heads, head_dim, attention_bias, qk_norm, eps)
        self.post_attention_layernorm = RMSNorm(hidden, eps)
        self.mlp = SwiGLU(hidden, intermediate, mlp_bias)
        self.fused = False  # residual add fused into the second RMSNorm (Triton)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, cache_k: Tensor, cache_v: Tensor, slots: Tensor,
                positions: Tensor, mask: Tensor) -> Tensor:
        attn = self.self_attn(self.input_layernorm(x), cos, sin, cache_k, cache_v, slots, positions, mask)
        if self.fused:
            from ssd.kernels.rmsnorm_rotary import rmsnorm

            norm = self.post_attention_layernorm
            y, x = rmsnorm(attn, norm.weight, norm.eps, residual=x)
            return x + self.mlp(y)
        x = x + attn
        return x + self.mlp(self.post_attention_layernorm(x))
