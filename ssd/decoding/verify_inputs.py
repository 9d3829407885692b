"""The input contract of speculative verification, checked once for the torch rule and the Triton kernel alike.

`check_verify_inputs` raises ValueError naming the argument whose shape, dtype or device does not fit
(`ssd.decoding.verification` states the contract; `ssd.kernels.verify` implements it as one launch).
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_verify_inputs(target_probs: Tensor, draft_probs: Tensor | None, draft_tokens: Tensor,
                        uniforms: Tensor, greedy: bool) -> None:
    """Raise ValueError naming the argument whose shape, dtype or device does not fit the contract."""
    if target_probs.dim() != 3 or target_probs.shape[1] < 1:
        raise ValueError(f"target_probs must be (B, K+1, V), got shape {tuple(target_probs.shape)}")
    batch, k_plus_1, vocab = target_probs.shape
    k = k_plus_1 - 1
    if not target_probs.is_floating_point():
        raise ValueError(f"target_probs must be floating point (probabilities), got {target_probs.dtype}")
    if tuple(draft_tokens.shape) != (batch, k):
        raise ValueError(f"draft_tokens must be (B, K) = ({batch}, {k}), got {tuple(draft_tokens.shape)}")
    if draft_tokens.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"draft_tokens must be int64, got {draft_tokens.dtype}")
    if tuple(uniforms.shape) != (batch, k_plus_1):
        raise ValueError(f"uniforms must be (B, K+1) = ({batch}, {k_plus_1}), got {tuple(uniforms.shape)}")
    if draft_probs is None:
        if not greedy:
            raise ValueError("draft_probs is required unless greedy=True")
    elif tuple(draft_probs.shape) != (batch, k, vocab):
        raise ValueError(f"draft_probs must be (B, K, V) = ({batch}, {k}, {vocab}), got {tuple(draft_probs.shape)}")
    tensors = [target_probs, draft_tokens, uniforms] + ([] if draft_probs is None else [draft_probs])
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise ValueError(f"verify inputs must be on one device, got {sorted(map(str, devices))}")
