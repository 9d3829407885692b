"""Fused speculative-decoding verification: acceptance tests + residual / bonus sampling, one launch per batch.

One Triton program per sequence walks its K draft positions (stopping work at the first rejection), then samples
the bonus token by inverse CDF over the vocabulary in blocks of BLOCK_V: pass 1 sums the residual
max(0, p_j - q_j) (and p_j, for the residual-is-zero case), pass 2 finds the first index whose running cumulative
sum exceeds u * total. The rule and its torch reference `verify_reference` are in `ssd.decoding.verification`;
outputs are identical to it for the same uniforms (the only possible difference is a u * total
that falls within float32 rounding of a cumulative-sum boundary, which the tests never hit).
"""

from __future__ import annotations

import triton.language as tl
from torch import Tensor

from ssd.decoding.verify_inputs import check_verify_inputs
from ssd.kernels.launch import kernel_for, next_power_of_2

__all__ = ["verify_triton"]

MAX_BLOCK_V = 2048


def verify_triton(target_probs: Tensor, draft_probs: Tensor | None, draft_tokens: Tensor, uniforms: Tensor,
                  greedy: bool = False, block_v: int | None = None) -> tuple[Tensor, Tensor]:
    """Same contract as `ssd.decoding.verification.verify_reference`, as one Triton launch (grid = batch).

    `block_v`: vocabulary block (a power of two; default min(2048, next power of two >= V)).
    Returns (num_accepted (B,) int64 in [0, K], bonus_token (B,) int64).
    """
    import torch

    check_verify_inputs(target_probs, draft_probs, draft_tokens, uniforms, greedy)
    batch, k_plus_1, vocab = target_probs.shape
    p = _last_dim_contiguous(target_probs.float())
    q = p if draft_probs is None else _last_dim_contiguous(draft_probs.float())
    x = draft_tokens.to(torch.int64)
    u = uniforms.float()
    block = block_v or min(MAX_BLOCK_V, next_power_of_2(vocab))
    if block & (block - 1):
        raise ValueError(f"block_v must be a power of two, got {block}")
    num_accepted = torch.empty(batch, dtype=torch.int64, device=p.device)
    bonus = torch.empty(batch, dtype=torch.int64, device=p.device)
    if batch == 0:
        return num_accepted, bonus
    kernel = kernel_for(_verify_kernel, p.device)
    kernel[(batch,)](p, q, x, u, num_accepted, bonus, k_plus_1 - 1, vocab,
                     p.stride(0), p.stride(1), q.stride(0), q.stride(1), x.stride(0), x.stride(1), u.stride(0),
                     u.stride(1), GREEDY=bool(greedy), BLOCK_V=block)
    return num_accepted, bonus


def _last_dim_contiguous(t: Tensor) -> Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def _verify_kernel(p_ptr, q_ptr, x_ptr, u_ptr, n_ptr, bonus_ptr, K, V,
                   stride_pb, stride_pk, stride_qb, stride_qk, stride_xb, stride_xk, stride_ub, stride_uk,
                   GREEDY: tl.constexpr, BLOCK_V: tl.constexpr):
    """Program b: n = number of accepted drafts of sequence b, bonus = token sampled at position n."""
    b = tl.program_id(0).to(tl.int64)
    p_row = p_ptr + b * stride_pb
    q_row = q_ptr + b * stride_qb
    offs = tl.arange(0, BLOCK_V)
    n = K * 1
    for i in range(0, K):
        if n == K:  # no rejection yet: test draft i
            x = tl.load(x_ptr + b * stride_xb + i * stride_xk)
            if GREEDY:
                best_val = -1.0
                best_idx = 0
                for v0 in range(0, V, BLOCK_V):
                    idx = v0 + offs
                    vals = tl.load(p_row + i * stride_pk + idx, mask=idx < V, other=-1.0)
                    block_max = tl.max(vals, 0)
                    block_arg = tl.argmax(vals, 0) + v0
                    better = block_max > best_val  # strict: the earliest maximum wins, as torch.argmax
                    best_idx = tl.where(better, block_arg, best_idx)
                    best_val = tl.where(better, block_max, best_val)
                accept = x == best_idx
            else:
                px = tl.load(p_row + i * stride_pk + x)
                qx = tl.load(q_row + i * stride_qk + x)
                u = tl.load(u_ptr + b * stride_ub + i * stride_uk)
                accept = u * qx < px  # probability min(1, p(x) / q(x))
            n = tl.where(accept, n, i)
    pj_row = p_row + n * stride_pk
    if GREEDY:
        best_val = -1.0
        best_idx = 0
        for v0 in range(0, V, BLOCK_V):
            idx = v0 + offs
            vals = tl.load(pj_row + idx, mask=idx < V, other=-1.0)
            block_max = tl.max(vals, 0)
            block_arg = tl.argmax(vals, 0) + v0
            better = block_max > best_val
            best_idx = tl.where(better, block_arg, best_idx)
            best_val = tl.where(better, block_max, best_val)
        token = best_idx
    else:
        q_limit = tl.where(n < K, V, 0)  # at the bonus position K there is no q: the residual is p_K itself
        qj_row = q_row + n * stride_qk
        total_r = 0.0
        total_p = 0.0
        for v0 in range(0, V, BLOCK_V):
            idx = v0 + offs
            m = idx < V
            pv = tl.load(pj_row + idx, mask=m, other=0.0)
            qv = tl.load(qj_row + idx, mask=idx < q_limit, other=0.0)
            total_r += tl.sum(tl.maximum(pv - qv, 0.0), 0)
            total_p += tl.sum(pv, 0)
        use_p = total_r <= 0.0  # residual all zero (p_j == q_j): sample from p_j
        total = tl.where(use_p, total_p, total_r)
        threshold = tl.load(u_ptr + b * stride_ub + K * stride_uk) * total
        running = 0.0
        count = 0
        last_nonzero = -1
        for v0 in range(0, V, BLOCK_V):
            idx = v0 + offs
            m = idx < V
            pv = tl.load(pj_row + idx, mask=m, other=0.0)
            qv = tl.load(qj_row + idx, mask=idx < q_limit, other=0.0)
            r = tl.where(use_p, pv, tl.maximum(pv - qv, 0.0))
            cdf = running + tl.cumsum(r, 0)
            count += tl.sum(((cdf <= threshold) & m).to(tl.int32), 0)
            last_nonzero = tl.maximum(last_nonzero, tl.max(tl.where((r > 0.0) & m, idx, -1), 0))
            running += tl.sum(r, 0)
        token = tl.where(count >= V, last_nonzero, count)  # rounding pushed u * total past the end
    tl.store(n_ptr + b, n)
    tl.store(bonus_ptr + b, token)
