"""Collapse measures: shrinkage is invisible to a scale-free rank and visible to the unit-variance rank."""

import numpy as np
import pytest

from lejepa.collapse import latent_std, standardized_effective_rank, unit_variance_rank


def test_measures_separate_shrinkage_from_dimensional_collapse():
    rng = np.random.default_rng(0)
    n, d = 4000, 16
    gauss = rng.normal(size=(n, d))
    shrunk = 0.01 * gauss  # what lambda = 0 does: every direction shrinks, the spectrum's shape stays
    low_rank = rng.normal(size=(n, 2)) @ rng.normal(size=(2, d)) / np.sqrt(2)
    assert latent_std(gauss) == pytest.approx(1.0, abs=0.03)
    assert unit_variance_rank(gauss) > 0.85 * d  # ~D for N(0, I) (eigenvalues scatter around 1)
    assert standardized_effective_rank(gauss) > 0.95 * d
    assert standardized_effective_rank(shrunk) == pytest.approx(standardized_effective_rank(gauss), rel=1e-9)
    assert unit_variance_rank(shrunk) == pytest.approx(d * 1e-4, rel=0.2)  # sum min(lambda, 1) ~ D * 0.01^2
    assert latent_std(shrunk) == pytest.approx(0.01, rel=0.05)
    assert standardized_effective_rank(low_rank) < 3 and unit_variance_rank(low_rank) < 2.5 + 1e-9
