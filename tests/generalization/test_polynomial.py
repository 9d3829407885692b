"""The order-penalised Legendre fit equals the closed-form generalised-ridge solution; soft bias behaviour."""

import numpy as np
import pytest

from generalization.polynomial import (
    fit_generalised_ridge,
    fit_least_squares,
    legendre_design,
    make_data,
    mse,
    order_penalty,
    run_panels,
)


@pytest.mark.parametrize("order,lam,gamma", [(12, 1e-2, 2.0), (30, 1e-3, 1.0), (20, 0.5, 0.0)])
def test_matches_normal_equations(order, lam, gamma):
    rng = np.random.default_rng(order)
    x, y = rng.uniform(-1, 1, 60), rng.normal(size=60)
    phi = legendre_design(x, order)
    closed = np.linalg.solve(phi.T @ phi + lam * np.diag(order_penalty(order, gamma)), phi.T @ y)
    np.testing.assert_allclose(fit_generalised_ridge(x, y, order, lam, gamma), closed, rtol=1e-7, atol=1e-9)


def test_order_150_matches_augmented_lstsq_reference():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-1, 1, 40), rng.normal(size=40)
    lam, gamma, order = 1e-4, 3.0, 150
    phi = np.polynomial.legendre.legvander(x, order)  # independent construction of the system
    aug = np.vstack([phi, np.diag(np.sqrt(lam * np.arange(1, order + 2) ** gamma))])
    ref = np.linalg.lstsq(aug, np.r_[y, np.zeros(order + 1)], rcond=None)[0]
    coef = fit_generalised_ridge(x, y, order, lam, gamma)
    # same objective value, same predictions
    np.testing.assert_allclose(phi @ coef, phi @ ref, atol=1e-8)
    assert legendre_design(x, order).shape == (40, 151)


def test_fits_noise_when_asked_and_prefers_low_orders():
    rng = np.random.default_rng(1)
    x, y = make_data("noise", 40, 0.0, rng)
    coef = fit_generalised_ridge(x, y, 150, 1e-12, 3.0)
    assert mse(coef, x, y) < 1e-6  # interpolates pure noise
    xs, ys = make_data("complex", 40, 0.1, np.random.default_rng(2))
    coef = fit_generalised_ridge(xs, ys, 150, 1e-6, 3.0)
    energy = np.abs(coef) ** 2
    assert energy[:60].sum() > 0.99 * energy.sum()  # the solution lives in low orders
    assert energy[100:].sum() < 1e-3 * energy.sum()


def test_penalised_beats_unpenalised_and_low_order_on_complex_data():
    out = run_panels(150, 40, 500, 0.1, 1e-6, 3.0, [3], [0.0, 3.0], 50, 2, 0)
    fits = out["panels"]["complex"]["fits"]
    assert fits["penalised"]["test_mse_mean"] < fits["unpenalised"]["test_mse_mean"]
    assert fits["penalised"]["test_mse_mean"] < fits["order_3"]["test_mse_mean"]
    assert out["panels"]["noise"]["fits"]["penalised_interpolate"]["train_mse_mean"] < 1e-6


def test_unpenalised_is_min_norm_interpolant():
    rng = np.random.default_rng(4)
    x, y = rng.uniform(-1, 1, 20), rng.normal(size=20)
    coef = fit_least_squares(x, y, 50)
    np.testing.assert_allclose(coef, np.linalg.pinv(legendre_design(x, 50)) @ y, atol=1e-8)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset"):
        make_data("sine", 10, 0.1, np.random.default_rng(0))
