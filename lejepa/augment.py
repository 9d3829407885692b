"""Batched image augmentations in torch for multi-view SSL (no torchvision needed).

`random_views(images (N, C, H, W) in [0, 1], views, generator)` -> (V, N, C, H, W): each view gets a random
resized crop (area scale in [min_scale, 1], aspect jitter, via an affine grid), a horizontal flip with p = 0.5,
brightness/contrast jitter and small Gaussian noise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_views(images: torch.Tensor, views: int, generator: torch.Generator | None = None,
                 min_scale: float = 0.3, jitter: float = 0.4, noise: float = 0.05) -> torch.Tensor:
    return torch.stack([_augment(images, generator, min_scale, jitter, noise) for _ in range(views)])


def _augment(x: torch.Tensor, gen: torch.Generator | None, min_scale: float, jitter: float,
             noise: float) -> torch.Tensor:
    n = x.shape[0]

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen, device=gen.device if gen is not None else "cpu").to(x.device)

    area = min_scale + (1 - min_scale) * rand(n)
    log_ratio = (rand(n) - 0.5) * 0.6
    sx = (area * log_ratio.exp()).sqrt().clamp(max=1.0)
    sy = (area / log_ratio.exp()).sqrt().clamp(max=1.0)
    tx = (1 - sx) * (2 * rand(n) - 1)
    ty = (1 - sy) * (2 * rand(n) - 1)
    flip = torch.where(rand(n) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2] = sx * flip, tx
    theta[:, 1, 1], theta[:, 1, 2] = sy, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    brightness = 1 + jitter * (2 * rand(n, 1, 1, 1) - 1)
    contrast = 1 + jitter * (2 * rand(n, 1, 1, 1) - 1)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * contrast + mean * brightness
    gauss = torch.randn(out.shape, generator=gen, device=gen.device if gen is not None else "cpu").to(x.device)
    return (out + noise * gauss).clamp(0, 1)
