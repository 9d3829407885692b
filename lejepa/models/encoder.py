"""ViT-Tiny-style image encoder: pixels (B, C, H, W) -> CLS token -> BatchNorm projector -> latent (B, latent_dim).

Paper size (LeWM): ViT-Tiny, width 192, depth 12, 3 heads, ~5M parameters, 192-d latent. The projector is
Linear -> BatchNorm1d -> GELU -> Linear, as in LeJEPA/LeWM (the BatchNorm keeps SIGReg's target scale reachable).
Pixels are normalised either to [-1, 1] (`pixel_norm="unit"`) or with the ImageNet mean/std
(`pixel_norm="imagenet"`, the authors' preprocessing: stable-pretraining `dataset_stats.ImageNet` in le-wm utils.py
`get_img_preprocessor`). `tokens(pixels)` gives the final patch tokens (the patch-token world model plans on them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class EncoderConfig:
    image_size: int = 64
    channels: int = 3
    patch_size: int = 8
    width: int = 192
    depth: int = 12
    heads: int = 3
    mlp_ratio: float = 4.0
    projector_hidden: int = 2048
    latent_dim: int = 192
    dropout: float = 0.0
    pixel_norm: str = "unit"  # unit | imagenet


PIXEL_NORMS = ("unit", "imagenet")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Block(nn.Module):
    """Pre-LayerNorm Transformer block (self-attention + MLP), (B, T, W) -> (B, T, W)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, int(width * mlp_ratio)), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(int(width * mlp_ratio), width), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class ViTEncoder(nn.Module):
    """forward(pixels (B, C, H, W) float in [0, 1]) -> (cls (B, width), latent (B, latent_dim))."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        if cfg.image_size % cfg.patch_size:
            raise ValueError(f"encoder.image_size={cfg.image_size} is not a multiple of patch_size={cfg.patch_size}")
        if cfg.pixel_norm not in PIXEL_NORMS:
            raise ValueError(f"encoder.pixel_norm={cfg.pixel_norm!r}; expected one of {PIXEL_NORMS}")
        if cfg.pixel_norm == "imagenet" and cfg.channels != 3:
            raise ValueError(f"encoder.pixel_norm='imagenet' needs channels=3, got {cfg.channels}")
        self.cfg = cfg
        num_patches = (cfg.image_size // cfg.patch_size) ** 2
        self.patch = nn.Conv2d(cfg.channels, cfg.width, cfg.patch_size, stride=cfg.patch_size)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos = nn.Parameter(torch.randn(1, num_patches + 1, cfg.width) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg.width, cfg.heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.width)
        self.projector = nn.Sequential(nn.Linear(cfg.width, cfg.projector_hidden),
                                       nn.BatchNorm1d(cfg.projector_hidden), nn.GELU(),
                                       nn.Linear(cfg.projector_hidden, cfg.latent_dim))

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cls = self.hidden(pixels)[:, 0]
        return cls, self.projector(cls)

    def tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """Final (normed) patch tokens (B, P, width), without the CLS token."""
        return self.hidden(pixels)[:, 1:]

    def hidden(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normed last-layer states (B, 1 + P, width), CLS first."""
        x = self.patch(self.normalize(pixels)).flatten(2).transpose(1, 2)  # (B, P, W)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.cfg.pixel_norm == "unit":
            return pixels * 2.0 - 1.0
        mean = pixels.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = pixels.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return (pixels - mean) / std


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
