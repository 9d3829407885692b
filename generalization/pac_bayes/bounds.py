"""Generalization bounds for a hypothesis described by a prefix-free code of C bits.

A prefix-free code defines a prior P(h) = 2^-C(h) over all codes (Kraft), so a point-mass posterior on h has
KL(Q || P) = C ln 2. With n i.i.d. samples, empirical 0-1 error e and confidence 1 - delta:

* kl-inverse (Langford-Seeger / Occam):  kl(e || err) <= (C ln 2 + ln(1/delta)) / n,
  err <= kl^-1(e, (C ln 2 + ln 1/delta) / n)  (the largest p with kl(e || p) <= rhs).
* Catoni: for a fixed beta > 0, err <= (1 - exp(-beta e - (C ln 2 + ln 1/delta) / n)) / (1 - exp(-beta));
  beta is optimised over a grid of G values, paid for by the union bound (delta -> delta / G).

A union over H hyperparameter settings (subspace size, levels, width, ...) is paid by delta -> delta / H.
All inputs and outputs are fractions (0.325 = 32.5%).
"""

from __future__ import annotations

import math

import numpy as np

LN2 = math.log(2.0)


def binary_kl(q: float, p: float) -> float:
    """kl(q || p) between Bernoulli(q) and Bernoulli(p), in nats."""
    q = min(max(q, 0.0), 1.0)
    p = min(max(p, 1e-300), 1.0 - 1e-16)
    out = 0.0
    if q > 0:
        out += q * math.log(q / p)
    if q < 1:
        out += (1 - q) * math.log((1 - q) / (1 - p))
    return out


def kl_inverse_upper(q: float, c: float, tol: float = 1e-12) -> float:
    """sup{p in [q, 1] : kl(q || p) <= c}, by bisection (kl is increasing in p on [q, 1])."""
    if c < 0:
        raise ValueError(f"kl budget must be >= 0, got {c}")
    lo, hi = q, 1.0
    if binary_kl(q, hi) <= c:
        return 1.0
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if binary_kl(q, mid) > c:
            hi = mid
        else:
            lo = mid
    return hi


def complexity(code_bits: float, n: int, delta: float, n_hypers: int = 1) -> float:
    """(C ln 2 + ln(H / delta)) / n: the per-sample complexity term of both bounds."""
    if n <= 0 or not 0 < delta < 1 or n_hypers < 1 or code_bits < 0:
        raise ValueError(f"need n > 0, 0 < delta < 1, n_hypers >= 1, code_bits >= 0; got "
                         f"n={n}, delta={delta}, n_hypers={n_hypers}, code_bits={code_bits}")
    return (code_bits * LN2 + math.log(n_hypers / delta)) / n


def kl_bound(train_error: float, code_bits: float, n: int, delta: float = 0.05, n_hypers: int = 1) -> float:
    """Langford-Seeger kl-inverse bound on the 0-1 error of a C-bit hypothesis."""
    return kl_inverse_upper(train_error, complexity(code_bits, n, delta, n_hypers))


def catoni_bound(train_error: float, code_bits: float, n: int, delta: float = 0.05, n_hypers: int = 1,
                 betas: np.ndarray | None = None) -> float:
    """Catoni's bound, minimised over a grid of `betas` (default 1000 values in [1e-2, 1e3], log-spaced),
    the grid paid for by a union bound."""
    betas = np.logspace(-2, 3, 1000) if betas is None else np.asarray(betas, dtype=float)
    comp = complexity(code_bits, n, delta, n_hypers * len(betas))
    values = -np.expm1(-betas * train_error - comp) / -np.expm1(-betas)
    return float(min(1.0, values.min()))


def bound_from_code(train_error: float, code_bits: float, n: int, delta: float = 0.05,
                    n_hypers: int = 1) -> dict[str, float]:
    """Both bounds and the complexity term, for reporting."""
    return {
        "train_error": train_error,
        "code_bits": code_bits,
        "complexity": complexity(code_bits, n, delta, n_hypers),
        "kl_bound": kl_bound(train_error, code_bits, n, delta, n_hypers),
        "catoni_bound": catoni_bound(train_error, code_bits, n, delta, n_hypers),
    }


def elias_delta_bits(value: int) -> int:
    """Length in bits of the Elias delta code of a positive integer (a prefix-free code for headers)."""
    if value < 1:
        raise ValueError(f"Elias delta codes positive integers, got {value}")
    n = value.bit_length()
    return n - 1 + 2 * (n.bit_length() - 1) + 1
