"""Quantization of subspace weights with learned centroids (Lotfi et al. 2022, section 4).

1. `kmeans_1d`: L centroids by Lloyd's algorithm on the trained z (initialised at quantiles).
2. `QuantizedSubspace`: quantization-aware fine-tuning; the forward pass uses c[argmin_l |z_i - c_l|] with a
   straight-through gradient to z and an exact gradient to the centroids c, so both z and c are learned.
3. The final hypothesis is (assignments, centroids rounded to float16): that is what gets coded and evaluated.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def kmeans_1d(values: np.ndarray, levels: int, iters: int = 50) -> np.ndarray:
    """(levels,) sorted centroids of 1-D `values` by Lloyd's algorithm, initialised at evenly spaced quantiles."""
    values = np.asarray(values, dtype=np.float64)
    centroids = np.quantile(values, (np.arange(levels) + 0.5) / levels)
    for _ in range(iters):
        idx = assign(values, centroids)
        for level in range(levels):
            members = values[idx == level]
            if len(members):
                centroids[level] = members.mean()
    return np.sort(centroids)


def assign(values: np.ndarray | torch.Tensor, centroids: np.ndarray | torch.Tensor):
    """Index of the nearest centroid for each value (same array type as `values`)."""
    if isinstance(values, torch.Tensor):
        return (values[:, None] - centroids[None, :]).abs().argmin(dim=1)
    return np.abs(values[:, None] - centroids[None, :]).argmin(axis=1)


class QuantizedSubspace(nn.Module):
    """z and centroids as parameters; forward with straight-through quantized z."""

    def __init__(self, subspace: nn.Module, levels: int) -> None:
        super().__init__()
        self.subspace = subspace
        z = subspace.z.detach().cpu().numpy()
        self.centroids = nn.Parameter(torch.tensor(kmeans_1d(z, levels), dtype=torch.float32,
                                                   device=subspace.z.device))

    def quantized_z(self) -> torch.Tensor:
        z = self.subspace.z
        idx = assign(z.detach(), self.centroids.detach())
        hard = self.centroids[idx]
        return hard + (z - z.detach())  # value: c[idx]; gradient: to c (exact) and to z (straight-through)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.subspace(x, self.quantized_z())

    def export(self) -> tuple[np.ndarray, np.ndarray]:
        """(assignments (d,) int64, centroids (L,) float16): the hypothesis that is coded."""
        centroids = self.centroids.detach().cpu().numpy().astype(np.float16)
        idx = assign(self.subspace.z.detach().cpu().numpy(), centroids.astype(np.float32))
        return idx.astype(np.int64), centroids
