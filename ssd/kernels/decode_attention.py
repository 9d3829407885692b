"""Decode attention over a slot KV cache at the true sequence length, split over the keys (flash-decoding).

Query (b, t) sits at position `positions[b, t]` of cache slot `slots[b]` and attends to keys 0..positions[b, t].
With a shared prefix (tree attention for speculation branches), keys at positions < `prefix_lens[b]` are read from
slot `prefix_slots[b]` instead: B branches that extend one sequence then read that sequence's prefix in place and
keep only their own tokens in their own slots, so forking a branch copies nothing.

Kernel layout: one program per (row b, KV head h, key split s). The T * G queries of row b that share KV head h
(G = H / Hkv query heads per KV head) form one (T*G, Dh) block, so GQA heads and the T tokens of a verify step share
every key load. Split s covers keys [s * CHUNK, (s + 1) * CHUNK) up to the row's largest position (splits past the
end cost one early exit), with an online softmax over BLOCK_N-key tiles. Splits are merged in the same launch: each
program writes its partial (max, sum, accumulator) and bumps a per-(b, h) counter; the program that finds it last
combines all splits, writes the output and resets the counter. The counters live in the caller's workspace
(`ssd.engine.kv_cache.KVCache.attention_locks`), zeros between launches.

`decode_attention_reference` is the same function in torch (gathers the keys, masks by position).
"""

from __future__ import annotations

import math

import torch
import triton.language as tl
from torch import Tensor

from ssd.kernels.launch import kernel_for, next_power_of_2

__all__ = ["decode_attention", "decode_attention_reference", "max_query_rows"]

BLOCK_N = 64
CHUNK = 256
MAX_BLOCK_M = 128


def max_query_rows(num_heads: int, num_kv_heads: int) -> int:
    """The largest T (tokens per row) the kernel takes for this head layout (T * G <= MAX_BLOCK_M)."""
    return MAX_BLOCK_M // (num_heads // num_kv_heads)


def decode_attention(q: Tensor, cache_k: Tensor, cache_v: Tensor, slots: Tensor, positions: Tensor,
                     locks: Tensor, prefix_slots: Tensor | None = None,
                     prefix_lens: Tensor | None = None) -> Tensor:
    """Attention output (B, T, H, Dh) in q's dtype.

    q: (B, T, H, Dh), rotary applied; cache_k, cache_v: (S, Hkv, L, Dh), the new tokens' keys/values already
    written at (slot, position); slots (B,) int64; positions (B, T) int64, each < L; locks: int32 workspace of at
    least B * Hkv zeros (left zero); prefix_slots, prefix_lens (B,) int64: keys below prefix_lens[b] come from
    prefix_slots[b] (both or neither).
    """
    _check(q, cache_k, cache_v, slots, positions, locks, prefix_slots, prefix_lens)
    b, t, heads, dh = q.shape
    kv_heads, max_len = cache_k.shape[1], cache_k.shape[2]
    group = heads // kv_heads
    block_m = max(16, next_power_of_2(t * group))
    block_d = max(16, next_power_of_2(dh))
    splits = max(1, math.ceil(max_len / CHUNK))
    out = torch.empty_like(q)
    if b == 0:
        return out
    part_acc = torch.empty((b, kv_heads, splits, block_m, block_d), dtype=torch.float32, device=q.device)
    part_ml = torch.empty((b, kv_heads, splits, 2, block_m), dtype=torch.float32, device=q.device)
    has_prefix = prefix_slots is not None
    slots = slots.contiguous()  # index tensors may arrive as stride-0 expansions
    pslots = prefix_slots.contiguous() if has_prefix else slots
    plens = prefix_lens.contiguous() if has_prefix else slots
    kernel = kernel_for(_decode_attention_kernel, q.device)
    kernel[(b, kv_heads, splits)](
        q, cache_k, cache_v, out, part_acc, part_ml, locks, slots, positions.contiguous(), pslots, plens,
        t, q.stride(0), q.stride(1), q.stride(2), cache_k.stride(0), cache_k.stride(1), cache_k.stride(2),
        out.stride(0), out.stride(1), out.stride(2), dh ** -0.5 * 1.4426950408889634,
        G=group, D=dh, BLOCK_M=block_m, BLOCK_D=block_d, BLOCK_N=BLOCK_N, CHUNK=CHUNK, SPLITS=splits,
        HAS_PREFIX=has_prefix, IEEE=q.dtype == torch.float32, num_warps=4)
    return out


def decode_attention_reference(q: Tensor, cache_k: Tensor, cache_v: Tensor, slots: Tensor, positions: Tensor,
                               prefix_slots: Tensor | None = None, prefix_lens: Tensor | None = None) -> Tensor:
    """The same attention in torch, float32 math; (B, T, H, Dh) in q's dtype."""
    b, t, heads, dh = q.shape
    kv_heads, max_len = cache_k.shape[1], cache_k.shape[2]
    key_pos = torch.arange(max_len, device=q.device)
    keys, values = cache_k[slots].float(), cache_v[slots].float()  # (B, Hkv, L, Dh)
    if prefix_slots is not None:
        shared = (key_pos[None, :] < prefix_lens[:, None])[:, None, :, None]  # (B, 1, L, 1)
        keys = torch.where(shared, cache_k[prefix_slots].float(), keys)
        values = torch.where(shared, cache_v[prefix_slots].float(), values)
    keys = keys.repeat_interleave(heads // kv_heads, dim=1)  # (B, H, L, Dh)
    values = values.repeat_interleave(heads // kv_heads, dim=1)
    scores = torch.einsum("bthd,bhld->bhtl", q.float(), keys) * dh ** -0.5
    visible = key_pos[None, None, None, :] <= positions[:, None, :, None]
    weights = torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1)
    return torch.einsum("bhtl,bhld->bthd", weights, values).to(q.dtype)


def _decode_attention_kernel(q_ptr, k_ptr, v_ptr, out_ptr, acc_ptr, ml_ptr, lock_ptr, slot_ptr, pos_ptr,
                             pslot_ptr, plen_ptr, T, stride_qb, stride_qt, stride_qh, stride_cs, stride_ch,
                             stride_cl, stride_ob, stride_ot, stride_oh, qk_scale,
                             G: tl.constexpr, D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
                             BLOCK_N: tl.constexpr, CHUNK: tl.constexpr, SPLITS: tl.constexpr,
                             HAS_PREFIX: tl.constexpr, IEEE: tl.constexpr):
    """Program (b, h, s). Row r of the query block is token r // G, query head h * G + r % G.

    qk_scale = log2(e) / sqrt(Dh): scores live in base 2 (exp2).
    """
    b = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1)
    s = tl.program_id(2)
    kv_heads = tl.num_programs(1)
    rows = tl.arange(0, BLOCK_M)
    tok = rows // G
    head = h * G + rows % G
    row_ok = tok < T
    cols = tl.arange(0, BLOCK_D)
    col_ok = cols < D
    pos = tl.load(pos_ptr + b * T + tok, mask=row_ok, other=-1).to(tl.int64)
    kv_len = tl.max(pos, 0) + 1
    q = tl.load(q_ptr + b * stride_qb + tok[:, None] * stride_qt + head[:, None] * stride_qh + cols[None, :],
                mask=row_ok[:, None] & col_ok[None, :], other=0.0)
    slot = tl.load(slot_ptr + b).to(tl.int64)
    if HAS_PREFIX:
        pslot = tl.load(pslot_ptr + b).to(tl.int64)
        plen = tl.load(plen_ptr + b).to(tl.int64)
    m_i = tl.full((BLOCK_M,), float("-inf"), tl.float32)
    l_i = tl.zeros((BLOCK_M,), tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)
    start = s * CHUNK
    end = tl.minimum(start + CHUNK, kv_len)
    for n0 in range(start, end, BLOCK_N):
        keys = n0 + tl.arange(0, BLOCK_N)
        key_ok = keys < end
        key_slot = tl.zeros((BLOCK_N,), tl.int64) + slot
        if HAS_PREFIX:
            key_slot = tl.where(keys < plen, pslot, key_slot)
        offs = key_slot[:, None] * stride_cs + h * stride_ch + keys[:, None] * stride_cl + cols[None, :]
        kv_mask = key_ok[:, None] & col_ok[None, :]
        k = tl.load(k_ptr + offs, mask=kv_mask, other=0.0)
        v = tl.load(v_ptr + offs, mask=kv_mask, other=0.0)
        if IEEE:
            scores = tl.dot(q, tl.trans(k), input_precision="ieee") * qk_scale
        else:
            scores = tl.dot(q, tl.trans(k)) * qk_scale
        visible = (keys[None, :] <= pos[:, None]) & key_ok[None, :]
        scores = tl.where(visible, scores, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(scores, 1))
        m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp2(m_i - m_use)
        p = tl.exp2(scores - m_use[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        if IEEE:
            acc = acc * alpha[:, None] + tl.dot(p, v.to(tl.float32), input_precision="ieee")
        else:
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    out_offs = b * stride_ob + tok[:, None] * stride_ot + head[:, None] * stride_oh + cols[None, :]
    out_mask = row_ok[:, None] & col_ok[None, :]
    if SPLITS == 1:
        out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
        tl.store(out_ptr + out_offs, out.to(out_ptr.dtype.element_ty), mask=out_mask)
    else:
        part = (b * kv_heads + h) * SPLITS
        tile = rows[:, None] * BLOCK_D + cols[None, :]
        tl.store(acc_ptr + (part + s) * BLOCK_M * BLOCK_D + tile, acc)
        tl.store(ml_ptr + ((part + s) * 2) * BLOCK_M + rows, m_i)
        tl.store(ml_ptr + ((part + s) * 2 + 1) * BLOCK_M + rows, l_i)
        tl.debug_barrier()  # every thread's partial is written before the counter says so
        done = tl.atomic_add(lock_ptr + b * kv_heads + h, 1, sem="acq_rel", scope="gpu")
        if done == SPLITS - 1:  # the last split of (b, h) to finish merges them all
            m_tot = tl.full((BLOCK_M,), float("-inf"), tl.float32)
            for i in tl.static_range(SPLITS):
                m_s = tl.load(ml_ptr + ((part + i) * 2) * BLOCK_M + rows, cache_modifier=".cg")
                m_tot = tl.maximum(m_tot, m_s)
            m_use = tl.where(m_tot == float("-inf"), 0.0, m_tot)
            l_tot = tl.zeros((BLOCK_M,), tl.float32)
            acc_tot = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)
            for i in tl.static_range(SPLITS):
                w = tl.exp2(tl.load(ml_ptr + ((part + i) * 2) * BLOCK_M + rows, cache_modifier=".cg") - m_use)
                l_tot += w * tl.load(ml_ptr + ((part + i) * 2 + 1) * BLOCK_M + rows, cache_modifier=".cg")
                acc_tot += w[:, None] * tl.load(acc_ptr + (part + i) * BLOCK_M * BLOCK_D + tile,
                                                cache_modifier=".cg")
            out = acc_tot / tl.where(l_tot > 0, l_tot, 1.0)[:, None]
            tl.store(out_ptr + out_offs, out.to(out_ptr.dtype.element_ty), mask=out_mask)
            tl.atomic_xchg(lock_ptr + b * kv_heads + h, 0)


def _check(q: Tensor, cache_k: Tensor, cache_v: Tensor, slots: Tensor, positions: Tensor, locks: Tensor,
           prefix_slots: Tensor | None, prefix_lens: Tensor | None) -> None:
    if q.dim() != 4 or cache_k.dim() != 4 or cache_k.shape != cache_v.shape:
        raise ValueError(f"decode_attention: q must be (B, T, H, Dh) and caches (S, Hkv, L, Dh); got "
                         f"{tuple(q.shape)}, {tuple(cache_k.shape)}, {tuple(cache_v.shape)}")
    b, t, heads, dh = q.shape
    kv_heads = cache_k.shape[1]
    if cache_k.shape[3] != dh or heads % kv_heads:
        raise ValueError(f"decode_attention: head dim {dh} / heads {heads} do not fit cache {tuple(cache_k.shape)}")
    if t * (heads // kv_heads) > MAX_BLOCK_M:
        raise ValueError(f"decode_attention: T * H/Hkv = {t * heads // kv_heads} query rows per KV head exceed "
                         f"{MAX_BLOCK_M}; use the prefill path for long inputs")
    if q.stride(-1) != 1 or cache_k.stride(-1) != 1 or cache_v.stride() != cache_k.stride():
        raise ValueError("decode_attention: the head dim of q and of the caches must be contiguous")
    if slots.shape != (b,) or positions.shape != (b, t):
        raise ValueError(f"decode_attention: slots must be (B,) and positions (B, T) = ({b}, {t}); got "
                         f"{tuple(slots.shape)}, {tuple(positions.shape)}")
    if (prefix_slots is None) != (prefix_lens is None):
        raise ValueError("decode_attention: give both prefix_slots and prefix_lens, or neither")
    if prefix_slots is not None and (prefix_slots.shape != (b,) or prefix_lens.shape != (b,)):
        raise ValueError(f"decode_attention: prefix_slots and prefix_lens must be (B,) = ({b},)")
    if locks.dtype != torch.int32 or locks.numel() < b * kv_heads:
        raise ValueError(f"decode_attention: locks must be int32 with >= B * Hkv = {b * kv_heads} entries")
