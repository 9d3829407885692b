"""Collapse diagnostics of latents as pure functions (logged during training, lejepa/train.py).

A JEPA without a regulariser can collapse in two ways: *dimensional* collapse (the latents span few directions) and
*shrinkage* (every direction's variance falls toward 0, which makes the prediction loss trivially small while the
spectrum's shape, and so a plain effective rank, stays full). The measures, for latents z (N, D):

- `latent_std`: mean over dimensions of the per-dimension standard deviation (SIGReg's target N(0, I) has 1);
- `standardized_effective_rank`: exp(entropy) of the eigenvalues of the correlation matrix (each dimension divided
  by its std), in [1, D]: dimensional collapse only, blind to scale;
- `unit_variance_rank`: sum_i min(lambda_i, 1) over the covariance eigenvalues in absolute units, in [0, D]: the
  number of directions with at least the target's unit variance. It is D for N(0, I) and falls with either kind of
  collapse, so shrinkage shows up (scale-aware).
"""

from __future__ import annotations

import numpy as np


def covariance_eigenvalues(z: np.ndarray) -> np.ndarray:
    """Eigenvalues (D,) of the sample covariance of z (N, D), float64, descending, clipped at 0."""
    z = np.asarray(z, dtype=np.float64)
    z = z - z.mean(0)
    cov = z.T @ z / max(len(z) - 1, 1)
    return np.clip(np.linalg.eigvalsh(cov)[::-1], 0.0, None)


def latent_std(z: np.ndarray) -> float:
    return float(np.asarray(z, dtype=np.float64).std(0, ddof=1).mean())


def standardized_effective_rank(z: np.ndarray, eps: float = 1e-12) -> float:
    z = np.asarray(z, dtype=np.float64)
    std = z.std(0, ddof=1)
    lam = covariance_eigenvalues(z[:, std > eps] / std[std > eps]) if (std > eps).any() else np.zeros(1)
    if lam.sum() <= 0:
        return 0.0
    p = lam / lam.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def unit_variance_rank(z: np.ndarray) -> float:
    return float(np.minimum(covariance_eigenvalues(z), 1.0).sum())
