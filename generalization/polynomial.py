"""Soft inductive bias (Wilson 2025, Fig. 1a-c): a 150th-order Legendre polynomial with an order-dependent
penalty fits simple and complex structured data well and pure noise perfectly.

Model: f(x) = sum_k c_k P_k(x), k = 0..K, Legendre P_k on [-1, 1] (a stable basis). Penalty: lam * sum_k
(k+1)^gamma c_k^2, so high orders are allowed but cost more. The generalised-ridge solution minimises
||Phi c - y||^2 + lam c^T diag((k+1)^gamma) c, i.e. c = (Phi^T Phi + lam Lambda)^-1 Phi^T y, computed stably as
least squares on the augmented system [Phi; sqrt(lam Lambda)] c = [y; 0]. With lam -> 0 and n < K+1 it becomes
the interpolant of minimum weighted norm: it fits any data, noise included, and prefers low orders.

NumPy float64 closed forms throughout: the whole panel is linear algebra, no training loop.
"""

from __future__ import annotations

import numpy as np
from numpy.polynomial import legendre

DATASETS = ("simple", "complex", "noise")


def legendre_design(x: np.ndarray, order: int) -> np.ndarray:
    """(n, order+1) float64 matrix of P_0..P_order at x in [-1, 1]."""
    return legendre.legvander(np.asarray(x, dtype=np.float64), order)


def order_penalty(order: int, gamma: float) -> np.ndarray:
    """(order+1,) penalty weights (k+1)^gamma; gamma = 0 is ordinary ridge."""
    return (np.arange(order + 1, dtype=np.float64) + 1.0) ** gamma


def fit_generalised_ridge(x: np.ndarray, y: np.ndarray, order: int, lam: float, gamma: float) -> np.ndarray:
    """(order+1,) coefficients minimising ||Phi c - y||^2 + lam sum_k (k+1)^gamma c_k^2 (lam > 0)."""
    phi = legendre_design(x, order)
    root = np.sqrt(lam * order_penalty(order, gamma))
    augmented = np.vstack([phi, np.diag(root)])
    target = np.concatenate([np.asarray(y, dtype=np.float64), np.zeros(order + 1)])
    return np.linalg.lstsq(augmented, target, rcond=None)[0]


def fit_least_squares(x: np.ndarray, y: np.ndarray, order: int) -> np.ndarray:
    """Unpenalised least squares (minimum-norm when under-determined, i.e. order + 1 > n)."""
    return np.linalg.lstsq(legendre_design(x, order), np.asarray(y, dtype=np.float64), rcond=None)[0]


def predict(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    return legendre.legval(np.asarray(x, dtype=np.float64), coef)


def target_function(kind: str, x: np.ndarray) -> np.ndarray:
    """Noise-free structured targets: "simple" (a smooth low-order shape) and "complex" (multi-scale wiggles)."""
    if kind == "simple":
        return 0.8 * np.sin(1.5 * x) + 0.3 * x**2
    if kind == "complex":
        return np.sin(6 * x) + 0.5 * np.cos(15 * x + 1) * np.exp(-x**2) + 0.3 * np.sign(x) * x**2
    raise ValueError(f"unknown target {kind!r}; expected 'simple' or 'complex'")


def make_data(kind: str, n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n inputs uniform on [-1, 1] and targets: a structured function + N(0, noise^2), or pure N(0, 1) noise."""
    if kind not in DATASETS:
        raise ValueError(f"unknown dataset {kind!r}; expected one of {', '.join(DATASETS)}")
    x = np.sort(rng.uniform(-1, 1, n))
    if kind == "noise":
        return x, rng.normal(0, 1, n)
    return x, target_function(kind, x) + rng.normal(0, noise, n)


def held_out(kind: str, n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Fresh samples from the same distribution as the training data (for noise: fresh noise)."""
    return make_data(kind, n, noise, rng)


def mse(coef: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((predict(coef, x) - y) ** 2))


def run_panels(order: int, n_train: int, n_test: int, noise: float, lam: float, gamma: float,
               low_orders: list[int], gammas: list[float], n_grid: int, seeds: int, seed: int,
               lam_interpolate: float = 1e-12) -> dict:
    """Everything the figure and the status table need: fits per dataset and method, and the gamma sweep.

    "penalised" uses (lam, gamma); "penalised_interpolate" is the same model asked to fit the data exactly
    (lam_interpolate -> 0): the minimum weighted-norm interpolant.
    """
    methods = {"penalised": lambda x, y: fit_generalised_ridge(x, y, order, lam, gamma),
               "penalised_interpolate": lambda x, y: fit_generalised_ridge(x, y, order, lam_interpolate, gamma),
               "unpenalised": lambda x, y: fit_least_squares(x, y, order)}
    for k in low_orders:
        methods[f"order_{k}"] = lambda x, y, k=k: fit_least_squares(x, y, k)
    grid = np.linspace(-1, 1, n_grid)
    panels: dict = {}
    for kind in DATASETS:
        errors: dict = {m: {"train_mse": [], "test_mse": []} for m in methods}
        for s in range(seeds):
            rng = np.random.default_rng(seed + 1000 * s + DATASETS.index(kind))
            x, y = make_data(kind, n_train, noise, rng)
            xt, yt = held_out(kind, n_test, noise, rng)
            for name, method in methods.items():
                coef = method(x, y)
                errors[name]["train_mse"].append(mse(coef, x, y))
                errors[name]["test_mse"].append(mse(coef, xt, yt))
                if s == 0:
                    errors[name]["curve"] = predict(coef, grid).tolist()
                    if name == "penalised":
                        errors[name]["abs_coef"] = np.abs(coef).tolist()
            if s == 0:
                panel_data = {"x": x.tolist(), "y": y.tolist(), "grid": grid.tolist(),
                              "truth": (target_function(kind, grid).tolist() if kind != "noise" else None)}
        for name in methods:
            for key in ("train_mse", "test_mse"):
                errors[name][key + "_mean"] = float(np.mean(errors[name][key]))
        panels[kind] = {"data": panel_data, "fits": errors,
                        "noise_var": 1.0 if kind == "noise" else noise**2}
    sweep = gamma_sweep(order, n_train, n_test, noise, lam, gammas, seeds, seed)
    return {"panels": panels, "gamma_sweep": sweep}


def gamma_sweep(order: int, n_train: int, n_test: int, noise: float, lam: float, gammas: list[float],
                seeds: int, seed: int) -> dict:
    """Held-out MSE on structured data and train MSE on noise, vs the penalty growth gamma."""
    out = {"gamma": list(gammas)}
    for kind in DATASETS:
        train, test = [], []
        for g in gammas:
            tr, te = [], []
            for s in range(seeds):
                rng = np.random.default_rng(seed + 1000 * s + DATASETS.index(kind))
                x, y = make_data(kind, n_train, noise, rng)
                xt, yt = held_out(kind, n_test, noise, rng)
                coef = fit_generalised_ridge(x, y, order, lam, g)
                tr.append(mse(coef, x, y))
                te.append(mse(coef, xt, yt))
            train.append(float(np.mean(tr)))
            test.append(float(np.mean(te)))
        out[kind] = {"train_mse": train, "test_mse": test}
    return out
