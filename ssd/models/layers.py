"""Building blocks of a Llama-family decoder written for inference with an explicit KV cache.

Shapes: B batch rows, T new tokens per row, D hidden size, H query heads, Hkv key/value heads, Dh head dim,
S cache slots, L cache length (max positions). The KV cache of one layer is a pair of tensors
`(S, Hkv, L, Dh)`; a forward writes the new tokens' keys/values at `(slot, position)` and each query attends to
the keys at positions <= its own, so every step has static shapes (CUDA-graph friendly) and rolling back
rejected draft tokens only means lowering a sequence's length: stale entries beyond it are never read.

Two paths compute the same function: the torch reference (any device) and, with `fused=True`
(`Llama.use_triton_kernels`), the Triton kernels of `ssd/kernels/`: RMSNorm with the residual add fused, QK-norm +
rotary + cache write in one launch, decode attention at the true length (split over the keys), silu * up.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssd.kernels.decode_attention import decode_attention, decode_attention_reference, max_query_rows
from ssd.kernels.qkv_rotary import qkv_rotary_cache, qkv_rotary_cache_reference
from ssd.kernels.rmsnorm import rmsnorm
from ssd.kernels.skinny_gemm import MAX_ROWS as SKINNY_MAX_ROWS
from ssd.kernels.skinny_gemm import skinny_gemm
from ssd.kernels.swiglu import silu_mul


class RMSNorm(nn.Module):
    """y = w * x / sqrt(mean(x^2) + eps), computed in float32 like the reference implementation.

    With `residual`, h = x + residual is formed first and (norm(h), h) returned: the pre-norm block's residual
    add rides along with the next norm. `fused=True` runs the Triton kernel of `ssd.kernels.rmsnorm` (one pass).
    """

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps
        self.fused = False

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        if self.fused:
            return rmsnorm(x, self.weight, self.eps, residual)
        h = x if residual is None else x + residual
        h32 = h.float()
        y = self.weight * (h32 * torch.rsqrt(h32.pow(2).mean(-1, keepdim=True) + self.eps)).to(h.dtype)
        return y if residual is None else (y, h)


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
    """(cos, sin), each (max_len, Dh/2) float32, for positions 0..max_len-1 (the two halves of a head share them)."""
    positions = torch.arange(max_len, dtype=torch.float32, device=device)
    freqs = torch.outer(positions, inv_freq.to(device))
    return freqs.cos(), freqs.sin()


@dataclass
class AttentionBatch:
    """Where a forward's tokens sit in the KV cache, shared by every layer of one forward.

    positions (B, T) int64; slots (B,) int64 cache slot of each row; prefix_slots / prefix_lens (B,) or None: keys
    at positions < prefix_lens[b] are read from slot prefix_slots[b] (speculation branches that share their
    sequence's prefix); prefill: every row starts at position 0 with an empty slot, so attention only needs the
    new tokens (one causal flash-attention call); locks: the decode kernel's int32 workspace (Triton path only).
    """

    positions: Tensor
    slots: Tensor
    prefix_slots: Tensor | None = None
    prefix_lens: Tensor | None = None
    prefill: bool = False
    locks: Tensor | None = None


class Attention(nn.Module):
    """Grouped-query attention reading/writing one layer of a slot-indexed KV cache (optional QK-norm).

    Loads with Hugging Face's separate q/k/v projections; `fuse()` (called by `load_model`) concatenates them
    into one `qkv_proj`, which is what `forward` runs: one GEMM instead of three.
    """

    def __init__(self, hidden: int, heads: int, kv_heads: int, head_dim: int, bias: bool, qk_norm: bool,
                 eps: float) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.q_proj = nn.Linear(hidden, heads * head_dim, bias=bias)
        self.k_proj = nn.Linear(hidden, kv_heads * head_dim, bias=bias)
        self.v_proj = nn.Linear(hidden, kv_heads * head_dim, bias=bias)
        self.qkv_proj: nn.Linear | None = None
        self.o_proj = nn.Linear(heads * head_dim, hidden, bias=bias)
        self.q_norm = RMSNorm(head_dim, eps) if qk_norm else None
        self.k_norm = RMSNorm(head_dim, eps) if qk_norm else None
        self.fused = False  # Triton: QK-norm + rotary + cache write in one launch, decode attention kernel
        self.skinny = False  # Triton skinny GEMM for the projections of small decode steps

    def fuse(self) -> None:
        """Replace q/k/v projections by one `qkv_proj` (rows: queries, keys, values)."""
        self.qkv_proj = fuse_linear([self.q_proj, self.k_proj, self.v_proj])
        del self.q_proj, self.k_proj, self.v_proj

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, cache_k: Tensor, cache_v: Tensor,
                batch: AttentionBatch) -> Tensor:
        """x (B, T, D); cache_* (S, Hkv, L, Dh); cos/sin (L, Dh/2) float32 rotary tables. Returns (B, T, D)."""
        if self.qkv_proj is None:
            raise RuntimeError("Attention.fuse() must run before forward (load_model does it)")
        b, t, _ = x.shape
        qkv = project(x.view(b * t, -1), self.qkv_proj, self.skinny)
        rows = batch.slots[:, None].expand(b, t).reshape(-1)
        positions = batch.positions.reshape(-1)
        norms = (None, None) if self.q_norm is None else (self.q_norm.weight, self.k_norm.weight)
        eps = 1e-6 if self.q_norm is None else self.q_norm.eps
        write = qkv_rotary_cache if self.fused else qkv_rotary_cache_reference
        q = write(qkv, positions, rows, cos, sin, cache_k, cache_v, self.heads, self.kv_heads, *norms, eps)
        q = q.view(b, t, self.heads, self.head_dim)
        if batch.prefill and self.fused:  # fresh slots: causal flash attention over the new tokens alone
            keys, values = cache_k[batch.slots, :, :t], cache_v[batch.slots, :, :t]
            out = F.scaled_dot_product_attention(q.transpose(1, 2), keys, values, is_causal=True,
                                                 enable_gqa=self.kv_heads != self.heads).transpose(1, 2)
        elif self.fused and t <= max_query_rows(self.heads, self.kv_heads):
            out = decode_attention(q, cache_k, cache_v, batch.slots, batch.positions, batch.locks,
                                   batch.prefix_slots, batch.prefix_lens)
        else:
            out = decode_attention_reference(q, cache_k, cache_v, batch.slots, batch.positions,
                                             batch.prefix_slots, batch.prefix_lens)
        return project(out.reshape(b * t, self.heads * self.head_dim), self.o_proj, self.skinny).view(b, t, -1)


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)); `fuse()` joins gate and up into one `gate_up_proj` GEMM."""

    def __init__(self, hidden: int, intermediate: int, bias: bool) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=bias)
        self.up_proj = nn.Linear(hidden, intermediate, bias=bias)
        self.gate_up_proj: nn.Linear | None = None
        self.down_proj = nn.Linear(intermediate, hidden, bias=bias)
        self.fused = False  # Triton silu * up
        self.skinny = False  # Triton skinny GEMM for the projections of small decode steps

    def fuse(self) -> None:
        """Replace gate/up projections by one `gate_up_proj` (rows: gate, then up)."""
        self.gate_up_proj = fuse_linear([self.gate_proj, self.up_proj])
        del self.gate_proj, self.up_proj

    def forward(self, x: Tensor) -> Tensor:
        if self.gate_up_proj is None:
            raise RuntimeError("SwiGLU.fuse() must run before forward (load_model does it)")
        shape = x.shape
        gate_up = project(x.reshape(-1, x.shape[-1]), self.gate_up_proj, self.skinny)
        if self.fused:
            hidden = silu_mul(gate_up)
        else:
            gate, up = gate_up.chunk(2, dim=-1)
            hidden = F.silu(gate) * up
        return project(hidden, self.down_proj, self.skinny).view(shape)


def project(x: Tensor, linear: nn.Linear, skinny: bool) -> Tensor:
    """linear(x) for x (M, K); with `skinny` and M <= 16 rows on CUDA, the Triton skinny GEMM (`ssd.kernels`)."""
    if skinny and x.is_cuda and x.shape[0] <= SKINNY_MAX_ROWS:
        out = skinny_gemm(x, linear.weight)
        return out if linear.bias is None else out + linear.bias
    return linear(x)


def fuse_linear(parts: list[nn.Linear]) -> nn.Linear:
    """One Linear whose output rows are the concatenation of `parts`' outputs (weights and biases joined)."""
    weight = torch.cat([p.weight for p in parts], dim=0)
    fused = nn.Linear(weight.shape[1], weight.shape[0], bias=parts[0].bias is not None,
                      device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        fused.weight.copy_(weight)
        if fused.bias is not None:
            fused.bias.copy_(torch.cat([p.bias for p in parts]))
    return fused.requires_grad_(parts[0].weight.requires_grad)


class DecoderLayer(nn.Module):
    """Pre-norm block: h = x + attn(norm(x)), then h + mlp(norm(h)).

    The residual stream travels beside the block's output: `forward(x, residual)` returns (mlp output, residual)
    and the next block's input norm adds them (`RMSNorm(x, residual)`), so every add is fused into a norm.
    `all_reduce` (None on one device) sums a tensor-parallel shard's partial attention and MLP outputs over the
    ranks in place, one call per block half, before the residual add (`ssd.engine.tensor_parallel`).
    """

    def __init__(self, hidden: int, intermediate: int, heads: int, kv_heads: int, head_dim: int, eps: float,
                 attention_bias: bool, mlp_bias: bool, qk_norm: bool) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(hidden, eps)
        self.self_attn = Attention(hidden, heads, kv_heads, head_dim, attention_bias, qk_norm, eps)
        self.post_attention_layernorm = RMSNorm(hidden, eps)
        self.mlp = SwiGLU(hidden, intermediate, mlp_bias)
        self.all_reduce: Callable[[Tensor], Tensor] | None = None

    def forward(self, x: Tensor, residual: Tensor | None, cos: Tensor, sin: Tensor, cache_k: Tensor,
                cache_v: Tensor, batch: AttentionBatch) -> tuple[Tensor, Tensor]:
        """x (B, T, D): the previous block's output (or the embeddings, with residual None)."""
        if residual is None:
            h, residual = self.input_layernorm(x), x
        else:
            h, residual = self.input_layernorm(x, residual)
        attn = self.self_attn(h, cos, sin, cache_k, cache_v, batch)
        if self.all_reduce is not None:
            attn = self.all_reduce(attn)
        h, residual = self.post_attention_layernorm(attn, residual)
        out = self.mlp(h)
        if self.all_reduce is not None:
            out = self.all_reduce(out)
        return out, residual
