"""Pixel decoder for the reconstruction baseline: latent (B, D) -> image (B, C, H, W) in [0, 1] (logits ->
sigmoid). Transposed convolutions from a 4x4 seed map, doubling resolution up to image_size (a power of 2 times 4)."""

from __future__ import annotations

import math

import torch
from torch import nn


class PixelDecoder(nn.Module):
    def __init__(self, latent_dim: int, image_size: int, channels: int = 3, width: int = 64) -> None:
        super().__init__()
        ups = int(math.log2(image_size // 4))
        if 4 * 2**ups != image_size:
            raise ValueError(f"decoder needs image_size = 4 * 2^k, got {image_size}")
        self.width = width
        self.seed = nn.Linear(latent_dim, width * 16)
        layers: list[nn.Module] = []
        for _ in range(ups):
            layers += [nn.ConvTranspose2d(width, width, 4, stride=2, padding=1), nn.GELU()]
        layers.append(nn.Conv2d(width, channels, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.seed(z).view(z.shape[0], self.width, 4, 4)
        return torch.sigmoid(self.net(x))
