"""Gaussian-posterior PAC-Bayes bound around trained weights (Dziugaite & Roy 2017; Jiang et al. 2020
"pacbayes.flatness"): the network's PAC-Bayes marginal-likelihood proxy of Fig. 1(e).

Prior P = N(theta0, sigma^2 I) with theta0 the network's initial weights (data-independent: drawn from the seed
before training), posterior Q = N(theta*, sigma^2 I) around the trained weights theta* (P parameters):

    KL(Q || P) = ||theta* - theta0||^2 / (2 sigma^2)                                (float64)

sigma is the largest value of a fixed geometric grid of G values whose Monte-Carlo train error of Q (mean over K
weight draws) is within `tolerance` of the deterministic train error (Jiang et al. use 0.1 and K = 10); the grid
is paid for with a union bound (delta -> delta / G). With n i.i.d. training points and confidence 1 - delta
(Maurer 2004 / Langford-Seeger), Q's expected 0-1 error is at most

    kl^-1( e_Q , (KL + ln(2 sqrt(n) / delta) + ln G) / n ),     kl^-1 from pac_bayes/bounds.py.

e_Q is the K-sample Monte-Carlo estimate, used as is (no sample-convergence term; its standard error is
reported). `-KL / n` is the log-evidence-like proxy: higher = the data moved the weights less, relative to how
far they can move without hurting the fit.

    out = gaussian_pac_bayes(model, theta0, x, y, sigma_grid(1e-4, 1.0, 33), samples=10, tolerance=0.1,
                             delta=0.05, seed=0)
"""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from generalization.pac_bayes.bounds import kl_inverse_upper
from generalization.train import evaluate


def gaussian_pac_bayes(model: torch.nn.Module, theta0: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                       sigmas: np.ndarray, samples: int, tolerance: float, delta: float,
                       seed: int) -> dict:
    """The bound and its parts for the trained `model` (theta*) against its initial weights `theta0` (P,).

    x (n, ...) float32 and y (n,) int64 are the training set, on the model's device; `sigmas` the grid (G,).
    """
    start = time.perf_counter()
    theta = parameters_to_vector(model.parameters()).detach()
    if theta0.shape != theta.shape:
        raise ValueError(f"theta0 has shape {tuple(theta0.shape)}, the model has {tuple(theta.shape)} parameters")
    n = len(y)
    train_error = evaluate(model, x, y)["error"]
    scanned: dict[float, tuple[float, float, int]] = {}

    def q_error(sigma: float) -> float:
        scanned[sigma] = perturbed_error(model, theta, x, y, sigma, samples, seed,
                                         stop_above=train_error + tolerance)
        return scanned[sigma][0]

    index = largest_within_tolerance(q_error, sigmas, train_error, tolerance)
    met = index is not None
    if index is None:  # nothing met: any grid value keeps the bound valid; take the smallest, with all K draws
        index = int(np.argmin(sigmas))
        scanned[float(sigmas[index])] = perturbed_error(model, theta, x, y, float(sigmas[index]), samples, seed)
    sigma = float(sigmas[index])
    q_mean, q_se, _ = scanned[sigma]
    theta0 = theta0.to(theta.device)
    kl = gaussian_kl(theta, theta0, sigma)
    return {
        "n": n, "parameters": theta.numel(), "grid_size": len(sigmas), "delta": delta, "samples": samples,
        "tolerance": tolerance, "tolerance_met": met, "sigma": sigma, "sigma_index": index,
        "distance_from_init": float((theta.double() - theta0.double()).norm()), "train_error": train_error,
        "q_train_error": q_mean, "q_train_error_se": q_se, "kl": kl, "complexity": kl / n,
        "bound": gaussian_bound(q_mean, kl, n, delta, len(sigmas)), "log_evidence_proxy": -kl / n,
        "scanned": {"sigma": list(scanned), "q_train_error": [v[0] for v in scanned.values()],
                    "samples_used": [v[2] for v in scanned.values()]},
        "wall_s": time.perf_counter() - start,
    }


def sigma_grid(sigma_min: float, sigma_max: float, size: int) -> np.ndarray:
    """`size` geometrically spaced values from sigma_min to sigma_max (ascending; size 1 gives [sigma_max])."""
    if not 0 < sigma_min <= sigma_max or size < 1 or (size > 1 and sigma_min == sigma_max):
        raise ValueError(f"need 0 < sigma_min < sigma_max and size >= 1 (or size 1); got "
                         f"sigma_min={sigma_min}, sigma_max={sigma_max}, size={size}")
    return np.array([sigma_max]) if size == 1 else np.geomspace(sigma_min, sigma_max, size)


def gaussian_kl(theta: torch.Tensor, theta0: torch.Tensor, sigma: float) -> float:
    """KL(N(theta, sigma^2 I) || N(theta0, sigma^2 I)) = ||theta - theta0||^2 / (2 sigma^2), in nats (float64)."""
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    diff = theta.detach().double() - theta0.detach().double()
    return float(diff.square().sum()) / (2.0 * sigma**2)


def gaussian_bound(q_error: float, kl: float, n: int, delta: float, grid_size: int = 1) -> float:
    """kl^-1(e_Q, (KL + ln(2 sqrt(n)/delta) + ln G) / n): Maurer's PAC-Bayes-kl bound, union over G sigmas."""
    if n <= 0 or not 0 < delta < 1 or grid_size < 1 or kl < 0:
        raise ValueError(f"need n > 0, 0 < delta < 1, grid_size >= 1, kl >= 0; got "
                         f"n={n}, delta={delta}, grid_size={grid_size}, kl={kl}")
    budget = (kl + math.log(2 * math.sqrt(n) / delta) + math.log(grid_size)) / n
    return kl_inverse_upper(q_error, budget)


def largest_within_tolerance(q_error, sigmas: np.ndarray, reference_error: float,
                             tolerance: float) -> int | None:
    """Index of the largest sigma with q_error(sigma) <= reference_error + tolerance (None if none).

    Scans from the largest value down and stops at the first that passes, so it equals the brute-force
    answer whatever the shape of q_error (a Monte-Carlo estimate need not be monotone in sigma).
    """
    order = np.argsort(sigmas)[::-1]
    for i in order:
        if q_error(float(sigmas[i])) <= reference_error + tolerance:
            return int(i)
    return None


@torch.no_grad()
def perturbed_error(model: torch.nn.Module, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                    sigma: float, samples: int, seed: int,
                    stop_above: float | None = None) -> tuple[float, float, int]:
    """(mean, standard error, draws used) over `samples` draws theta + sigma * eps of the train 0-1 error.

    eps ~ N(0, I) is drawn on the CPU from `seed` (the same draws for every sigma and on every device) and moved
    to theta's device; `model` itself is not changed. With `stop_above`, drawing stops as soon as the errors so
    far prove the K-sample mean exceeds it (errors are >= 0); the partial mean returned then exceeds it too, so
    `mean <= stop_above` is decided exactly as with all K draws, at a fraction of the cost for large sigma.
    """
    if samples < 1:
        raise ValueError(f"need at least one weight sample, got samples={samples}")
    noisy = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    errors: list[float] = []
    for _ in range(samples):
        eps = torch.randn(theta.numel(), generator=gen).to(device=theta.device, dtype=theta.dtype)
        vector_to_parameters(theta + sigma * eps, noisy.parameters())
        errors.append(evaluate(noisy, x, y)["error"])
        if stop_above is not None and sum(errors) > samples * stop_above + 1e-9:
            break
    se = float(np.std(errors, ddof=1) / math.sqrt(len(errors))) if len(errors) > 1 else float("nan")
    return float(np.mean(errors)), se, len(errors)
