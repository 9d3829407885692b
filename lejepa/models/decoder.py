"""Pixel decoder for the reconstruction baseline: latent (B, D) -> image (B, C, H, W) in [0, 1] (logits ->
sigmoid). Transposed convolutions from a small seed map (side 4 to 7: 224 = 7 * 2^5, 96 = 6 * 2^4, 64 = 4 * 2^4),
doubling the resolution up to image_size."""

from __future__ import annotations

import torch
from torch import nn


class PixelDecoder(nn.Module):
    def __init__(self, latent_dim: int, image_size: int, channels: int = 3, width: int = 64) -> None:
        super().__init__()
        ups = 0
        while image_size % 2 ** (ups + 1) == 0 and image_size // 2 ** (ups + 1) >= 4:
            ups += 1
        side = image_size // 2**ups
        if not 4 <= side <= 7:
            raise ValueError(f"decoder needs image_size = s * 2^k with s in 4..7, got {image_size}")
        self.width, self.side = width, side
        self.seed = nn.Linear(latent_dim, width * side * side)
        layers: list[nn.Module] = []
        for _ in range(ups):
            layers += [nn.ConvTranspose2d(width, width, 4, stride=2, padding=1), nn.GELU()]
        layers.append(nn.Conv2d(width, channels, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.seed(z).view(z.shape[0], self.width, self.side, self.side)
        return torch.sigmoid(self.net(x))
