"""Action-conditioned Transformer predictor with AdaLN-zero (DiT-style) conditioning.

    pred = predictor(z (B, T, D), actions (B, T, A))   # pred[:, t] estimates z[:, t + 1]

Each token t sees latents 0..t (causal attention) and is modulated by its action a_t (with frame skip: the chunk of
`frameskip` env actions leaving frame t, concatenated) through adaptive LayerNorm whose shift/scale/gate come from a
zero-initialised linear map, so every block starts as the identity.

Two output heads:
- `residual=True` (our small default): zero-initialised output layer added to the input latent, so at
  initialisation pred == z and training learns the latent displacement;
- `residual=False` with `pred_proj_hidden > 0` (the authors' layout, stable-worldmodel wm/lewm/module.py
  `Predictor` + `pred_proj`): final LayerNorm and a linear map, then an MLP with BatchNorm1d (Linear -> BN -> GELU ->
  Linear) predicts the next embedding outright.

Attention has `heads` x `dim_head` inner width (the authors: 16 x 64 on a 192-wide stream); `dim_head=0` means
width // heads. Paper size: 6 layers, dropout 0.1, ~10M parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class PredictorConfig:
    latent_dim: int = 192
    action_dim: int = 2  # per model step: frameskip x env action dim
    width: int = 288
    depth: int = 6
    heads: int = 8
    dim_head: int = 0  # 0: width // heads
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    max_len: int = 32
    residual: bool = True
    pred_proj_hidden: int = 0  # > 0: BatchNorm MLP head (requires residual=False)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1.0 + scale) + shift


class CausalAttention(nn.Module):
    """Multi-head causal self-attention with an inner width heads * dim_head, (B, T, W) -> (B, T, W)."""

    def __init__(self, width: int, heads: int, dim_head: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dim_head, self.dropout = heads, dim_head, dropout
        self.qkv = nn.Linear(width, 3 * heads * dim_head, bias=False)
        self.proj = nn.Linear(heads * dim_head, width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, self.dim_head).permute(2, 0, 3, 1, 4)
        drop = self.dropout if self.training else 0.0
        if mask is None:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=True)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        return self.proj(out.transpose(1, 2).reshape(b, t, -1))


class AdaLNBlock(nn.Module):
    """Causal self-attention + MLP block, both modulated (shift, scale, gate) by a condition c (B, T, W).
    `mask` (T, T) bool, True = may attend (default: causal)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, dropout: float, dim_head: int = 0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = CausalAttention(width, heads, dim_head or width // heads, dropout)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, width))
        self.drop = nn.Dropout(dropout)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        s1, b1, g1, s2, b2, g2 = self.ada(c).chunk(6, dim=-1)
        x = x + g1 * self.drop(self.attn(modulate(self.norm1(x), s1, b1), mask))
        return x + g2 * self.drop(self.mlp(modulate(self.norm2(x), s2, b2)))


class Predictor(nn.Module):
    """forward(z (B, T, D), actions (B, T, A)) -> predicted next latents (B, T, D)."""

    def __init__(self, cfg: PredictorConfig) -> None:
        super().__init__()
        if cfg.pred_proj_hidden and cfg.residual:
            raise ValueError("predictor.pred_proj_hidden > 0 needs predictor.residual=false (the authors' head)")
        self.cfg = cfg
        self.inp = nn.Linear(cfg.latent_dim, cfg.width)
        self.act = nn.Sequential(nn.Linear(cfg.action_dim, cfg.width), nn.SiLU(), nn.Linear(cfg.width, cfg.width))
        self.pos = nn.Parameter(torch.randn(1, cfg.max_len, cfg.width) * 0.02)
        self.blocks = nn.ModuleList(AdaLNBlock(cfg.width, cfg.heads, cfg.mlp_ratio, cfg.dropout, cfg.dim_head)
                                    for _ in range(cfg.depth))
        if cfg.residual:
            self.norm = nn.LayerNorm(cfg.width, elementwise_affine=False, eps=1e-6)
            self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(cfg.width, 2 * cfg.width))
            self.out = nn.Linear(cfg.width, cfg.latent_dim)
            for layer in (self.final_ada[1], self.out):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
        else:
            self.norm = nn.LayerNorm(cfg.width)
            self.out = nn.Linear(cfg.width, cfg.latent_dim)
        self.pred_proj = (nn.Sequential(nn.Linear(cfg.latent_dim, cfg.pred_proj_hidden),
                                        nn.BatchNorm1d(cfg.pred_proj_hidden), nn.GELU(),
                                        nn.Linear(cfg.pred_proj_hidden, cfg.latent_dim))
                          if cfg.pred_proj_hidden else None)

    def forward(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        T = z.shape[1]
        if self.cfg.max_len < T:
            raise ValueError(f"sequence length {T} exceeds predictor.max_len={self.cfg.max_len}")
        x = self.inp(z) + self.pos[:, :T]
        c = self.act(actions)
        for block in self.blocks:
            x = block(x, c)
        if self.cfg.residual:
            shift, scale = self.final_ada(c).chunk(2, dim=-1)
            return z + self.out(modulate(self.norm(x), shift, scale))
        out = self.out(self.norm(x))
        if self.pred_proj is not None:
            out = self.pred_proj(out.flatten(0, 1)).view_as(out)
        return out

    def rollout(self, z0: torch.Tensor, actions: torch.Tensor, context: int | None = None,
                action_history: torch.Tensor | None = None) -> torch.Tensor:
        """Autoregressive rollout -> (B, H, D), the predicted latent after each action of `actions` (B, H, A).

        `z0` is the current latent (B, D) or the last frames' latents (B, K, D), oldest first, with the K - 1
        actions executed between them in `action_history` (B, K - 1, A) (stable-worldmodel LeWM.rollout: the action
        paired with a context frame is the one leaving it). Predictions are fed back as history; `context` caps the
        window the predictor sees (default max_len)."""
        hist = z0.unsqueeze(1) if z0.ndim == 2 else z0
        k = hist.shape[1]
        past = action_history if action_history is not None else actions.new_zeros(actions.shape[0], 0,
                                                                                     actions.shape[-1])
        if past.shape[1] != k - 1:
            raise ValueError(f"action_history has {past.shape[1]} steps for {k} context latents; expected {k - 1}")
        all_actions = torch.cat([past, actions], dim=1)
        context = min(context or self.cfg.max_len, self.cfg.max_len)
        preds = []
        for h in range(actions.shape[1]):
            end = k + h
            start = max(0, end - context)
            nxt = self(hist[:, start:end], all_actions[:, start:end])[:, -1]
            preds.append(nxt)
            hist = torch.cat([hist, nxt.unsqueeze(1)], dim=1)
        return torch.stack(preds, dim=1)
