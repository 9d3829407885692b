"""Random-feature regression: min-norm solution and exact effective dimensionality; the threshold peak."""

import numpy as np

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
