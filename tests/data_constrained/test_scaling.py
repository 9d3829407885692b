import math

import numpy as np
import pytest

from data_constrained.scaling import PowerLaw, bootstrap_power_law, data_efficiency, fit_joint, fit_power_law


def test_fit_recovers_power_law_from_noisy_points():
    rng = np.random.default_rng(0)
    n = np.geomspace(1e6, 3e8, 10)
    true = PowerLaw(A=400.0, alpha=0.35, E=3.2)
    loss = true(n) * np.exp(rng.normal(0, 0.003, n.shape))
    law = fit_power_law(n, loss)
    assert pytest.approx(3.2, rel=0.03) == law.E
    assert law.alpha == pytest.approx(0.35, rel=0.15)
    assert pytest.approx(400.0, rel=0.6) == law.A  # A trades off against alpha; the prediction is what's tight
    assert np.allclose(law(n), true(n), rtol=0.01)


def test_fit_is_exact_without_noise():
    n = np.geomspace(1e4, 1e7, 6)
    true = PowerLaw(A=20.0, alpha=0.5, E=1.5)
    law = fit_power_law(n, true(n))
    assert (law.A, law.alpha, law.E) == pytest.approx((20.0, 0.5, 1.5), rel=1e-4)


def test_bootstrap_interval_covers_truth():
    rng = np.random.default_rng(1)
    n = np.geomspace(1e6, 1e9, 12)
    true = PowerLaw(A=50.0, alpha=0.3, E=2.0)
    loss = true(n) * np.exp(rng.normal(0, 0.005, n.shape))
    ci = bootstrap_power_law(n, loss, n_boot=60, seed=0)
    assert ci["E"][0] <= 2.0 <= ci["E"][1]
    assert ci["E"][0] < ci["E"][1]
    assert all(math.isnan(v) for v in bootstrap_power_law(n[:3], loss[:3])["E"])


def test_fit_rejects_too_few_points():
    with pytest.raises(ValueError, match="at least 3 distinct"):
        fit_power_law([1, 2], [3.0, 2.0])


def test_joint_law_recovers_asymptote():
    n = np.repeat(np.geomspace(1e5, 1e8, 4), 3)
    k = np.tile([1, 2, 4], 4)
    loss = 30.0 / n**0.3 + 0.4 / k**1.0 + 2.5
    law = fit_joint(n, k, loss)
    assert pytest.approx(2.5, rel=1e-3) == law.E
    assert law.beta == pytest.approx(1.0, rel=1e-2)


def test_data_efficiency_inverts_the_data_law():
    law = PowerLaw(A=100.0, alpha=0.5, E=2.0)
    budget = 1e4
    target = law(4 * budget)  # the loss the default recipe reaches with 4x the data
    assert data_efficiency(target, law, budget) == pytest.approx(4.0)
    assert data_efficiency(1.9, law, budget) == math.inf
