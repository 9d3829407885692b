"""ViT-Tiny-style image encoder: pixels (B, C, H, W) -> CLS token -> BatchNorm projector -> latent (B, latent_dim).

Paper size (LeWM): ViT-Tiny, width 192, depth 12, 3 heads, ~5M parameters, 192-d latent. The projector is
Linear -> BatchNorm1d -> GELU -> Linear, as in LeJEPA/LeWM (the BatchNorm keeps SIGReg's target scale reachable).
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
        x = self.patch(pixels * 2.0 - 1.0).flatten(2).transpose(1, 2)  # (B, P, W)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        for block in self.blocks:
            x = block(x)
        cls = self.norm(x[:, 0])
        return cls, self.projector(cls)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
