import math

import pytest
import torch

from data_constrained.ensemble import EnsembleTeacher, ensemble_logprobs, ensemble_loss
from data_constrained.model import ModelConfig, Transformer
from data_constrained.train import distill_kl


def test_identical_members_give_the_member_loss():
    logp = torch.log_softmax(torch.randn(7, 5, 11), -1)[..., 0]
    stacked = torch.stack([logp, logp, logp])
    assert ensemble_loss(stacked) == pytest.approx(-logp.double().mean().item(), abs=1e-9)


def test_ensemble_loss_at_most_mean_member_loss_and_matches_float64_reference():
    g = torch.Generator().manual_seed(0)
    logps = torch.log_softmax(torch.randn(4, 9, 6, 13, generator=g), -1)[..., 3]
    members = [-lp.double().mean().item() for lp in logps]
    ens = ensemble_loss(logps)
    assert ens <= sum(members) / len(members) + 1e-12  # Jensen: -log mean p <= mean -log p
    ref = -(logps.double().exp().mean(0).log()).mean().item()
    assert ens == pytest.approx(ref, rel=1e-12)
    assert ensemble_logprobs(logps).shape == (9, 6)


def test_averages_probabilities_not_logits():
    p1, p2 = torch.tensor([0.9, 0.1]), torch.tensor([0.1, 0.9])
    logps = torch.stack([p1.log(), p2.log()])
    assert torch.allclose(ensemble_logprobs(logps).exp().float(), torch.tensor([0.5, 0.5]))


def test_teacher_of_identical_models_and_zero_kl():
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=32, d_model=16, n_layers=1, n_heads=2, max_seq_len=16))
    x = torch.randint(0, 32, (2, 8))
    teacher = EnsembleTeacher([model, model])
    with torch.no_grad():
        logits = model(x)
    assert torch.allclose(teacher(x), torch.log_softmax(logits, -1), atol=1e-6)
    assert distill_kl(logits, teacher(x)).item() == pytest.approx(0.0, abs=1e-6)
    other = torch.log_softmax(torch.randn_like(logits), -1)
    assert distill_kl(logits, other).item() > 1e-3
    assert math.isfinite(distill_kl(logits, other, temperature=2.0).item())
