"""Sampling (temperature > 0): SD and SSD emit tokens distributed exactly as the target alone.

A 12-token-vocabulary target/draft pair; N copies of one prompt are generated in one batch (independent rows);
the empirical joint of the first two generated tokens and the marginals of the third and fourth are compared by
chi-square with the exact distributions, computed in float64 with transformers over all 12^3 continuations.
The fourth token comes from the second or third round, so it exercises cache hits and misses of SSD. A control
shows the test's power: moving 2% of the target's own samples onto its median-probability token is rejected.
"""

import numpy as np
import pytest
import torch
from scipy import stats
from transformers import AutoModelForCausalLM

from ssd.engine.llm import LLM
from ssd.engine.sampler import SamplingParams, processed_probs

PROMPT = [3, 7, 1]
N = 10000
NEW = 4
ALPHA = 1e-3


def _exact(path, temperature, top_p):
    """Exact (joint(x1,x2) (V,V), marginal x3 (V,), marginal x4 (V,)) of the processed target distribution."""
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float64).eval()
    vocab = model.config.vocab_size
    grid = torch.cartesian_prod(*[torch.arange(vocab)] * 3)  # (V^3, 3) continuations x1 x2 x3
    ids = torch.cat([torch.tensor(PROMPT).expand(len(grid), -1), grid], 1)
    with torch.no_grad():
        logits = model(ids).logits[:, len(PROMPT) - 1:]  # next-token logits after prompt, x1, x2, x3
    probs = processed_probs(logits.double(), temperature, top_p).double()
    p1 = probs[0, 0]
    p2 = probs[:, 1].view(vocab, vocab, vocab, vocab)[:, 0, 0]  # p(x2 | x1), indexed [x1, x2]
    p3 = probs[:, 2].view(vocab, vocab, vocab, vocab)[:, :, 0]  # p(x3 | x1 x2), indexed [x1, x2, x3]
    p4 = probs[:, 3].view(vocab, vocab, vocab, vocab)           # p(x4 | x1 x2 x3)
    joint12 = p1[:, None] * p2
    joint123 = joint12[:, :, None] * p3
    marginal4 = (joint123[..., None] * p4).sum((0, 1, 2))
    return joint12.numpy(), joint123.sum((0, 1)).numpy(), marginal4.numpy()


def _chi2_pvalue(samples: np.ndarray, probs: np.ndarray) -> float:
    """Chi-square goodness of fit of integer samples to `probs`, pooling cells with expected count < 5."""
    counts = np.bincount(samples, minlength=len(probs)).astype(float)
    expected = probs * len(samples)
    big = expected >= 5
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    if exp[-1] == 0:
        if obs[-1] > 0:
            return 0.0  # a sample where the target puts no mass
        obs, exp = obs[:-1], exp[:-1]
    if len(obs) == 1:
        return 1.0  # a point mass, and every sample is on it
    return stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue


def _pvalues(tokens: np.ndarray, exact, vocab: int) -> list[float]:
    """p-values for: x1 marginal, (x1, x2) joint, x3 marginal, x4 marginal."""
    joint12, marginal3, marginal4 = exact
    return [_chi2_pvalue(tokens[:, 0], joint12.sum(1)),
            _chi2_pvalue(tokens[:, 0] * vocab + tokens[:, 1], joint12.ravel()),
            _chi2_pvalue(tokens[:, 2], marginal3), _chi2_pvalue(tokens[:, 3], marginal4)]


def _samples(target, draft, strategy, params, seed=0, **options) -> tuple[np.ndarray, dict]:
    llm = LLM(target, draft, strategy=strategy, device="cpu", max_len=16, max_batch_size=N, seed=seed, **options)
    outs = llm.generate([PROMPT] * N, params)
    return np.array([o.token_ids for o in outs]), outs[0].telemetry


@pytest.fixture(scope="module")
def exact_t1(tiny_vocab_pair):
    return _exact(tiny_vocab_pair[0], 1.0, 1.0)


CASES = [
    ("sd", {"k": 2}),
    ("ssd", {"k": 2, "budget": 6, "saguaro_c": 0.3}),
    ("ssd", {"k": 3, "budget": 4, "backup": "neural"}),  # forced misses, neural backup
    ("ssd", {"k": 2, "budget": 3, "backup": "random", "saguaro_c": 0.5}),  # misses -> random-token backup
]


@pytest.mark.slow
@pytest.mark.parametrize(("strategy", "options"), CASES)
def test_sampled_tokens_follow_the_target(tiny_vocab_pair, exact_t1, strategy, options):
    target, draft = tiny_vocab_pair
    params = SamplingParams(temperature=1.0, max_new_tokens=NEW, ignore_eos=True)
    tokens, tel = _samples(target, draft, strategy, params, **options)
    assert tokens.shape == (N, NEW)
    pvalues = _pvalues(tokens, exact_t1, 12)
    assert min(pvalues) > ALPHA, pvalues
    if strategy == "ssd":
        assert 0 < tel["cache_hit_rate"] < 1 or options.get("budget", 0) >= 6
        if options.get("backup") == "random":
            assert tel["backup_random"] > 0


@pytest.mark.slow
def test_temperature_and_top_p_are_preserved(tiny_vocab_pair):
    target, draft = tiny_vocab_pair
    params = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=NEW, ignore_eos=True)
    exact = _exact(target, 0.7, 0.9)
    tokens, _ = _samples(target, draft, "ssd", params, k=2, budget=6, saguaro_c=0.5)
    assert min(_pvalues(tokens, exact, 12)) > ALPHA


@pytest.mark.slow
def test_the_check_catches_a_two_percent_bias(tiny_vocab_pair, exact_t1):
    target, draft = tiny_vocab_pair
    params = SamplingParams(temperature=1.0, max_new_tokens=NEW, ignore_eos=True)
    tokens, _ = _samples(target, None, "ar", params, seed=1)
    assert min(_pvalues(tokens, exact_t1, 12)) > ALPHA  # the target alone passes
    for position, marginal in ((0, exact_t1[0].sum(1)), (3, exact_t1[2])):
        biased = tokens.copy()
        median_token = int(np.argsort(marginal)[len(marginal) // 2])
        biased[np.random.default_rng(0).random(N) < 0.02, position] = median_token  # 2% of samples moved
        pvalue = _pvalues(biased, exact_t1, 12)[0 if position == 0 else 3]
        assert pvalue < ALPHA, (position, pvalue)
    draft_only, _ = _samples(draft, None, "ar", params, seed=2)  # the draft's distribution is not the target's
    assert min(_pvalues(draft_only, exact_t1, 12)) < ALPHA
