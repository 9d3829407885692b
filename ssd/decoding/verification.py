"""Exact speculative-decoding verification (Leviathan et al. 2023; Chen et al. 2023), batched.

A round proposes K draft tokens x_0..x_{K-1}, each sampled from a draft distribution q_i; the target gives p_0..p_K
(p_K: the position after the last draft). The rule, which makes the emitted tokens distributed exactly as the
target alone would sample them:

- accept x_i with probability min(1, p_i(x_i) / q_i(x_i)) (test: u_i * q_i(x_i) < p_i(x_i)) while all earlier
  drafts were accepted;
- at the first rejection j, sample the bonus token from normalize(max(0, p_j - q_j)); that residual is all zero only
  when p_j == q_j (then acceptance was certain, so this is reached only through rounding) and we sample from p_j;
- when all K are accepted, sample the bonus token from p_K.

Sampling is by inverse CDF with uniforms[:, K]: the first index whose cumulative mass exceeds u * total.
`q_i` is whatever x_i was really drawn from: a one-hot for a greedy draft or a random-token backup (then x_i is
accepted with probability p_i(x_i), never "iff x_i == argmax p_i", which is not exact at temperature > 0), or the
Saguaro-reweighted draft distribution. `greedy=True` (temperature 0): accept iff x_i == argmax p_i, bonus = argmax of
p at the first mismatch (or at K); ties go to the smallest index, as `torch.argmax`.

`verify` runs the fused Triton kernel (`ssd.kernels.verify`) on CUDA and the vectorised torch reference elsewhere.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ssd.decoding.verify_inputs import check_verify_inputs

BACKENDS = ("auto", "torch", "triton")


def verify(target_probs: Tensor, draft_probs: Tensor | None, draft_tokens: Tensor, uniforms: Tensor,
           greedy: bool = False, backend: str = "auto") -> tuple[Tensor, Tensor]:
    """Verify a batch of K-token drafts; return (num_accepted (B,) int64 in [0, K], bonus_token (B,) int64).

    target_probs: (B, K+1, V) float32, the target's distribution at each draft position and the bonus position.
    draft_probs: (B, K, V) float32, the distribution each draft token was sampled from (may be None if greedy).
    draft_tokens: (B, K) int64. uniforms: (B, K+1) float32 in [0, 1): [:, :K] acceptance tests, [:, K] the
    correction/bonus sample. backend: "auto" (Triton on CUDA when it imports, else torch), "torch" (reference),
    "triton" (the fused kernel; CPU tensors need TRITON_INTERPRET=1 for Triton's interpreter).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not allowed; expected one of {', '.join(map(repr, BACKENDS))}")
    if backend == "auto":
        from ssd.kernels.launch import triton_available

        backend = "triton" if target_probs.is_cuda and triton_available() else "torch"
    if backend == "torch":
        return verify_reference(target_probs, draft_probs, draft_tokens, uniforms, greedy)
    from ssd.kernels.verify import verify_triton

    return verify_triton(target_probs, draft_probs, draft_tokens, uniforms, greedy)


def verify_reference(target_probs: Tensor, draft_probs: Tensor | None, draft_tokens: Tensor, uniforms: Tensor,
                     greedy: bool = False) -> tuple[Tensor, Tensor]:
    """The verification rule in plain, vectorised torch (any device); same contract as `verify`.

    Computes in float32, or in float64 when target_probs is float64 (used by the exactness tests).
    """
    check_verify_inputs(target_probs, draft_probs, draft_tokens, uniforms, greedy)
    batch, k_plus_1, vocab = target_probs.shape
    k = k_plus_1 - 1
    dtype = torch.float64 if target_probs.dtype == torch.float64 else torch.float32
    x = draft_tokens.long()
    if greedy:  # argmax in the input's own dtype (bf16 logits need no float32 copy)
        return verify_greedy(target_probs.argmax(-1), x)
    p = target_probs.to(dtype)
    rows = torch.arange(batch, device=p.device)
    q = draft_probs.to(dtype)
    px = p[:, :k].gather(-1, x[..., None]).squeeze(-1)
    qx = q.gather(-1, x[..., None]).squeeze(-1)
    accept = uniforms[:, :k].to(dtype) * qx < px
    num_accepted = accept.long().cumprod(1).sum(1) if k > 0 else torch.zeros(batch, dtype=torch.long,
                                                                               device=p.device)
    p_j = p[rows, num_accepted]  # (B, V)
    q_padded = torch.cat([draft_probs.to(dtype), torch.zeros_like(p[:, :1])], dim=1)  # q_K = 0: bonus from p_K
    residual = (p_j - q_padded[rows, num_accepted]).clamp_min(0.0)
    residual = torch.where((residual.sum(-1) <= 0.0)[:, None], p_j, residual)
    return num_accepted, sample_inverse_cdf(residual, uniforms[:, k].to(dtype))


def verify_greedy(target_tokens: Tensor, draft_tokens: Tensor) -> tuple[Tensor, Tensor]:
    """The greedy rule from the target's argmax tokens (B, K+1) and the drafts (B, K): accept while equal; the
    bonus is the target's token at the first mismatch (or at K). Returns (num_accepted (B,), bonus (B,))."""
    k = draft_tokens.shape[1]
    match = (draft_tokens == target_tokens[:, :k]).long()
    num_accepted = match.cumprod(1).sum(1) if k > 0 else torch.zeros_like(target_tokens[:, 0])
    return num_accepted, target_tokens.gather(1, num_accepted[:, None])[:, 0]


def sample_inverse_cdf(weights: Tensor, uniforms: Tensor) -> Tensor:
    """Index of the first cumulative weight > u * total, per row; (B, V) non-negative weights, (B,) u in [0, 1).

    If rounding puts u * total at or past the last cumulative sum, the last index with positive weight is taken,
    so a zero-weight index is never returned (unless a row has no positive weight at all).
    """
    vocab = weights.shape[-1]
    threshold = uniforms * weights.sum(-1)
    count = (weights.cumsum(-1) <= threshold[:, None]).sum(-1)
    last_nonzero = vocab - 1 - (weights > 0).flip(-1).int().argmax(-1)
    return torch.where(count >= vocab, last_nonzero, count)
