"""Action-conditioned Transformer predictor with AdaLN-zero (DiT-style) conditioning.

    pred = predictor(z (B, T, D), actions (B, T, A))   # pred[:, t] estimates z[:, t + 1]

Each token t sees latents 0..t (causal attention) and is modulated by its action a_t through adaptive LayerNorm
whose shift/scale/gate come from a zero-initialised linear map, so every block starts as the identity; the output
layer is zero-initialised too and added to the input latent, so at initialisation pred == z (identity-like), and
training learns the latent displacement. Paper size: 6 layers, dropout 0.1, ~10M parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class PredictorConfig:
    latent_dim: int = 192
    action_dim: int = 2
    width: int = 288
    depth: int = 6
    heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    max_len: int = 32


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1.0 + scale) + shift


class AdaLNBlock(nn.Module):
    """Causal self-attention + MLP block, both modulated (shift, scale, gate) by a condition c (B, T, W)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False)
        self.attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, width))
        self.drop = nn.Dropout(dropout)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        s1, b1, g1, s2, b2, g2 = self.ada(c).chunk(6, dim=-1)
        h = modulate(self.norm1(x), s1, b1)
        x = x + g1 * self.drop(self.attn(h, h, h, attn_mask=mask, need_weights=False)[0])
        return x + g2 * self.drop(self.mlp(modulate(self.norm2(x), s2, b2)))


class Predictor(nn.Module):
    """forward(z (B, T, D), actions (B, T, A)) -> predicted next latents (B, T, D)."""

    def __init__(self, cfg: PredictorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.inp = nn.Linear(cfg.latent_dim, cfg.width)
        self.act = nn.Sequential(nn.Linear(cfg.action_dim, cfg.width), nn.SiLU(), nn.Linear(cfg.width, cfg.width))
        self.pos = nn.Parameter(torch.randn(1, cfg.max_len, cfg.width) * 0.02)
        self.blocks = nn.ModuleList(AdaLNBlock(cfg.width, cfg.heads, cfg.mlp_ratio, cfg.dropout)
                                    for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.width, elementwise_affine=False)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(cfg.width, 2 * cfg.width))
        self.out = nn.Linear(cfg.width, cfg.latent_dim)
        for layer in (self.final_ada[1], self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        T = z.shape[1]
        if self.cfg.max_len < T:
            raise ValueError(f"sequence length {T} exceeds predictor.max_len={self.cfg.max_len}")
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool, device=z.device), diagonal=1)
        x = self.inp(z) + self.pos[:, :T]
        c = self.act(actions)
        for block in self.blocks:
            x = block(x, c, mask)
        shift, scale = self.final_ada(c).chunk(2, dim=-1)
        return z + self.out(modulate(self.norm(x), shift, scale))

    def rollout(self, z0: torch.Tensor, actions: torch.Tensor, context: int | None = None) -> torch.Tensor:
        """Autoregressive rollout from z0 (B, D) under actions (B, H, A) -> (B, H, D): the predicted latent after
        each action. Predictions are fed back as history; `context` caps the history length (default max_len)."""
        context = min(context or self.cfg.max_len, self.cfg.max_len)
        hist = z0.unsqueeze(1)
        preds = []
        for h in range(actions.shape[1]):
            start = max(0, h + 1 - context)
            nxt = self(hist[:, start:], actions[:, start: h + 1])[:, -1]
            preds.append(nxt)
            hist = torch.cat([hist, nxt.unsqueeze(1)], dim=1)
        return torch.stack(preds, dim=1)
