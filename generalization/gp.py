"""Exact Gaussian processes on images (Wilson 2025, Fig. 1d-e): benign overfitting and the marginal likelihood.

Classification as regression (Rasmussen & Williams 6.5; Lee et al. 2018): one GP per class on centred one-hot
targets Y (n, C) = onehot - 1/C, shared kernel K (RBF or arc-cosine of order 1), small noise variance so the
posterior mean interpolates. For each class column y:

    log p(y | X) = -1/2 y^T (K + s2 I)^-1 y - 1/2 log|K + s2 I| - n/2 log(2 pi),

summed over classes, from one float64 Cholesky factorisation (SciPy). Prediction: argmax of the posterior mean
K_* (K + s2 I)^-1 Y. NumPy/SciPy because the GP is a closed form, and float64 Cholesky is exact and fast.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve

KERNELS = ("rbf", "arccos")


def kernel_matrix(a: np.ndarray, b: np.ndarray, kind: str, lengthscale: float = 1.0,
                  variance: float = 1.0) -> np.ndarray:
    """(len(a), len(b)) float64 kernel matrix.

    rbf: v exp(-|a-b|^2 / (2 l^2)); arccos (order 1, Cho & Saul 2009, inputs scaled by 1/l):
    v/pi |a||b| (sin t + (pi - t) cos t), t = angle(a, b) - the infinite-width ReLU network's kernel.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if kind == "rbf":
        sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
        return variance * np.exp(-np.maximum(sq, 0) / (2 * lengthscale**2))
    if kind == "arccos":
        a, b = a / lengthscale, b / lengthscale
        na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
        cos = np.clip(a @ b.T / np.outer(na, nb), -1.0, 1.0)
        t = np.arccos(cos)
        return variance / np.pi * np.outer(na, nb) * (np.sin(t) + (np.pi - t) * cos)
    raise ValueError(f"unknown kernel {kind!r}; expected one of {', '.join(KERNELS)}")


def median_lengthscale(x: np.ndarray, max_points: int = 1000) -> float:
    """The median pairwise distance of (up to `max_points` of) the inputs: a label-free lengthscale."""
    x = np.asarray(x[:max_points], dtype=np.float64)
    sq = (x * x).sum(1)[:, None] + (x * x).sum(1)[None, :] - 2 * x @ x.T
    return float(np.sqrt(np.median(np.maximum(sq[np.triu_indices(len(x), 1)], 0))))


def centred_one_hot(y: np.ndarray, classes: int) -> np.ndarray:
    """(n, C) float64 targets onehot - 1/C."""
    return np.eye(classes)[y] - 1.0 / classes


def log_marginal_likelihood(K: np.ndarray, Y: np.ndarray, noise_var: float) -> float:
    """Sum over the columns of Y (n, C) of log N(y_c | 0, K + s2 I), by Cholesky (float64)."""
    Y = np.asarray(Y, dtype=np.float64).reshape(len(K), -1)
    factor = cho_factor(K + noise_var * np.eye(len(K)), lower=True)
    alpha = cho_solve(factor, Y)
    logdet = 2.0 * np.log(np.diag(factor[0])).sum()
    n, c = Y.shape
    return float(-0.5 * (Y * alpha).sum() - 0.5 * c * logdet - 0.5 * n * c * np.log(2 * np.pi))


def posterior_mean(K: np.ndarray, K_star: np.ndarray, Y: np.ndarray, noise_var: float) -> np.ndarray:
    """(m, C) posterior mean at test points given K (n, n), K_star (m, n) and targets Y (n, C)."""
    return K_star @ cho_solve(cho_factor(K + noise_var * np.eye(len(K)), lower=True), Y)


def altered_label_sweep(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                        fractions: list[float], kind: str, lengthscale: float, noise_var: float,
                        rng: np.random.Generator, classes: int = 10) -> dict[str, list[float]]:
    """For each fraction of altered labels: GP train/test accuracy and log marginal likelihood per point."""
    from generalization.data import alter_labels

    K = kernel_matrix(x, x, kind, lengthscale)
    K_star = kernel_matrix(x_test, x, kind, lengthscale)
    out: dict[str, list[float]] = {"fraction": list(fractions), "train_acc": [], "test_acc": [],
                                   "lml_per_point": []}
    for frac in fractions:
        y_alt = alter_labels(y, frac, classes, rng)
        Y = centred_one_hot(y_alt, classes)
        factor = cho_factor(K + noise_var * np.eye(len(K)), lower=True)
        weights = cho_solve(factor, Y)
        out["train_acc"].append(float(((K @ weights).argmax(1) == y_alt).mean()))
        out["test_acc"].append(float(((K_star @ weights).argmax(1) == y_test).mean()))
        out["lml_per_point"].append(log_marginal_likelihood(K, Y, noise_var) / len(K))
    return out
