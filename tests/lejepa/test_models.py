"""Encoder/predictor shapes, AdaLN-zero identity at initialisation, causality, rollouts with history, the patch
model's frame-causal attention, the PLDM terms against direct formulas, and tiny models that learn."""

import numpy as np
import pytest
import torch

from lejepa.envs.dataset import rollout
from lejepa.envs.two_room import TwoRoom
from lejepa.losses import pldm_loss
from lejepa.models.encoder import EncoderConfig, ViTEncoder
from lejepa.models.lewm import PLDM_COEFFS, WorldModel, WorldModelConfig, build_world_model
from lejepa.models.predictor import Predictor, PredictorConfig

TINY_ENC = dict(image_size=16, channels=3, patch_size=4, width=32, depth=1, heads=2, mlp_ratio=2.0,
                projector_hidden=64, latent_dim=16)
TINY_PRED = dict(latent_dim=16, action_dim=10, width=32, depth=2, heads=2, mlp_ratio=2.0, dropout=0.1, max_len=8)


def tiny_model(objective="lewm", lam=0.09, **pred) -> torch.nn.Module:
    enc = EncoderConfig(**TINY_ENC)
    p = {**TINY_PRED, **pred}
    if objective == "patch_wm":
        p["latent_dim"] = enc.width
    return build_world_model(WorldModelConfig(encoder=enc, predictor=PredictorConfig(**p), objective=objective,
                                              sigreg_lambda=lam, sigreg_directions=32, decoder_width=16))


def test_encoder_shapes_and_pixel_norms():
    enc = ViTEncoder(EncoderConfig(**TINY_ENC))
    cls, z = enc(torch.rand(5, 3, 16, 16))
    assert cls.shape == (5, 32) and z.shape == (5, 16) and enc.tokens(torch.rand(2, 3, 16, 16)).shape == (2, 16, 32)
    x = torch.full((1, 3, 16, 16), 0.485)
    assert torch.allclose(ViTEncoder(EncoderConfig(**TINY_ENC, pixel_norm="imagenet")).normalize(x)[0, 0],
                          torch.zeros(16, 16), atol=1e-6)  # ImageNet mean maps to 0
    with pytest.raises(ValueError, match="patch_size"):
        ViTEncoder(EncoderConfig(**{**TINY_ENC, "patch_size": 5}))
    with pytest.raises(ValueError, match="pixel_norm"):
        ViTEncoder(EncoderConfig(**TINY_ENC, pixel_norm="zca"))


def test_adaln_zero_predictor_starts_as_identity():
    torch.manual_seed(0)
    pred = Predictor(PredictorConfig(**TINY_PRED)).eval()
    z, a = torch.randn(3, 5, 16), torch.randn(3, 5, 10)
    assert torch.equal(pred(z, a), z)  # zero-initialised output layer on a residual path
    x, c = torch.randn(3, 5, 32), torch.randn(3, 5, 32)
    for block in pred.blocks:  # every block's gates are zero: each block is the identity
        assert torch.equal(block(x, c), x)
    rolled = pred.rollout(z[:, 0], a)
    assert torch.equal(rolled, z[:, :1].expand(-1, 5, -1))
    torch.nn.init.normal_(pred.out.weight, std=0.1)
    torch.nn.init.normal_(pred.final_ada[1].weight, std=0.1)
    assert not torch.allclose(pred(z, a), pred(z, -a))


@pytest.mark.parametrize("head", [dict(), dict(residual=False, pred_proj_hidden=24, dim_head=8)])
def test_predictor_is_causal(head):
    torch.manual_seed(1)
    pred = Predictor(PredictorConfig(**{**TINY_PRED, "dropout": 0.0, **head})).eval()
    for p in pred.parameters():
        torch.nn.init.normal_(p, std=0.2)
    z, a = torch.randn(2, 6, 16), torch.randn(2, 6, 10)
    out = pred(z, a)
    z2, a2 = z.clone(), a.clone()
    z2[:, 4:] += 1.0
    a2[:, 4:] += 1.0
    assert torch.allclose(pred(z2, a2)[:, :4], out[:, :4], atol=1e-5)
    assert not torch.allclose(pred(z2, a2)[:, 4:], out[:, 4:])


def test_rollout_uses_the_context_frames_and_their_actions():
    """rollout(z_{t-2..t}, a_{t-2..t-1}, a_t..) equals stepping the predictor on the growing window by hand."""
    torch.manual_seed(2)
    pred = Predictor(PredictorConfig(**{**TINY_PRED, "dropout": 0.0})).eval()
    for p in pred.parameters():
        torch.nn.init.normal_(p, std=0.1)
    hist, past, plan = torch.randn(2, 3, 16), torch.randn(2, 2, 10), torch.randn(2, 4, 10)
    out = pred.rollout(hist, plan, context=3, action_history=past)
    zs, acts = list(hist.unbind(1)), [*past.unbind(1), *plan.unbind(1)]
    for h in range(4):
        window = torch.stack(zs[-3:], 1)
        zs.append(pred(window, torch.stack(acts[h: h + 3], 1))[:, -1])
        assert torch.allclose(out[:, h], zs[-1], atol=1e-6)
    other = pred.rollout(hist, plan, context=3, action_history=past + 1.0)
    assert not torch.allclose(other[:, 0], out[:, 0])  # the executed actions between context frames matter
    with pytest.raises(ValueError, match="action_history"):
        pred.rollout(hist, plan, context=3)


def test_patch_model_is_frame_causal_and_keeps_its_encoder_frozen():
    torch.manual_seed(3)
    model = tiny_model("patch_wm").eval()
    for p in list(model.blocks.parameters()) + list(model.out.parameters()):
        torch.nn.init.normal_(p, std=0.1)
    z, a = torch.randn(2, 3, 16, 32), torch.randn(2, 3, 10)
    out = model.predict(z, a)
    z2 = z.clone()
    z2[:, 2] += 1.0
    assert torch.allclose(model.predict(z2, a)[:, :2], out[:, :2], atol=1e-5)  # later frames do not leak back
    assert model.rollout(z[:, :2], a[:, :1], a[:, 1:], context=3).shape == (2, 2, 16, 32)
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert model.state_cost(out, out).abs().max() == 0


def test_pldm_terms_match_their_formulas():
    """std: VCReg hinge of the per-time-step batch std; std_t: of the per-trajectory time std; cov: off-diagonal
    covariance over the batch per step / (D^2 - D); temp_align: MSE(z_t, z_t+1) (stable-worldmodel wm/loss.py)."""
    torch.manual_seed(4)
    z, pred, actions = torch.randn(6, 4, 5) * 0.7, torch.randn(6, 3, 5), torch.randn(6, 3, 2)
    idm = torch.nn.Linear(10, 2)
    with torch.no_grad():
        terms = pldm_loss(z, pred, z[:, 1:], actions, idm, PLDM_COEFFS)
    zc = (z - z.mean(0)).double()
    std = torch.stack([torch.relu(1 - torch.sqrt(zc[:, t].var(0) + 1e-4)).mean() for t in range(4)]).mean()
    std_t = torch.stack([torch.relu(1 - torch.sqrt(zc[b].var(0) + 1e-4)).mean() for b in range(6)]).mean()
    covs = []
    for t in range(4):
        c = zc[:, t].T @ zc[:, t] / 5
        covs.append((c.square().sum() - c.diagonal().square().sum()) / 20)
    assert float(terms["std"]) == pytest.approx(float(std), rel=1e-5)
    assert float(terms["std_t"]) == pytest.approx(float(std_t), rel=1e-5)
    assert float(terms["cov"]) == pytest.approx(float(torch.stack(covs).mean()), rel=1e-5)
    assert float(terms["temp_align"]) == pytest.approx(float((z[:, 1:] - z[:, :-1]).square().mean()), rel=1e-6)
    total = sum(PLDM_COEFFS[k] * terms[k] for k in PLDM_COEFFS)
    assert float(terms["loss"]) == pytest.approx(float(total), rel=1e-6)


def two_room_batch(episodes=16, steps=20):
    env = TwoRoom(image_size=16)
    f, a, _, _ = zip(*(rollout(env, "noisy_expert", steps, seed) for seed in range(episodes)), strict=True)
    frames = torch.from_numpy(np.stack(f)).permute(0, 1, 4, 2, 3).float() / 255
    acts = torch.from_numpy(np.stack(a))
    idx = torch.arange(0, 16, 5)  # frame skip 5: model steps at env steps 0, 5, 10, 15
    chunks = acts[:, :15].reshape(episodes, 3, 10)
    return frames[:, idx], chunks


@pytest.mark.parametrize("objective", ["lewm", "pldm", "pixel"])
def test_tiny_world_model_loss_decreases(objective):
    torch.manual_seed(0)
    frames, actions = two_room_batch()
    model = tiny_model(objective)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(25):
        terms = model.loss(frames, actions, gen)
        assert all(torch.isfinite(v) for v in terms.values())
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        losses.append(terms["loss"].item())
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


def test_world_model_rejects_bad_config():
    with pytest.raises(ValueError, match="objective"):
        WorldModel(WorldModelConfig(encoder=EncoderConfig(**TINY_ENC), predictor=PredictorConfig(**TINY_PRED),
                                    objective="byol"))
    with pytest.raises(ValueError, match="latent_dim"):
        WorldModel(WorldModelConfig(encoder=EncoderConfig(**TINY_ENC),
                                    predictor=PredictorConfig(**{**TINY_PRED, "latent_dim": 8})))
    with pytest.raises(ValueError, match="residual"):
        Predictor(PredictorConfig(**TINY_PRED, pred_proj_hidden=8))
