"""Bound arithmetic against hand-computed values (PAPERS.md section 4: 5% / 20k bits / n=60k -> ~32.5%)."""

import math

import numpy as np
import pytest

from generalization.pac_bayes.bounds import (
    binary_kl,
    bound_from_code,
    catoni_bound,
    complexity,
    elias_delta_bits,
    kl_bound,
    kl_inverse_upper,
)


def test_reference_case_is_32_5_percent():
    out = bound_from_code(0.05, 20000, 60000, delta=0.05)
    # by hand: (20000 ln 2 + ln 20) / 60000 = 0.2310990; kl(0.05 || 0.32502) = 0.2310990
    assert out["complexity"] == pytest.approx((20000 * math.log(2) + math.log(20)) / 60000, rel=1e-12)
    assert out["kl_bound"] == pytest.approx(0.3250, abs=5e-4)
    assert binary_kl(0.05, out["kl_bound"]) == pytest.approx(out["complexity"], abs=1e-9)
    assert abs(out["catoni_bound"] - out["kl_bound"]) < 1e-3  # agree to ~0.1 point


def test_binary_kl_hand_values():
    assert binary_kl(0.5, 0.5) == 0.0
    assert binary_kl(0.0, 0.5) == pytest.approx(math.log(2))
    assert binary_kl(0.1, 0.3) == pytest.approx(0.1 * math.log(1 / 3) + 0.9 * math.log(0.9 / 0.7))


def test_kl_inverse_at_zero_error_is_closed_form():
    # kl(0 || p) = -ln(1 - p)  =>  p = 1 - exp(-c)
    for c in (0.001, 0.05, 0.7):
        assert kl_inverse_upper(0.0, c) == pytest.approx(1 - math.exp(-c), abs=1e-9)
    assert kl_inverse_upper(0.3, 50.0) == 1.0


def test_catoni_single_beta_matches_formula():
    e, bits, n, delta = 0.1, 5000, 50000, 0.05
    c = (bits * math.log(2) + math.log(1 / delta)) / n
    expected = (1 - math.exp(-2.0 * e - c)) / (1 - math.exp(-2.0))
    assert catoni_bound(e, bits, n, delta, betas=np.array([2.0])) == pytest.approx(expected, rel=1e-12)


def test_union_over_hyperparameters_costs_log_h_over_n():
    a = complexity(1000, 10000, 0.05, 1)
    b = complexity(1000, 10000, 0.05, 64)
    assert b - a == pytest.approx(math.log(64) / 10000)
    assert kl_bound(0.1, 1000, 10000, 0.05, 64) > kl_bound(0.1, 1000, 10000, 0.05, 1)


def test_bound_grows_with_code_length_and_shrinks_with_n():
    assert kl_bound(0.1, 2000, 60000) < kl_bound(0.1, 20000, 60000) < 1.0
    assert kl_bound(0.1, 20000, 600000) < kl_bound(0.1, 20000, 60000)


def test_elias_delta_lengths():
    # delta(1) = "1", delta(2) = "0100", delta(17) = "001 01 0001"
    assert [elias_delta_bits(v) for v in (1, 2, 3, 4, 17)] == [1, 4, 4, 5, 9]
    with pytest.raises(ValueError):
        elias_delta_bits(0)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="delta"):
        complexity(10, 100, 1.5)
