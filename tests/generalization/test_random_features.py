"""Random-feature regression: min-norm solution and exact effective dimensionality; the threshold peak."""

import numpy as np
import pytest

from generalization.effective_dim import effective_dimension
from generalization.random_features import min_norm_fit, random_features, width_sweep


def test_min_norm_fit_equals_pseudoinverse_and_neff_is_exact():
    rng = np.random.default_rng(0)
    x, Y = rng.normal(size=(30, 8)), rng.normal(size=(30, 3))
    for p in (10, 30, 90):
        phi = random_features(x, rng.normal(size=(p, 8)))
        w, s = min_norm_fit(phi, Y)
        np.testing.assert_allclose(w, np.linalg.pinv(phi) @ Y, atol=1e-8)
        hessian_eigs = np.linalg.eigvalsh(phi.T @ phi)
        np.testing.assert_allclose(effective_dimension(s**2, 0.01), effective_dimension(hessian_eigs, 0.01),
                                   rtol=1e-6)


def test_double_descent_peak_at_interpolation_threshold():
    from generalization.data import alter_labels, load_images

    x, y = load_images("digits", "train")
    xt, yt = load_images("digits", "test")
    y = alter_labels(y[:100], 0.2, 10, np.random.default_rng(0))
    widths = [20, 100, 1000]
    out = width_sweep(x[:100], y, xt, yt, widths, 0.01, seeds=3, seed=0)
    assert out["train_error"][1] == 0.0 and out["train_error"][2] == 0.0
    assert out["test_mse"][1] > out["test_mse"][0] and out["test_mse"][1] > out["test_mse"][2]


def test_least_squares_neff_cannot_fall_with_more_features():
    """Squared loss: the Hessian Phi^T Phi ignores labels and solution. With unnormalised features, one more
    feature adds the PSD rank-one term phi_j phi_j^T to Phi Phi^T, so by Weyl every eigenvalue, hence N_eff, is
    non-decreasing in p (nested feature sets), through and past p = n. The 1/sqrt(p)-scaled features used in the
    sweep give N_eff(scaled, alpha) = N_eff(unnormalised, p * alpha): alpha grows with p, nothing else changes."""
    from generalization.data import load_images

    x = load_images("digits", "train")[0][:40].astype(np.float64)
    W = np.random.default_rng(1).normal(size=(120, x.shape[1]))
    for alpha in (1e-3, 1e-1, 10.0):
        neff = []
        for p in range(1, 121):
            raw = random_features(x, W[:p]) * np.sqrt(p)  # nested: the first p rows of the same W
            neff.append(effective_dimension(np.linalg.eigvalsh(raw @ raw.T), alpha))
            if p in (10, 40, 120):
                scaled = random_features(x, W[:p])
                np.testing.assert_allclose(effective_dimension(np.linalg.eigvalsh(scaled @ scaled.T), alpha),
                                           effective_dimension(np.linalg.eigvalsh(raw @ raw.T), p * alpha),
                                           rtol=1e-10)
        assert np.all(np.diff(neff) >= -1e-9), (alpha, np.diff(neff).min())
        assert neff[-1] > neff[9]


def _tiny_ce_problem(p, n=9, C=4, seed=0):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, 6)), rng.integers(0, C, n)
    return random_features(x, rng.normal(size=(p, 6))), y


@pytest.mark.parametrize("p", [3, 20])  # p C < n (C-1): primal form; p C > n (C-1): dual form
def test_ce_hessian_spectrum_dual_equals_direct_and_autograd(p):
    import torch

    from generalization.random_features import (
        ce_hessian_direct,
        ce_hessian_eigenvalues,
        softmax,
        softmax_ce_fit,
    )

    C = 4
    phi, y = _tiny_ce_problem(p, C=C)
    W = softmax_ce_fit(phi, y, 0.05, classes=C)["weights"]
    probs = softmax(phi @ W)
    H = ce_hessian_direct(phi, probs)
    phi_t, y_t = torch.tensor(phi), torch.tensor(y)
    H_auto = torch.autograd.functional.hessian(
        lambda w: torch.nn.functional.cross_entropy(phi_t @ w.reshape(p, C), y_t, reduction="sum"),
        torch.tensor(W.reshape(-1))).numpy()
    np.testing.assert_allclose(H, H_auto, atol=1e-12)
    direct = np.sort(np.linalg.eigvalsh(H))[::-1]
    fast = ce_hessian_eigenvalues(phi, probs)
    assert len(fast) == min(p * C, len(y) * (C - 1))
    np.testing.assert_allclose(fast, direct[: len(fast)], atol=1e-12)
    np.testing.assert_allclose(direct[len(fast):], 0.0, atol=1e-12)  # the rest of the spectrum is exactly zero
    for alpha in (1e-3, 0.1, 10.0):
        np.testing.assert_allclose(effective_dimension(fast, alpha), effective_dimension(direct, alpha), rtol=1e-9)


@pytest.mark.parametrize("p", [3, 40])
def test_softmax_fit_is_the_ridge_minimiser(p):
    """The reduced-coordinate Newton solution has zero gradient in the full (p, C) problem and equals an
    independent L-BFGS minimisation over all p C weights."""
    from scipy.optimize import minimize
    from scipy.special import log_softmax

    from generalization.random_features import softmax_ce_fit

    C, ridge = 4, 0.03
    phi, y = _tiny_ce_problem(p, C=C, seed=2)
    fit = softmax_ce_fit(phi, y, ridge, classes=C)
    assert fit["converged"] and fit["grad_rel"] < 1e-7

    def f(w):
        W = w.reshape(p, C)
        return -log_softmax(phi @ W, axis=1)[np.arange(len(y)), y].sum() + 0.5 * ridge * w @ w

    ref = minimize(f, np.zeros(p * C), method="L-BFGS-B", options={"gtol": 1e-12, "ftol": 0, "maxiter": 10000})
    np.testing.assert_allclose(fit["weights"].ravel(), ref.x, atol=1e-5)
    with pytest.raises(ValueError, match="ridge"):
        softmax_ce_fit(phi, y, 0.0, classes=C)


def test_ce_width_sweep_fits_noisy_labels_when_wide():
    from generalization.data import alter_labels, load_images
    from generalization.random_features import ce_width_sweep

    x, y = load_images("digits", "train")
    xt, yt = load_images("digits", "test")
    y = alter_labels(y[:60], 0.2, 10, np.random.default_rng(0))
    out = ce_width_sweep(x[:60], y, xt[:200], yt[:200], [5, 400], 1e-3, seeds=1, seed=0, extra_alpha=0.01)
    assert out["train_error"][0] > 0.2 and out["train_error"][1] == 0.0
    assert max(out["grad_rel"]) < 1e-7
    for k, p in enumerate(out["width"]):  # N_eff <= number of possibly non-zero eigenvalues
        assert 0 < out["effective_dim"][k] <= min(p * 10, 60 * 9)
        assert out["effective_dim_extra_alpha"][k] < out["effective_dim"][k]  # alpha 0.01 > ridge ~1e-4


@pytest.mark.parametrize("override,key", [("double_descent.ce_ridge=0", "double_descent.ce_ridge"),
                                          ("double_descent.ce_seeds=0", "double_descent.ce_seeds"),
                                          ("double_descent.blas_threads=-1", "double_descent.blas_threads"),
                                          ("double_descent.rf_widths=[0,10]", r"double_descent.rf_widths\[\]")])
def test_double_descent_config_ranges_name_the_key(override, key):
    from common.config import ConfigError, compose
    from generalization.run import Schema

    with pytest.raises(ConfigError, match=key):
        compose("generalization", "run", Schema, ["experiment=double_descent", "logger=jsonl", override])


def test_double_descent_end_to_end_with_ce_panel(tmp_path, monkeypatch):
    import json
    from pathlib import Path

    from common.config import compose
    from generalization.plot import main as plot_main
    from generalization.run import Schema, execute

    monkeypatch.chdir(tmp_path)
    cfg = compose("generalization", "run", Schema,
                  ["experiment=double_descent", "logger=jsonl", "logger.progress=false", "data.name=digits",
                   "double_descent.rf_n_train=50", "double_descent.n_test=100", "double_descent.rf_widths=[10,200]",
                   "double_descent.rf_seeds=1", "double_descent.ce_seeds=1", "double_descent.net_n_train=50",
                   "double_descent.pca_dim=8", "double_descent.net_widths=[4]", "double_descent.net.epochs=2",
                   "double_descent.slq_probes=1", "double_descent.slq_steps=4"])
    record = execute(cfg, results_root=tmp_path)
    ce = json.loads(Path(record["path"]).read_text())["metrics"]["random_features_ce"]
    assert ce["width"] == [10, 200] and ce["n_train"] == 50 and ce["train_error"][1] == 0.0
    written = plot_main(["--root", str(tmp_path / "experiments" / "generalization"), "--only", "double_descent"])
    assert written and written[0].exists()
