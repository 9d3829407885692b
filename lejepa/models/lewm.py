"""LeWorldModel: a JEPA world model trained end to end from pixels.

    z_t = encoder(o_t)                            (ViT -> CLS -> BatchNorm projector)
    zhat_{t+1} = predictor(z_{t-2..t}, a_{t-2..t})  (3 frames of history; a_t = the frame-skip chunk of env actions)
    loss = MSE(zhat, z) + lambda * mean_t SIGReg(z[:, t])   (no EMA, no stop-gradient)

SIGReg is applied per time step over the batch and averaged over time, as the authors do (le-wm train.py
`self.sigreg(emb.transpose(0, 1))`); `sigreg_per_step=False` pools batch and time instead (our earlier form, which
weights the regulariser ~T times more at the same lambda).

The same class trains the baselines, chosen by `objective`:
  lewm   - the above; lambda = 0 is the no-regulariser ablation (collapses);
  pldm   - PLDM with its 7-term VCReg-family loss (`losses.pldm_loss`), coefficients of the authors' PLDM baseline;
  pixel  - reconstruction world model: a decoder maps latents to pixels, loss = pixel MSE of the decoded current
           and predicted next frames + latent prediction MSE.
`patch_wm` (a DINO-WM-style model over patch tokens) lives in lejepa/models/patch_wm.py; `build_world_model` picks.

Planning and surprise use the model through `encode_state`, `rollout` and `state_cost`, which the patch-token model
implements too.
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

OBJECTIVES = ("lewm", "pldm", "pixel", "patch_wm")

# stable-worldmodel scripts/train/config/pldm.yaml (the LeWM authors' PLDM baseline): enabled terms and weights
PLDM_COEFFS = {"pred": 1.0, "std": 18.0, "std_t": 0.7, "cov": 12.0, "cov_t": 0.0, "temp_align": 0.2, "idm": 0.0}


@dataclass
class WorldModelConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    objective: str = "lewm"
    sigreg_lambda: float = 0.09
    sigreg_directions: int = 1024
    sigreg_knots: int = 17
    sigreg_per_step: bool = True
    pldm_coeffs: dict[str, float] = field(default_factory=lambda: dict(PLDM_COEFFS))
    idm_hidden: int = 512  # swm pldm.yaml idm.hidden_dim
    decoder_width: int = 64
    patch_encoder_ckpt: str = ""  # patch_wm: the trained LeWM whose encoder is frozen under the patch predictor


def build_world_model(cfg: WorldModelConfig) -> nn.Module:
    if cfg.objective == "patch_wm":
        from lejepa.models.patch_wm import PatchWorldModel

        return PatchWorldModel(cfg)
    return WorldModel(cfg)


class WorldModel(nn.Module):
    """encode(frames (B, T, C, H, W)) -> (B, T, D); loss(frames, actions (B, T-1, A), generator) -> terms."""

    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        if cfg.objective not in OBJECTIVES[:3]:
            raise ValueError(f"model.objective={cfg.objective!r}; expected one of {OBJECTIVES}")
        if cfg.encoder.latent_dim != cfg.predictor.latent_dim:
            raise ValueError(f"model.encoder.latent_dim={cfg.encoder.latent_dim} must equal "
                             f"model.predictor.latent_dim={cfg.predictor.latent_dim}")
        self.cfg = cfg
        self.encoder = ViTEncoder(cfg.encoder)
        self.predictor = Predictor(cfg.predictor)
        self.sigreg = SIGReg(cfg.sigreg_directions, cfg.sigreg_knots)
        d, a = cfg.encoder.latent_dim, cfg.predictor.action_dim
        self.inverse_dynamics = (nn.Sequential(nn.Linear(2 * d, cfg.idm_hidden), nn.LayerNorm(cfg.idm_hidden),
                                               nn.GELU(), nn.Linear(cfg.idm_hidden, a))
                                 if cfg.objective == "pldm" else None)
        self.decoder = (PixelDecoder(d, cfg.encoder.image_size, cfg.encoder.channels, cfg.decoder_width)
                        if cfg.objective == "pixel" else None)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, T, C, H, W) or (B, C, H, W) float in [0, 1] -> latents (B, T, D) or (B, D)."""
        if frames.ndim == 4:
            return self.encoder(frames)[1]
        b, t = frames.shape[:2]
        return self.encoder(frames.flatten(0, 1))[1].view(b, t, -1)

    encode_state = encode

    def loss(self, frames: torch.Tensor, actions: torch.Tensor,
             generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Training terms for one batch; 'loss' is the total. frames (B, T, C, H, W), actions (B, T-1, A)."""
        z = self.encode(frames)
        pred = self.predictor(z[:, :-1], actions)
        if self.cfg.objective == "pldm":
            return pldm_loss(z, pred, z[:, 1:], actions, self.inverse_dynamics, self.cfg.pldm_coeffs)
        terms = {"pred": prediction_loss(pred, z[:, 1:])}
        if self.cfg.objective == "lewm":
            if self.cfg.sigreg_lambda > 0:
                terms["sigreg"] = self.sigreg_value(z, generator)
                terms["loss"] = terms["pred"] + self.cfg.sigreg_lambda * terms["sigreg"]
            else:  # lambda = 0: the value is logged, not trained on
                with torch.no_grad():
                    terms["sigreg"] = self.sigreg_value(z.detach(), generator)
                terms["loss"] = terms["pred"]
        else:
            recon = self.decoder(z.flatten(0, 1)).view_as(frames)
            future = self.decoder(pred.flatten(0, 1)).view_as(frames[:, 1:])
            terms["recon"] = (recon - frames).square().mean()
            terms["pixel_pred"] = (future - frames[:, 1:]).square().mean()
            terms["loss"] = terms["recon"] + terms["pixel_pred"] + terms["pred"]
        return terms

    def sigreg_value(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """SIGReg of latents z (B, T, D): per time step over the batch, then the mean over time (the same
        directions for every step, as the authors draw them once per call); or over B * T pooled."""
        if self.cfg.sigreg_per_step:
            return self.sigreg(z.transpose(0, 1), generator)
        return self.sigreg(z.reshape(-1, z.shape[-1]), generator)

    def rollout(self, z_hist: torch.Tensor, action_history: torch.Tensor, actions: torch.Tensor,
                context: int) -> torch.Tensor:
        """Predicted latents (N, H, D) after each of `actions` (N, H, A) from context latents z_hist (N, K, D)."""
        return self.predictor.rollout(z_hist, actions, context, action_history)

    @staticmethod
    def state_cost(pred: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Squared distance summed over the latent, pred (..., D) vs goal (..., D) -> (...) (swm GoalMSE 'sum')."""
        return (pred - goal).square().sum(-1)
