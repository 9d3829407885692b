"""Integer arithmetic coding (Witten, Neal & Cleary 1987) with 32-bit registers, encode and decode.

    model = StaticModel.from_symbols(symbols, alphabet=16)     # or AdaptiveModel(16)
    bits = encode(symbols, model)                               # list of 0/1, len(bits) = code length
    assert decode(bits, len(symbols), model.fresh()) == list(symbols)

With a static model whose frequencies are the empirical counts, the body costs at most n H(p) + 2 bits plus a
tiny rounding loss (frequencies are integers, the range is 32 bits). The decoder must know the symbol count and
the model (for a static model: the counts), which the caller writes in a prefix-free header; given those the
body is uniquely decodable and the whole message is prefix-free.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence

import numpy as np

BITS = 32
FULL = (1 << BITS) - 1
HALF = 1 << (BITS - 1)
QUARTER = 1 << (BITS - 2)
MAX_TOTAL = 1 << (BITS - 2)


class StaticModel:
    """Fixed integer frequencies (every symbol that occurs needs frequency >= 1)."""

    def __init__(self, counts: Sequence[int]) -> None:
        counts = [int(c) for c in counts]
        if any(c < 0 for c in counts) or sum(counts) == 0:
            raise ValueError("counts must be non-negative with a positive total")
        if sum(counts) >= MAX_TOTAL:
            raise ValueError(f"total frequency {sum(counts)} exceeds the coder's limit {MAX_TOTAL}")
        self.counts = counts
        self.cum = [0, *np.cumsum(counts).tolist()]
        self.total = self.cum[-1]

    @classmethod
    def from_symbols(cls, symbols: Sequence[int], alphabet: int) -> StaticModel:
        return cls(np.bincount(np.asarray(symbols, dtype=np.int64), minlength=alphabet).tolist())

    def interval(self, symbol: int) -> tuple[int, int]:
        if self.counts[symbol] == 0:
            raise ValueError(f"symbol {symbol} has zero frequency in the static model")
        return self.cum[symbol], self.cum[symbol + 1]

    def find(self, target: int) -> int:
        return bisect_right(self.cum, target) - 1

    def update(self, symbol: int) -> None:
        """Static: nothing to learn."""

    def fresh(self) -> StaticModel:
        return StaticModel(self.counts)


class AdaptiveModel(StaticModel):
    """Laplace-smoothed adaptive frequencies: every count starts at 1 and grows by 1 per coded symbol."""

    def __init__(self, alphabet: int) -> None:
        super().__init__([1] * alphabet)
        self.alphabet = alphabet

    def update(self, symbol: int) -> None:
        self.counts[symbol] += 1
        for i in range(symbol + 1, len(self.cum)):
            self.cum[i] += 1
        self.total += 1

    def fresh(self) -> AdaptiveModel:
        return AdaptiveModel(self.alphabet)


def encode(symbols: Sequence[int], model: StaticModel) -> list[int]:
    """The arithmetic code of `symbols` under `model` (which is updated as it goes), as a list of bits."""
    out: list[int] = []
    low, high, pending = 0, FULL, 0

    def emit(bit: int) -> None:
        nonlocal pending
        out.append(bit)
        out.extend([1 - bit] * pending)
        pending = 0

    for symbol in symbols:
        lo_c, hi_c = model.interval(int(symbol))
        span = high - low + 1
        high = low + span * hi_c // model.total - 1
        low = low + span * lo_c // model.total
        while True:
            if high < HALF:
                emit(0)
            elif low >= HALF:
                emit(1)
                low, high = low - HALF, high - HALF
            elif low >= QUARTER and high < HALF + QUARTER:
                pending += 1
                low, high = low - QUARTER, high - QUARTER
            else:
                break
            low, high = 2 * low, 2 * high + 1
        model.update(int(symbol))
    pending += 1
    emit(0 if low < QUARTER else 1)
    return out


def decode(bits: Sequence[int], count: int, model: StaticModel) -> list[int]:
    """Decode `count` symbols from `bits` with a fresh copy of the encoder's model."""
    stream = iter(bits)

    def next_bit() -> int:
        return next(stream, 0)

    value = 0
    for _ in range(BITS):
        value = (value << 1) | next_bit()
    low, high = 0, FULL
    symbols = []
    for _ in range(count):
        span = high - low + 1
        target = ((value - low + 1) * model.total - 1) // span
        symbol = model.find(target)
        lo_c, hi_c = model.interval(symbol)
        high = low + span * hi_c // model.total - 1
        low = low + span * lo_c // model.total
        while True:
            if high < HALF:
                pass
            elif low >= HALF:
                low, high, value = low - HALF, high - HALF, value - HALF
            elif low >= QUARTER and high < HALF + QUARTER:
                low, high, value = low - QUARTER, high - QUARTER, value - QUARTER
            else:
                break
            low, high, value = 2 * low, 2 * high + 1, (value << 1) | next_bit()
        model.update(symbol)
        symbols.append(symbol)
    return symbols


def empirical_entropy_bits(symbols: Sequence[int]) -> float:
    """n H(p_hat): the ideal code length in bits of `symbols` under their own empirical distribution."""
    counts = np.bincount(np.asarray(symbols, dtype=np.int64))
    counts = counts[counts > 0]
    n = counts.sum()
    return float(-(counts * np.log2(counts / n)).sum()) if n else 0.0


def static_header_bits(counts: Sequence[int]) -> int:
    """Bits to send a static model's counts prefix-free: Elias delta of (count + 1) for each symbol."""
    from generalization.pac_bayes.bounds import elias_delta_bits

    return sum(elias_delta_bits(int(c) + 1) for c in counts)


def log2_ceil(x: float) -> int:
    return int(math.ceil(math.log2(x))) if x > 1 else 0
