"""LeWorldModel: a JEPA world model trained end to end from pixels.

    z_t = encoder(o_t)            (ViT -> CLS -> BatchNorm projector)
    zhat_{t+1} = predictor(z_{<=t}, a_{<=t})
    loss = MSE(zhat_{t+1}, z_{t+1}) + lambda * SIGReg(z)      (no EMA, no stop-gradient)

The same class trains the baselines, chosen by `objective`:
  lewm   - the above; lambda = 0 is the no-regulariser ablation (collapses);
  pldm   - PLDM-style JEPA with a VICReg-type 7-term loss (`losses.pldm_loss`);
  pixel  - reconstruction world model: a decoder maps latents to pixels, loss = pixel MSE of the decoded current
           and predicted next frames + latent prediction MSE.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from lejepa.losses import pldm_loss, prediction_loss
from lejepa.models.decoder import PixelDecoder
from lejepa.models.encoder import EncoderConfig, ViTEncoder
from lejepa.models.predictor import Predictor, PredictorConfig
from lejepa.sigreg import SIGReg

OBJECTIVES = ("lewm", "pldm", "pixel")


@dataclass
class WorldModelConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    objective: str = "lewm"
    sigreg_lambda: float = 0.1
    sigreg_directions: int = 256
    sigreg_knots: int = 17
    pldm_coeffs: dict[str, float] = field(default_factory=lambda: {
        "pred": 1.0, "var": 1.0, "cov": 0.04, "time_var": 0.1, "time_cov": 0.01, "smooth": 0.1, "idm": 1.0})
    decoder_width: int = 64


class WorldModel(nn.Module):
    """encode(frames (B, T, C, H, W)) -> (B, T, D); loss(frames, actions (B, T-1, A), generator) -> terms."""

    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        if cfg.objective not in OBJECTIVES:
            raise ValueError(f"model.objective={cfg.objective!r}; expected one of {OBJECTIVES}")
        if cfg.encoder.latent_dim != cfg.predictor.latent_dim:
            raise ValueError(f"model.encoder.latent_dim={cfg.encoder.latent_dim} must equal "
                             f"model.predictor.latent_dim={cfg.predictor.latent_dim}")
        self.cfg = cfg
        self.encoder = ViTEncoder(cfg.encoder)
        self.predictor = Predictor(cfg.predictor)
        self.sigreg = SIGReg(cfg.sigreg_directions, cfg.sigreg_knots)
        d, a = cfg.encoder.latent_dim, cfg.predictor.action_dim
        self.inverse_dynamics = (nn.Sequential(nn.Linear(2 * d, 256), nn.GELU(), nn.Linear(256, a))
                                 if cfg.objective == "pldm" else None)
        self.decoder = (PixelDecoder(d, cfg.encoder.image_size, cfg.encoder.channels, cfg.decoder_width)
                        if cfg.objective == "pixel" else None)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, T, C, H, W) or (B, C, H, W) float in [0, 1] -> latents (B, T, D) or (B, D)."""
        if frames.ndim == 4:
            return self.encoder(frames)[1]
        b, t = frames.shape[:2]
        return self.encoder(frames.flatten(0, 1))[1].view(b, t, -1)

    def loss(self, frames: torch.Tensor, actions: torch.Tensor,
             generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Training terms for one batch; 'loss' is the total. frames (B, T, C, H, W), actions (B, T-1, A)."""
        z = self.encode(frames)
        pred = self.predictor(z[:, :-1], actions)
        if self.cfg.objective == "pldm":
            return pldm_loss(z, pred, actions, self.inverse_dynamics, self.cfg.pldm_coeffs)
        terms = {"pred": prediction_loss(pred, z[:, 1:])}
        if self.cfg.objective == "lewm":
            terms["sigreg"] = self.sigreg(z.reshape(-1, z.shape[-1]), generator)
            terms["loss"] = terms["pred"] + self.cfg.sigreg_lambda * terms["sigreg"]
        else:
            b, t = frames.shape[:2]
            recon = self.decoder(z.flatten(0, 1)).view_as(frames)
            future = self.decoder(pred.flatten(0, 1)).view_as(frames[:, 1:])
            terms["recon"] = (recon - frames).square().mean()
            terms["pixel_pred"] = (future - frames[:, 1:]).square().mean()
            terms["loss"] = terms["recon"] + terms["pixel_pred"] + terms["pred"]
        return terms
