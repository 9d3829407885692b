"""N_eff = sum lambda/(lambda + alpha): P as alpha -> 0, 0 as alpha -> inf; Lanczos matches the exact Hessian."""

import numpy as np
import pytest
import torch

from generalization.effective_dim import effective_dimension, hessian_eigenvalues
from generalization.models import build_model, count_parameters
from generalization.train import fit


def test_limits():
    lam = np.random.default_rng(0).uniform(0.1, 10, 37)
    assert effective_dimension(lam, 1e-12) == pytest.approx(37, abs=1e-9)
    assert effective_dimension(lam, 1e12) == pytest.approx(0, abs=1e-9)
    assert effective_dimension(np.r_[lam, np.zeros(5), -np.ones(2)], 1e-12) == pytest.approx(37, abs=1e-9)
    with pytest.raises(ValueError):
        effective_dimension(lam, 0.0)


def test_network_hessian_limits_and_lanczos():
    torch.manual_seed(0)
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    model = build_model("mlp", 5, 6, classes=3, depth=1)
    fit(model, x, y, epochs=30, batch_size=64, lr=1e-2)
    exact = hessian_eigenvalues(model, x, y, top_k=5, exact_below=10**6)
    P = count_parameters(model)
    assert len(exact) == P
    # explicit Hessian is symmetric; compare the top-5 from Lanczos with the exact spectrum
    lanczos = hessian_eigenvalues(model, x, y, top_k=5, exact_below=0)
    np.testing.assert_allclose(lanczos, exact[:5], rtol=1e-4, atol=1e-6)
    # at a generic point with MSE loss on a linear model the Hessian is full rank -> N_eff -> P
    lin = torch.nn.Linear(5, 2)
    lin_wrapped = build_model("mlp", 5, 2, classes=2, depth=0)
    lin_wrapped.head.load_state_dict(lin.state_dict())
    eig = hessian_eigenvalues(lin_wrapped, x, y % 2, loss_name="mse", exact_below=10**6)
    assert effective_dimension(eig, 1e-12) == pytest.approx(count_parameters(lin_wrapped), abs=1e-6)
    assert effective_dimension(eig, 1e12) == pytest.approx(0, abs=1e-6)


def test_stochastic_lanczos_quadrature_matches_exact_neff():
    from generalization.effective_dim import effective_dimension_slq

    torch.manual_seed(1)
    x, y = torch.randn(80, 6), torch.randint(0, 3, (80,))
    model = build_model("mlp", 6, 8, classes=3, depth=1)
    fit(model, x, y, epochs=40, batch_size=80, lr=1e-2)
    exact = effective_dimension(hessian_eigenvalues(model, x, y, exact_below=10**6), 0.05)
    slq = effective_dimension_slq(model, x, y, 0.05, probes=20, steps=30, seed=0)
    assert slq == pytest.approx(exact, rel=0.2)


def test_topk_lanczos_is_exact_at_full_rank_and_a_lower_bound_below():
    from generalization.effective_dim import effective_dimension_topk

    torch.manual_seed(2)
    x, y = torch.randn(60, 4), torch.randint(0, 3, (60,))
    model = build_model("mlp", 4, 5, classes=3, depth=1)
    fit(model, x, y, epochs=40, batch_size=60, lr=1e-2)
    eig = hessian_eigenvalues(model, x, y, exact_below=10**6)
    P = count_parameters(model)
    alpha = 0.05
    f64 = torch.float64
    full = effective_dimension_topk(model, x, y, alpha, top_k=P, steps=P, hvp_dtype=f64)
    assert full["effective_dim"] == pytest.approx(effective_dimension(eig, alpha), rel=1e-6)
    assert full["top_eigenvalue"] == pytest.approx(eig[0], rel=1e-8)
    top5 = effective_dimension_topk(model, x, y, alpha, top_k=5, steps=P, hvp_dtype=f64)
    assert top5["effective_dim"] == pytest.approx(effective_dimension(eig[:5], alpha), rel=1e-6)
    assert top5["effective_dim"] <= full["effective_dim"]
    assert top5["kth_over_alpha"] == pytest.approx(eig[4] / alpha, rel=1e-6)
    # float32 Hessian-vector products (the GPU default): same top eigenvalues to float32 accuracy
    top5_f32 = effective_dimension_topk(model, x, y, alpha, top_k=5, steps=P)
    assert top5_f32["effective_dim"] == pytest.approx(top5["effective_dim"], rel=1e-4)
    assert next(model.parameters()).dtype == torch.float32
