"""Loss terms as pure functions: LeJEPA invariance, LeWM prediction, and the PLDM-style VICReg family.

Shapes: z (B, T, D) latents of consecutive frames, pred (B, T-1, D) predictions of z[:, 1:].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def invariance_loss(views: torch.Tensor) -> torch.Tensor:
    """LeJEPA multi-view invariance: mean squared distance of each view's embedding to the views' mean.
    views (V, N, D) -> scalar."""
    return (views - views.mean(0, keepdim=True)).square().mean()


def prediction_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE between predicted and actual next latents (no stop-gradient on the target, as in LeWM)."""
    return (pred - target).square().mean()


def variance_loss(x: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """VICReg variance hinge: mean over dims of relu(1 - std), x (N, D)."""
    std = torch.sqrt(x.var(dim=0) + eps)
    return F.relu(1.0 - std).mean()


def covariance_loss(x: torch.Tensor) -> torch.Tensor:
    """VICReg covariance: sum of squared off-diagonal covariances / D, x (N, D)."""
    n, d = x.shape
    x = x - x.mean(0)
    cov = (x.T @ x) / max(n - 1, 1)
    off = cov - torch.diag(torch.diagonal(cov))
    return off.square().sum() / d


def pldm_loss(z: torch.Tensor, pred: torch.Tensor, actions: torch.Tensor, inverse_dynamics: torch.nn.Module,
              coeffs: dict[str, float]) -> dict[str, torch.Tensor]:
    """PLDM-style multi-term objective (Sobal et al. 2025): prediction + variance + covariance over the batch,
    temporal variance + temporal covariance over time, temporal smoothness, inverse dynamics. Returns each term
    and their weighted sum under key 'loss'. z (B, T, D), pred (B, T-1, D), actions (B, T-1, A)."""
    flat = z.reshape(-1, z.shape[-1])
    per_time = z.transpose(0, 1)  # (T, B, D): statistics across time within each trajectory
    terms = {
        "pred": prediction_loss(pred, z[:, 1:]),
        "var": variance_loss(flat),
        "cov": covariance_loss(flat),
        "time_var": torch.stack([variance_loss(z[b]) for b in range(z.shape[0])]).mean() if z.shape[1] > 1
        else flat.new_zeros(()),
        "time_cov": torch.stack([covariance_loss(per_time[:, b]) for b in range(z.shape[0])]).mean()
        if z.shape[1] > 1 else flat.new_zeros(()),
        "smooth": (z[:, 1:] - z[:, :-1]).square().mean(),
        "idm": F.mse_loss(inverse_dynamics(torch.cat([z[:, :-1], z[:, 1:]], dim=-1)), actions),
    }
    terms["loss"] = sum(coeffs.get(name, 0.0) * value for name, value in terms.items())
    return terms


def embedding_rank(z: torch.Tensor, threshold: float = 1e-3) -> tuple[int, float]:
    """(numerical rank, effective rank) of embeddings z (N, D): singular values above threshold * max, and
    exp(entropy of the normalised singular values) (Roy & Vetterli 2007)."""
    z = z.double() - z.double().mean(0)
    s = torch.linalg.svdvals(z)
    if s.max() <= 0:
        return 0, 0.0
    rank = int((s > threshold * s.max()).sum())
    p = s / s.sum()
    p = p[p > 0]
    return rank, float(torch.exp(-(p * p.log()).sum()))
