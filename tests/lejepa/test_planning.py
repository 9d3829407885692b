"""CEM and MPPI find the optimum of known costs; probes and AUROC against references."""

import numpy as np
import pytest
import torch

from lejepa.planning import cem, mppi
from lejepa.probing import auroc, ridge_r2


def quadratic(target: torch.Tensor):
    def cost(cand):  # (B, S, H, A)
        return (cand - target[:, None]).square().sum((-1, -2))
    return cost


@pytest.mark.parametrize("planner", ["cem", "mppi"])
def test_planner_finds_quadratic_optimum(planner):
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(3, 4, 2, generator=gen) * 1.6 - 0.8  # inside the action box
    if planner == "cem":
        best = cem(quadratic(target), 3, 4, 2, samples=200, elites=20, iterations=12, generator=gen)
        assert torch.allclose(best, target, atol=0.05)
    else:
        best = mppi(quadratic(target), 3, 4, 2, samples=200, iterations=12, temperature=0.1, min_std=0.01,
                    generator=gen)
        assert torch.allclose(best, target, atol=0.05)


def test_cem_respects_action_bounds():
    target = torch.full((1, 3, 2), 5.0)  # optimum outside [-1, 1]: the plan saturates at the bound
    best = cem(quadratic(target), 1, 3, 2, samples=100, elites=10, iterations=8,
               generator=torch.Generator().manual_seed(1))
    assert float(best.max()) <= 1.0 and float(best.min()) > 0.97


def test_ridge_r2_recovers_linear_targets_and_rejects_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 8))
    w = rng.normal(size=(8, 2))
    y = x @ w + 0.01 * rng.normal(size=(600, 2))
    r2 = ridge_r2(x[:400], y[:400], x[400:], y[400:], ridge=1e-6)
    assert np.all(r2 > 0.999)
    noise = rng.normal(size=(600, 1))
    assert ridge_r2(x[:400], noise[:400], x[400:], noise[400:])[0] < 0.05


def test_auroc_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    pos, neg = rng.normal(1, 1, 50), np.r_[rng.normal(0, 1, 49), 1.0]
    pos[0] = 1.0  # a tie
    ref = roc_auc_score(np.r_[np.ones(50), np.zeros(50)], np.r_[pos, neg])
    assert auroc(pos, neg) == pytest.approx(ref)
