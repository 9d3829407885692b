"""Patch-token world model of the DINO-WM kind, for the planning-time comparison.

DINO-WM (Zhou et al. 2024) keeps a pretrained image encoder frozen and predicts every patch token of the next frame
with a ViT over (history frames x patches) tokens; planning compares all patch tokens with the goal's. Here the
frozen encoder is *ours*: the ViT of a trained LeWM checkpoint (`model.patch_encoder_ckpt`), whose final patch tokens
(P per frame, width W) are the state. The predictor is our AdaLN-zero Transformer run over the K * P tokens of the
context frames with a frame-causal mask (a token sees every patch of its own and earlier frames), each frame's
tokens conditioned on the action chunk leaving it; its output for the last frame, added to that frame's tokens,
predicts the next frame's tokens. Loss: MSE of the predicted next tokens (the frozen encoder cannot collapse).

Same interface as `WorldModel` for planning and surprise: `encode_state(frames) -> (N, P, W)`,
`rollout(z_hist (N, K, P, W), action_history, actions, context) -> (N, H, P, W)`, `state_cost`.
"""

from __future__ import annotations

import torch
from torch import nn

from lejepa.models.encoder import ViTEncoder
from lejepa.models.predictor import AdaLNBlock


class PatchWorldModel(nn.Module):
    def __init__(self, cfg) -> None:
        super().__init__()
        pcfg = cfg.predictor
        self.cfg = cfg
        self.encoder = ViTEncoder(cfg.encoder)
        self.encoder.requires_grad_(False)
        w = cfg.encoder.width
        self.num_patches = (cfg.encoder.image_size // cfg.encoder.patch_size) ** 2
        self.inp = nn.Linear(w, pcfg.width)
        self.act = nn.Sequential(nn.Linear(pcfg.action_dim, pcfg.width), nn.SiLU(), nn.Linear(pcfg.width, pcfg.width))
        self.space_pos = nn.Parameter(torch.randn(1, 1, self.num_patches, pcfg.width) * 0.02)
        self.time_pos = nn.Parameter(torch.randn(1, pcfg.max_len, 1, pcfg.width) * 0.02)
        self.blocks = nn.ModuleList(AdaLNBlock(pcfg.width, pcfg.heads, pcfg.mlp_ratio, pcfg.dropout, pcfg.dim_head)
                                    for _ in range(pcfg.depth))
        self.norm = nn.LayerNorm(pcfg.width, elementwise_affine=False, eps=1e-6)
        self.out = nn.Linear(pcfg.width, w)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def train(self, mode: bool = True):
        super().train(mode)
        self.encoder.eval()  # frozen: its BatchNorm statistics stay as trained
        return self

    @torch.no_grad()
    def encode_state(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, C, H, W) -> (B, P, W) or (B, T, C, H, W) -> (B, T, P, W) patch tokens of the frozen encoder."""
        if frames.ndim == 4:
            return self.encoder.tokens(frames)
        b, t = frames.shape[:2]
        tokens = self.encoder.tokens(frames.flatten(0, 1))
        return tokens.view(b, t, *tokens.shape[1:])

    def predict(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """z (B, T, P, W), actions (B, T, A) -> predicted tokens of frames 1..T (B, T, P, W), frame-causal."""
        b, t, p, _ = z.shape
        if t > self.cfg.predictor.max_len:
            raise ValueError(f"sequence length {t} exceeds predictor.max_len={self.cfg.predictor.max_len}")
        x = (self.inp(z) + self.space_pos + self.time_pos[:, :t]).reshape(b, t * p, -1)
        c = self.act(actions).unsqueeze(2).expand(-1, -1, p, -1).reshape(b, t * p, -1)
        frame = torch.arange(t, device=z.device).repeat_interleave(p)
        mask = frame[:, None] >= frame[None, :]  # True = may attend: own and earlier frames
        for block in self.blocks:
            x = block(x, c, mask)
        return z + self.out(self.norm(x)).view_as(z)

    def loss(self, frames: torch.Tensor, actions: torch.Tensor,
             generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        z = self.encode_state(frames)
        pred = self.predict(z[:, :-1], actions)
        terms = {"pred": (pred - z[:, 1:]).square().mean()}
        terms["loss"] = terms["pred"]
        return terms

    def rollout(self, z_hist: torch.Tensor, action_history: torch.Tensor, actions: torch.Tensor,
                context: int) -> torch.Tensor:
        hist = z_hist
        k = hist.shape[1]
        all_actions = torch.cat([action_history, actions], dim=1)
        preds = []
        for h in range(actions.shape[1]):
            end = k + h
            start = max(0, end - context)
            nxt = self.predict(hist[:, start:end], all_actions[:, start:end])[:, -1]
            preds.append(nxt)
            hist = torch.cat([hist, nxt.unsqueeze(1)], dim=1)
        return torch.stack(preds, dim=1)

    @staticmethod
    def state_cost(pred: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Squared distance summed over all patch tokens, pred (..., P, W) vs goal (..., P, W) -> (...)."""
        return (pred - goal).square().sum((-1, -2))
