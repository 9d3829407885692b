"""Loss terms as pure functions: LeJEPA invariance, LeWM prediction, and the PLDM objective (VCReg family).

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


def std_loss(z: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """VCReg variance hinge over the middle axis: z (A, N, D) -> mean over A and D of relu(1 - std_N)."""
    std = torch.sqrt(z.var(dim=1) + eps)
    return F.relu(1.0 - std).mean()


def cov_loss(z: torch.Tensor) -> torch.Tensor:
    """VCReg covariance over the middle axis: z (A, N, D) (already centred) -> mean over A of the sum of squared
    off-diagonal entries of the (D, D) covariance, divided by D^2 - D (stable-worldmodel wm/loss.py VCReg)."""
    a, n, d = z.shape
    cov = torch.einsum("ani,anj->aij", z, z) / max(n - 1, 1)
    diag = torch.diagonal(cov, dim1=-2, dim2=-1).square().sum(-1)
    return ((cov.square().sum((-1, -2)) - diag) / (d * d - d)).mean()


PLDM_TERMS = ("pred", "std", "std_t", "cov", "cov_t", "temp_align", "idm")


def pldm_loss(z: torch.Tensor, pred: torch.Tensor, target: torch.Tensor, actions: torch.Tensor,
              inverse_dynamics: torch.nn.Module, coeffs: dict[str, float]) -> dict[str, torch.Tensor]:
    """PLDM objective (Sobal et al. 2025) as the LeWM authors run their PLDM baseline (stable-worldmodel
    scripts/train/pldm.py `pldm_forward`, wm/loss.py `PLDMLoss`/`VCReg`): prediction MSE plus, on the latents
    centred over the batch, variance and covariance over the batch at each time step (std, cov), over time within each
    trajectory (std_t, cov_t), temporal alignment MSE(z_t, z_t+1) and inverse dynamics from (z_t+1, z_t).
    z (B, T, D), pred/target (B, T-1, D), actions (B, T-1, A). Returns each term and the weighted sum 'loss'."""
    zc = z - z.mean(0, keepdim=True)
    per_time = zc.transpose(0, 1)  # (T, B, D)
    terms = {
        "pred": prediction_loss(pred, target),
        "std": std_loss(per_time),
        "std_t": std_loss(zc),
        "cov": cov_loss(per_time),
        "cov_t": cov_loss(zc),
        "temp_align": F.mse_loss(z[:, :-1], z[:, 1:]),
        "idm": F.mse_loss(inverse_dynamics(torch.cat([z[:, 1:], z[:, :-1]], dim=-1)), actions),
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
