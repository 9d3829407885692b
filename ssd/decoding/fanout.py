"""Geometric fan-out: how many bonus-token guesses F_k to cache for each verification outcome k = 0..K.

A round ends with k accepted draft tokens with probability P(k) = a^k (1 - a) for k < K and a^K for k = K
(a: per-token acceptance rate). If the miss rate of caching F guesses for one outcome falls as a power law
F^-r (the paper's observation), minimising the expected miss rate sum_k P(k) F_k^-r under sum_k F_k = B gives
F_k proportional to P(k)^(1/(1+r)): geometric in k with ratio a^(1/(1+r)), plus a larger share for k = K.
`geometric_fanout` rounds that allocation to integers >= 1 (largest remainder) within the budget;
`uniform_fanout` splits the same budget evenly (the baseline the budget sweep compares against).
"""

from __future__ import annotations


def geometric_fanout(k: int, budget: int, acceptance_rate: float, power: float = 1.0,
                     max_per_outcome: int | None = None) -> list[int]:
    """F_0..F_K (length K+1), each >= 1, summing to <= budget (exactly budget unless capped).

    k: draft length K >= 1; budget: total cached speculations B >= K+1; acceptance_rate a in (0, 1);
    power r > 0 of the miss-rate power law; max_per_outcome caps each F_k (e.g. vocab size - 1).
    """
    if k < 1:
        raise ValueError(f"k={k} must be >= 1")
    if budget < k + 1:
        raise ValueError(f"budget={budget} must be >= K+1={k + 1} (one guess per outcome)")
    if not 0 < acceptance_rate < 1:
        raise ValueError(f"acceptance_rate={acceptance_rate} must be in (0, 1)")
    if power <= 0:
        raise ValueError(f"power={power} must be > 0")
    probs = [acceptance_rate**i * (1 - acceptance_rate) for i in range(k)] + [acceptance_rate**k]
    weights = [p ** (1.0 / (1.0 + power)) for p in probs]
    cap = max_per_outcome if max_per_outcome is not None else budget
    extra = budget - (k + 1)  # everyone gets 1; share the rest by weight
    total = sum(weights)
    ideal = [extra * w / total for w in weights]
    fanout = [1 + int(x) for x in ideal]
    order = sorted(range(k + 1), key=lambda i: ideal[i] - int(ideal[i]), reverse=True)
    for i in order[: budget - sum(fanout)]:
        fanout[i] += 1
    fanout = [min(f, cap) for f in fanout]
    return fanout


def uniform_fanout(k: int, budget: int, vocab: int) -> list[int]:
    """The budget B split evenly over the K+1 outcomes: F_k = B // (K+1), the remainder one each to the smallest
    k, each capped at vocab - 1 (the geometric fan-out's counterpart in the budget sweep)."""
    if k < 1 or budget < k + 1:
        raise ValueError(f"need K >= 1 and budget >= K+1; got K={k}, budget={budget}")
    base, extra = divmod(budget, k + 1)
    return [min(base + (i < extra), vocab - 1) for i in range(k + 1)]
