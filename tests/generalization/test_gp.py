"""GP marginal likelihood equals float64 references (scipy multivariate normal, sklearn) on tiny problems."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from generalization.gp import (
    altered_label_sweep,
    centred_one_hot,
    kernel_matrix,
    log_marginal_likelihood,
    posterior_mean,
)


def test_lml_matches_scipy_multivariate_normal():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(15, 4))
    Y = rng.normal(size=(15, 3))
    K = kernel_matrix(x, x, "rbf", lengthscale=1.3)
    cov = K + 0.05 * np.eye(15)
    ref = sum(multivariate_normal(np.zeros(15), cov).logpdf(Y[:, c]) for c in range(3))
    assert log_marginal_likelihood(K, Y, 0.05) == pytest.approx(ref, rel=1e-10)


def test_lml_matches_sklearn_gaussian_process():
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    gp = GaussianProcessRegressor(RBF(0.9), alpha=0.1, optimizer=None, normalize_y=False).fit(x, y)
    ours = log_marginal_likelihood(kernel_matrix(x, x, "rbf", 0.9), y[:, None], 0.1)
    assert ours == pytest.approx(gp.log_marginal_likelihood_value_, rel=1e-9)
    xt = rng.normal(size=(5, 3))
    np.testing.assert_allclose(
        posterior_mean(kernel_matrix(x, x, "rbf", 0.9), kernel_matrix(xt, x, "rbf", 0.9), y[:, None], 0.1)[:, 0],
        gp.predict(xt), rtol=1e-8)


def test_arccos_kernel_is_infinite_relu_network():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2, 5)), rng.normal(size=(3, 5))
    w = rng.normal(size=(400000, 5))
    mc = 2 * (np.maximum(a @ w.T, 0) @ np.maximum(b @ w.T, 0).T) / len(w)
    np.testing.assert_allclose(kernel_matrix(a, b, "arccos"), mc, rtol=0.03)


def test_centred_one_hot_and_unknown_kernel():
    Y = centred_one_hot(np.array([0, 2]), 3)
    np.testing.assert_allclose(Y.sum(1), 0, atol=1e-12)
    with pytest.raises(ValueError, match="unknown kernel"):
        kernel_matrix(np.ones((1, 1)), np.ones((1, 1)), "matern")


def test_altered_labels_fit_and_marginal_likelihood_falls():
    from generalization.data import load_images

    x, y = load_images("digits", "train")
    xt, yt = load_images("digits", "test")
    out = altered_label_sweep(x[:300], y[:300], xt, yt, [0.0, 0.5, 1.0], "rbf", 2.0, 1e-3,
                              np.random.default_rng(0))
    assert min(out["train_acc"]) == 1.0
    assert out["test_acc"][0] > 0.9 and out["test_acc"][0] > out["test_acc"][1] > out["test_acc"][2]
    assert out["lml_per_point"][0] > out["lml_per_point"][1] > out["lml_per_point"][2]
