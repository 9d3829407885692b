"""The arithmetic coder round-trips random symbol streams; its length is within 1% + 2 bits of n H(p_hat)."""

import numpy as np
import pytest

from generalization.pac_bayes.arithmetic_coding import (
    AdaptiveModel,
    StaticModel,
    decode,
    empirical_entropy_bits,
    encode,
)
from generalization.pac_bayes.compress import code_length_bits


@pytest.mark.parametrize("alphabet,n,skew", [(2, 5000, 0.0), (4, 3000, 1.0), (16, 8000, 2.0), (256, 4000, 0.5)])
def test_static_round_trip_and_length(alphabet, n, skew):
    rng = np.random.default_rng(alphabet + n)
    p = np.exp(-skew * np.arange(alphabet))
    symbols = rng.choice(alphabet, size=n, p=p / p.sum()).tolist()
    bits = encode(symbols, StaticModel.from_symbols(symbols, alphabet))
    assert decode(bits, n, StaticModel.from_symbols(symbols, alphabet)) == symbols
    entropy = empirical_entropy_bits(symbols)
    assert len(bits) <= entropy * 1.01 + 2
    assert len(bits) >= entropy - 1e-6  # no code beats the entropy of its own model


def test_adaptive_round_trip_and_near_entropy():
    rng = np.random.default_rng(1)
    symbols = rng.choice(8, size=6000, p=[0.5, 0.2, 0.1, 0.1, 0.05, 0.03, 0.01, 0.01]).tolist()
    bits = encode(symbols, AdaptiveModel(8))
    assert decode(bits, len(symbols), AdaptiveModel(8)) == symbols
    # Laplace estimator redundancy is about (L-1)/2 log2 n bits
    assert len(bits) <= empirical_entropy_bits(symbols) * 1.01 + 3.5 * np.log2(6000) + 2


def test_degenerate_streams():
    assert decode(encode([3] * 100, StaticModel([0, 0, 0, 5])), 100, StaticModel([0, 0, 0, 5])) == [3] * 100
    assert decode(encode([], StaticModel([1, 1])), 0, StaticModel([1, 1])) == []
    with pytest.raises(ValueError, match="zero frequency"):
        encode([0], StaticModel([0, 1]))


def test_decoding_with_a_different_model_does_not_reproduce():
    rng = np.random.default_rng(2)
    symbols = rng.integers(0, 4, 500).tolist()
    bits = encode(symbols, StaticModel.from_symbols(symbols, 4))
    assert decode(bits, 500, StaticModel([1, 1, 1, 100])) != symbols


def test_prefix_free_code_length_parts():
    idx = np.random.default_rng(3).integers(0, 16, 1000)
    code = code_length_bits(idx, 16)
    assert code["total_bits"] == code["body_bits"] + code["header_bits"] + code["centroid_bits"]
    assert code["centroid_bits"] == 16 * 16
    assert code["body_bits"] <= code["entropy_bits"] * 1.01 + 2
