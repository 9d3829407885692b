"""Encoder/predictor shapes, AdaLN-zero identity at initialisation, and a tiny LeWM that learns."""

import numpy as np
import pytest
import torch

from lejepa.envs.dataset import rollout
from lejepa.envs.two_room import TwoRoom
from lejepa.models.encoder import EncoderConfig, ViTEncoder
from lejepa.models.lewm import WorldModel, WorldModelConfig
from lejepa.models.predictor import Predictor, PredictorConfig

TINY_ENC = dict(image_size=16, channels=3, patch_size=4, width=32, depth=1, heads=2, mlp_ratio=2.0,
                projector_hidden=64, latent_dim=16)
TINY_PRED = dict(latent_dim=16, action_dim=2, width=32, depth=2, heads=2, mlp_ratio=2.0, dropout=0.1, max_len=8)


def tiny_model(objective="lewm", lam=0.1) -> WorldModel:
    return WorldModel(WorldModelConfig(encoder=EncoderConfig(**TINY_ENC), predictor=PredictorConfig(**TINY_PRED),
                                       objective=objective, sigreg_lambda=lam, sigreg_directions=32,
                                       decoder_width=16))


def test_encoder_shapes():
    enc = ViTEncoder(EncoderConfig(**TINY_ENC))
    cls, z = enc(torch.rand(5, 3, 16, 16))
    assert cls.shape == (5, 32) and z.shape == (5, 16)
    with pytest.raises(ValueError, match="patch_size"):
        ViTEncoder(EncoderConfig(**{**TINY_ENC, "patch_size": 5}))


def test_adaln_zero_predictor_starts_as_identity():
    torch.manual_seed(0)
    pred = Predictor(PredictorConfig(**TINY_PRED)).eval()
    z, a = torch.randn(3, 5, 16), torch.randn(3, 5, 2)
    assert torch.equal(pred(z, a), z)  # zero-initialised output layer on a residual path
    x, c = torch.randn(3, 5, 32), torch.randn(3, 5, 32)
    mask = torch.triu(torch.ones(5, 5, dtype=torch.bool), 1)
    for block in pred.blocks:  # every block's gates are zero: each block is the identity
        assert torch.equal(block(x, c, mask), x)
    rolled = pred.rollout(z[:, 0], a)
    assert torch.equal(rolled, z[:, :1].expand(-1, 5, -1))
    # after the output layer moves, predictions depend on the actions
    torch.nn.init.normal_(pred.out.weight, std=0.1)
    torch.nn.init.normal_(pred.final_ada[1].weight, std=0.1)
    assert not torch.allclose(pred(z, a), pred(z, -a))


def test_predictor_is_causal():
    torch.manual_seed(1)
    pred = Predictor(PredictorConfig(**{**TINY_PRED, "dropout": 0.0}))
    for p in pred.parameters():
        torch.nn.init.normal_(p, std=0.2)
    z, a = torch.randn(2, 6, 16), torch.randn(2, 6, 2)
    out = pred(z, a)
    z2, a2 = z.clone(), a.clone()
    z2[:, 4:] += 1.0
    a2[:, 4:] += 1.0
    assert torch.allclose(pred(z2, a2)[:, :4], out[:, :4], atol=1e-5)
    assert not torch.allclose(pred(z2, a2)[:, 4:], out[:, 4:])


def two_room_batch(episodes=24, steps=6):
    env = TwoRoom(image_size=16, agent_radius=0.1)
    f, a, _ = zip(*(rollout(env, "random", steps, seed, 0.0) for seed in range(episodes)), strict=True)
    frames = torch.from_numpy(np.stack(f)).permute(0, 1, 4, 2, 3).float() / 255
    return frames, torch.from_numpy(np.stack(a))


@pytest.mark.parametrize("objective", ["lewm", "pldm", "pixel"])
def test_tiny_world_model_loss_decreases(objective):
    torch.manual_seed(0)
    frames, actions = two_room_batch()
    model = tiny_model(objective)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(25):
        terms = model.loss(frames[:, :4], actions[:, :3], gen)
        assert all(torch.isfinite(v) for v in terms.values())
        opt.zero_grad()
        terms["loss"].backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        opt.step()
        losses.append(terms["loss"].item())
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


def test_world_model_rejects_bad_config():
    with pytest.raises(ValueError, match="objective"):
        tiny_model("byol")
    with pytest.raises(ValueError, match="latent_dim"):
        WorldModel(WorldModelConfig(encoder=EncoderConfig(**TINY_ENC),
                                    predictor=PredictorConfig(**{**TINY_PRED, "latent_dim": 8})))
