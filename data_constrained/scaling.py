"""Scaling-law fits of Kim et al. 2025: power laws with an asymptote, bootstrap CIs, data-efficiency multiplier.

- `fit_power_law(x, loss)`: L(x) = A / x^alpha + E, least squares on log L (so every point weighs the same in
  relative terms), from a grid of initial values (as Hoffmann et al. 2022 fit theirs); positivity by fitting
  log A, log E.
- `bootstrap_power_law`: percentile confidence intervals from refits on points resampled with replacement.
- `fit_joint(n, k, loss)`: L(N, K) = A / N^alpha + B / K^beta + E, the joint parameter/ensemble-size law whose
  E is the asymptote of ensembles of infinitely many, infinitely large members.
- `data_efficiency(loss_target, data_law, budget)`: how many times more data than `budget` the default recipe's
  data-scaling law L(D) = B / D^beta + E_D needs to reach `loss_target` (the paper's "5.17x").

Every fit says which of its parameters ended on a bound of the search (`bounds_hit`: "alpha_min", "alpha_max",
"E_max" - the asymptote pressed against the lowest loss, a flat curve -, "E_min"): such a fit is not identified by
the data, and whatever depends on that parameter (an asymptote, a multiplier) is flagged with it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import least_squares

ALPHA_MIN = 0.05  # smallest exponent a fit may take (the paper's exponents are O(0.1-1))
ALPHA_MAX = 10.0
LOG_E_MIN = -30.0
_AT_BOUND = 1e-4  # relative closeness to a bound that counts as "on it"


@dataclass(frozen=True)
class PowerLaw:
    """L(x) = A / x^alpha + E."""

    A: float
    alpha: float
    E: float
    rmse_log: float = float("nan")  # root-mean-square residual of log L at the fit
    bounds_hit: tuple[str, ...] = ()  # parameters the fit left on a bound of its search (see the module docstring)

    def __call__(self, x):
        return self.A / np.asarray(x, dtype=np.float64) ** self.alpha + self.E

    def inverse(self, loss: float) -> float:
        """The x with L(x) = loss; inf when loss <= E (the law never gets there)."""
        if loss <= self.E:
            return math.inf
        return (self.A / (loss - self.E)) ** (1.0 / self.alpha)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def fit_power_law(x, loss, x_scale: float | None = None, init: PowerLaw | None = None,
                  alpha_min: float = ALPHA_MIN) -> PowerLaw:
    """Fit L = A / x^alpha + E to points (x, loss), loss > 0, at least 3 distinct x.

    x is divided by `x_scale` (default: its geometric mean) during the fit for conditioning; A is reported for the
    unscaled x. `init`: an extra start (used by the bootstrap). `alpha_min`: lower bound on the exponent; a
    nearly flat curve is then read as "at its asymptote" (E near the data) rather than as E -> 0 with alpha -> 0,
    the degenerate solution of a flat, noisy curve.
    """
    x = np.asarray(x, dtype=np.float64)
    loss = np.asarray(loss, dtype=np.float64)
    if x.shape != loss.shape or x.ndim != 1:
        raise ValueError(f"x and loss must be 1-D of the same length, got {x.shape} and {loss.shape}")
    if len(np.unique(x)) < 3:
        raise ValueError(f"a 3-parameter power law needs at least 3 distinct x, got {len(np.unique(x))}")
    if np.any(x <= 0) or np.any(loss <= 0):
        raise ValueError("x and loss must be positive")
    scale = float(np.exp(np.mean(np.log(x)))) if x_scale is None else x_scale
    u = x / scale
    log_loss = np.log(loss)

    def residual(p):  # p = (log A', alpha, log E)
        return np.logaddexp(p[0] - p[1] * np.log(u), p[2]) - log_loss

    upper = np.array([50.0, ALPHA_MAX, np.log(loss.min())])  # E < min loss, since A / x^alpha > 0
    lower = np.array([-50.0, alpha_min, LOG_E_MIN])
    starts = [_profile_start(u, loss, alpha_min)]
    if init is not None:
        starts.append([np.log(max(init.A / scale**init.alpha, 1e-12)), init.alpha, np.log(max(init.E, 1e-12))])
    best = None
    for x0 in starts:
        x0 = np.clip(x0, lower + 1e-6, upper - 1e-6)
        fit = least_squares(residual, x0=x0, method="trf", bounds=(lower, upper), max_nfev=200)
        if best is None or fit.cost < best.cost:
            best = fit
    log_a, alpha, log_e = best.x
    rmse = float(np.sqrt(np.mean(best.fun**2)))
    return PowerLaw(A=float(np.exp(log_a) * scale**alpha), alpha=float(alpha), E=float(np.exp(log_e)),
                    rmse_log=rmse, bounds_hit=_bounds_hit(alpha, alpha_min, log_e, upper[2]))


def _bounds_hit(alpha: float, alpha_min: float, log_e: float, log_e_max: float, name: str = "alpha"
                ) -> tuple[str, ...]:
    hits = []
    if alpha <= alpha_min * (1 + _AT_BOUND) + 1e-9:
        hits.append(f"{name}_min")
    if alpha >= ALPHA_MAX * (1 - _AT_BOUND):
        hits.append(f"{name}_max")
    if log_e >= log_e_max - 1e-3:
        hits.append("E_max")
    if log_e <= LOG_E_MIN + 1e-3:
        hits.append("E_min")
    return tuple(hits)


def _profile_start(u: np.ndarray, loss: np.ndarray, alpha_min: float) -> list[float]:
    """A start for the log-space fit: for each alpha on a grid, (A, E) >= 0 by relative-error weighted linear
    least squares (variable projection); the alpha with the smallest log residual wins."""
    best, best_cost = None, np.inf
    w = 1.0 / loss
    for alpha in np.geomspace(max(alpha_min, 1e-3), 8.0, 48):
        design = np.stack([u**-alpha, np.ones_like(u)], axis=1) * w[:, None]
        coef, *_ = np.linalg.lstsq(design, loss * w, rcond=None)
        a, e = max(coef[0], 1e-12), min(max(coef[1], 1e-12), loss.min() * (1 - 1e-6))
        cost = np.sum((np.log(a * u**-alpha + e) - np.log(loss)) ** 2)
        if cost < best_cost:
            best, best_cost = [np.log(a), alpha, np.log(e)], cost
    return best


def bootstrap_power_law(x, loss, n_boot: int = 200, seed: int = 0, level: float = 0.9) -> dict[str, list[float]]:
    """Percentile CIs {"A": [lo, hi], "alpha": [...], "E": [...]} from `n_boot` resampled refits.

    Resamples with fewer than 3 distinct x are redrawn; with fewer than 4 distinct x every valid resample is the
    data itself, so the intervals are NaN (say so rather than report a zero-width interval)."""
    x = np.asarray(x, dtype=np.float64)
    loss = np.asarray(loss, dtype=np.float64)
    if len(np.unique(x)) < 4:
        return {"A": [math.nan] * 2, "alpha": [math.nan] * 2, "E": [math.nan] * 2}
    rng = np.random.default_rng(seed)
    point = fit_power_law(x, loss)
    draws = []
    for _ in range(n_boot):
        for _ in range(100):
            idx = rng.integers(0, len(x), len(x))
            if len(np.unique(x[idx])) >= 3:
                break
        else:
            continue
        law = fit_power_law(x[idx], loss[idx], init=point)
        draws.append((law.A, law.alpha, law.E))
    if not draws:
        return {"A": [math.nan] * 2, "alpha": [math.nan] * 2, "E": [math.nan] * 2}
    draws = np.array(draws)
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    return {name: [float(np.percentile(draws[:, i], lo)), float(np.percentile(draws[:, i], hi))]
            for i, name in enumerate(("A", "alpha", "E"))}


@dataclass(frozen=True)
class JointLaw:
    """L(N, K) = A / N^alpha + B / K^beta + E."""

    A: float
    alpha: float
    B: float
    beta: float
    E: float
    rmse_log: float = float("nan")
    bounds_hit: tuple[str, ...] = ()

    def __call__(self, n, k):
        n = np.asarray(n, dtype=np.float64)
        k = np.asarray(k, dtype=np.float64)
        return self.A / n**self.alpha + self.B / k**self.beta + self.E

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def fit_joint(n, k, loss, init: JointLaw | None = None) -> JointLaw:
    """Fit L(N, K) = A / N^alpha + B / K^beta + E (log-space least squares, exponents >= ALPHA_MIN); needs >= 5
    points with >= 2 distinct N and K. `init`: start from this law only (the bootstrap's refits), instead of the
    grid of starts."""
    n, k, loss = (np.asarray(v, dtype=np.float64) for v in (n, k, loss))
    if len(loss) < 5 or len(np.unique(k)) < 2 or len(np.unique(n)) < 2:
        raise ValueError("the joint law needs >= 5 points with >= 2 distinct N and >= 2 distinct K")
    scale = float(np.exp(np.mean(np.log(n))))
    log_u, log_k, log_loss = np.log(n / scale), np.log(k), np.log(loss)

    def residual(p):  # (log A', alpha, log B, beta, log E)
        terms = np.stack([p[0] - p[1] * log_u, p[2] - p[3] * log_k, np.full_like(log_u, p[4])])
        return np.logaddexp.reduce(terms, axis=0) - log_loss

    lower = [-50, ALPHA_MIN, -50, ALPHA_MIN, LOG_E_MIN]
    upper = [50, ALPHA_MAX, 50, ALPHA_MAX, np.log(loss.min())]
    if init is not None:
        starts = [[np.log(max(init.A / scale**init.alpha, 1e-12)), init.alpha, np.log(max(init.B, 1e-12)), init.beta,
                   np.log(max(init.E, 1e-12))]]
    else:
        starts = []
        for alpha0, beta0, e_frac in itertools.product((0.2, 0.6, 1.5), (0.5, 1.0, 2.0), (0.5, 0.9)):
            e0 = loss.min() * e_frac
            starts.append([np.log(max(np.median(loss) - e0, 1e-3)), alpha0,
                           np.log(max(0.1 * (loss.max() - e0), 1e-3)), beta0, np.log(e0)])
    best = None
    for p0 in starts:
        p0 = np.clip(p0, np.array(lower) + 1e-6, np.array(upper) - 1e-6)
        fit = least_squares(residual, x0=p0, bounds=(lower, upper), max_nfev=300)
        if best is None or fit.cost < best.cost:
            best = fit
    log_a, alpha, log_b, beta, log_e = best.x
    hits = _bounds_hit(alpha, ALPHA_MIN, log_e, upper[4]) + tuple(
        h for h in _bounds_hit(beta, ALPHA_MIN, 0.0, 1.0, "beta") if h.startswith("beta"))
    return JointLaw(A=float(np.exp(log_a) * scale**alpha), alpha=float(alpha), B=float(np.exp(log_b)),
                    beta=float(beta), E=float(np.exp(log_e)), rmse_log=float(np.sqrt(np.mean(best.fun**2))),
                    bounds_hit=hits)


def data_efficiency(loss_target: float, data_law: PowerLaw, budget: float) -> float:
    """D / budget, where D is the data the default recipe's law L(D) needs to reach `loss_target`.

    inf when the target is below the law's asymptote (no amount of data gets the default recipe there)."""
    return data_law.inverse(loss_target) / budget
