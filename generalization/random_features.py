"""Linear random-feature regression (Fig. 1g): exact double descent and effective dimensionality.

Features phi(x) = relu(W x / sqrt(F)) / sqrt(p), W (p, F) i.i.d. N(0, 1), fixed; the linear head is the
minimum-norm least-squares fit of centred one-hot labels, computed exactly from the SVD of the (n, p) feature
matrix (NumPy float64). Test error peaks at the interpolation threshold p = n and falls again for p >> n.

The training loss 1/2 ||Phi w - Y||^2 has Hessian Phi^T Phi (per output), whose eigenvalues are the squared
singular values of Phi: the effective dimensionality N_eff = sum s_i^2 / (s_i^2 + alpha) is exact.
"""

from __future__ import annotations

import numpy as np

from generalization.effective_dim import effective_dimension
from generalization.gp import centred_one_hot


def random_features(x: np.ndarray, W: np.ndarray) -> np.ndarray:
    """(n, p) ReLU random features of x (n, F) with weights W (p, F)."""
    return np.maximum(x @ W.T / np.sqrt(x.shape[1]), 0.0) / np.sqrt(W.shape[0])


def min_norm_fit(phi: np.ndarray, Y: np.ndarray, rcond: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """(weights (p, C), singular values) of the minimum-norm least-squares solution."""
    U, s, Vt = np.linalg.svd(phi, full_matrices=False)
    keep = s > rcond * s.max()
    weights = Vt[keep].T @ ((U[:, keep].T @ Y) / s[keep, None])
    return weights, s


def width_sweep(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, widths: list[int],
                alpha: float, seeds: int, seed: int, classes: int = 10) -> dict[str, list[float]]:
    """Train/test error and MSE and N_eff of the Hessian for each number of features p (mean over seeds)."""
    Y = centred_one_hot(y, classes)
    Y_test = centred_one_hot(y_test, classes)
    keys = ("train_error", "test_error", "train_mse", "test_mse", "effective_dim", "weight_norm")
    out: dict[str, list[float]] = {"width": list(widths), **{k: [] for k in keys}}
    for p in widths:
        rows = {k: [] for k in keys}
        for s in range(seeds):
            W = np.random.default_rng(seed + 7919 * s + p).normal(size=(p, x.shape[1]))
            phi, phi_test = random_features(x, W), random_features(x_test, W)
            weights, sv = min_norm_fit(phi, Y)
            pred, pred_test = phi @ weights, phi_test @ weights
            rows["train_error"].append(float((pred.argmax(1) != y).mean()))
            rows["test_error"].append(float((pred_test.argmax(1) != y_test).mean()))
            rows["train_mse"].append(float(((pred - Y) ** 2).sum(1).mean()))
            rows["test_mse"].append(float(((pred_test - Y_test) ** 2).sum(1).mean()))
            rows["effective_dim"].append(effective_dimension(sv**2, alpha))
            rows["weight_norm"].append(float(np.linalg.norm(weights)))
        for k in keys:
            out[k].append(float(np.mean(rows[k])))
    return out
