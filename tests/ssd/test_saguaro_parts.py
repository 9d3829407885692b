"""Saguaro's pieces in isolation: geometric fan-out, the speculation cache lookup, Saguaro reweighting."""

import pytest
import torch

from ssd.decoding.fanout import geometric_fanout
from ssd.decoding.speculation_cache import SpeculationCache


def test_fanout_is_geometric_and_within_budget():
    fanout = geometric_fanout(k=7, budget=24, acceptance_rate=0.8, power=1.0)
    assert len(fanout) == 8 and sum(fanout) == 24 and min(fanout) >= 1
    assert all(a >= b for a, b in zip(fanout[:7], fanout[1:7], strict=False))  # non-increasing over k < K
    # the continuous optimum F_k ~ P(k)^(1/(1+r)): ratio a^(1/2) between neighbours, checked at a large budget
    big = geometric_fanout(k=3, budget=100_000, acceptance_rate=0.64, power=1.0)
    assert big[1] / big[0] == pytest.approx(0.8, rel=1e-3)
    assert big[3] / big[2] == pytest.approx((0.64**3 / (0.64**2 * 0.36)) ** 0.5, rel=1e-3)


def test_fanout_rejects_bad_arguments():
    with pytest.raises(ValueError, match="budget=3 must be >= K\\+1=5"):
        geometric_fanout(4, 3, 0.5)
    with pytest.raises(ValueError, match="acceptance_rate"):
        geometric_fanout(4, 10, 1.0)
    assert geometric_fanout(2, 30, 0.5, max_per_outcome=4) == [4, 4, 4]


def test_speculation_cache_lookup_matches_outcomes():
    keys_k = torch.tensor([0, 0, 1, 2])
    cache = SpeculationCache(keys_k, rows=2, k=2, vocab=12, logits_dtype=torch.float32, with_q=True)
    hit, _ = cache.lookup(torch.tensor([0, 1]), torch.tensor([5, 5]))
    assert not hit.any()  # an empty cache (keys -1) matches nothing
    keys_tok = torch.tensor([[5, 6, 5, 9], [1, 2, 3, 4]])
    tokens = torch.arange(2 * 4 * 2).view(2, 4, 2)
    q, logits = torch.rand(2, 4, 2, 12), torch.rand(2, 4, 3, 12)
    cache.store(keys_tok, tokens, q, logits)
    hit, branch = cache.lookup(torch.tensor([1, 0]), torch.tensor([5, 3]))  # row 0 -> (1, 5): branch 2; row 1 misses
    assert hit.tolist() == [True, False] and branch[0].item() == 2
    got, got_q, got_logits = cache.take(branch)
    assert torch.equal(got[0], tokens[0, 2]) and torch.equal(got_q[0], q[0, 2])
    assert torch.equal(got_logits[0], logits[0, 2])
    hit, branch = cache.lookup(torch.tensor([0, 2]), torch.tensor([6, 4]))  # (0, 6) is branch 1; (2, 4) branch 3
    assert hit.tolist() == [True, True] and branch.tolist() == [1, 3]


def test_saguaro_reweighting_downweights_top_tokens(llama_pair):
    from ssd.decoding.saguaro import Saguaro
    from ssd.engine.model_runner import ModelRunner
    from ssd.models.loading import load_model

    target = ModelRunner(load_model(llama_pair[0], max_len=32), 1, 32, "cpu")
    draft = ModelRunner(load_model(llama_pair[1], max_len=32), 30, 32, "cpu")
    strategy = Saguaro(target, draft, k=2, fanout=[3, 2, 4], saguaro_c=0.25)
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]])
    probs = torch.softmax(logits, -1)
    out = strategy.reweight(logits, probs, 0)  # top-F_0 = 3 tokens scaled by 0.25
    expected = probs * torch.tensor([0.25, 0.25, 0.25, 1.0, 1.0])
    assert torch.allclose(out, expected / expected.sum(), atol=1e-7)
    assert strategy.num_branches == 9 and strategy.lookahead() == 6
