"""Training and evaluation objectives on logits (B, T, V) and targets (B, T)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def next_token_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy in nats per token (computed in float32)."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """temperature^2 * KL(teacher || student) of the softened distributions, mean over tokens (float32)."""
    v = student_logits.shape[-1]
    log_p_teacher = F.log_softmax(teacher_logits.float().reshape(-1, v) / temperature, -1)
    log_p_student = F.log_softmax(student_logits.float().reshape(-1, v) / temperature, -1)
    kl = F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="batchmean")
    return kl * temperature**2


def greedy_agreement(draft_logits: Tensor, target_logits: Tensor) -> Tensor:
    """Fraction of positions where the draft's argmax token equals the target's (scalar tensor)."""
    return (draft_logits.argmax(-1) == target_logits.argmax(-1)).float().mean()


@torch.no_grad()
def param_count(model: torch.nn.Module) -> int:
    """Number of distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
