"""Flat-minima volume proxy (Huang et al. 2020; Wilson 2025 section 6) vs parameter count.

From a trained solution theta*, draw random directions u that are filter-normalised (Li et al. 2018: each
parameter tensor's slice of u has the norm of that tensor in theta*), and find by bisection the largest step r
with L(theta* + r u) <= L(theta*) + epsilon. r is dimensionless (a fraction of the weights' own scale), so it can
be compared across widths. The log-volume proxy of the flat region is P * mean(log r) relative to the
filter-normalised ball; we report mean log r (the radius) and that volume proxy, per width.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from generalization.train import loss_fn


@torch.no_grad()
def flat_radius(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, directions: int,
                seed: int, loss: str = "ce", r_max: float = 10.0, iters: int = 14) -> np.ndarray:
    """(directions,) radii r along filter-normalised random directions where the loss rises by `epsilon`."""
    model.eval()
    params = [p for p in model.parameters()]
    theta = [p.detach().clone() for p in params]
    base = float(loss_fn(loss, model(x), y))
    gen = torch.Generator().manual_seed(seed)
    radii = []
    for _ in range(directions):
        u = []
        for t in theta:
            d = torch.randn(t.shape, generator=gen).to(t.device)
            u.append(d / d.norm() * t.norm().clamp_min(1e-12))
        lo, hi = 0.0, r_max
        for _ in range(iters):
            mid = 0.5 * (lo + hi) if hi < r_max else (lo + hi) / 2
            for p, t, d in zip(params, theta, u, strict=True):
                p.copy_(t + mid * d)
            if float(loss_fn(loss, model(x), y)) <= base + epsilon:
                lo = mid
            else:
                hi = mid
        radii.append(max(lo, 1e-6))
    for p, t in zip(params, theta, strict=True):
        p.copy_(t)
    return np.asarray(radii)
