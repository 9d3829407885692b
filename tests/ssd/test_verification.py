"""Exactness of speculative verification (torch reference): enumeration in float64, chi-square on samples, greedy."""

import pytest
import torch
from scipy import stats

from ssd.decoding.verification import verify, verify_reference

V = 5


def _toy(seed: int, k: int = 1, vocab: int = V, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    p = torch.softmax(torch.randn(k + 1, vocab, generator=g, dtype=dtype) * 1.5, -1)
    q = torch.softmax(torch.randn(k, vocab, generator=g, dtype=dtype) * 1.5, -1)
    return p, q


def _saguaro(q: torch.Tensor, top: int = 2, c: float = 0.3) -> torch.Tensor:
    """Down-weight the top-`top` draft tokens by c and renormalise (Saguaro sampling's draft distribution)."""
    idx = q.topk(top, -1).indices
    w = torch.ones_like(q).scatter(-1, idx, c)
    return q * w / (q * w).sum(-1, keepdim=True)


def _preimage_lengths(fn, n_rows: int, n_values: int, iters: int = 60) -> torch.Tensor:
    """For a nondecreasing step function fn(u (n_rows,)) -> (n_rows,) ints, P_u~U[0,1)(fn(u) = t) per row and t.

    Bisection finds sup{u: fn(u) <= t} for every t (float64, to 2^-60), so the measure is exact up to ~1e-15.
    """
    sup = torch.zeros(n_rows, n_values, dtype=torch.float64)
    for t in range(n_values):
        lo = torch.zeros(n_rows, dtype=torch.float64)
        hi = torch.ones(n_rows, dtype=torch.float64)
        for _ in range(iters):
            mid = (lo + hi) / 2
            ok = fn(mid) <= t
            lo = torch.where(ok, mid, lo)
            hi = torch.where(ok, hi, mid)
        sup[:, t] = torch.where(fn(torch.zeros(n_rows, dtype=torch.float64)) <= t, lo, torch.zeros_like(lo))
        sup[:, t] = torch.where(fn(torch.full((n_rows,), 1 - 2**-53, dtype=torch.float64)) <= t, 1.0, sup[:, t])
    return torch.diff(sup, dim=1, prepend=torch.zeros(n_rows, 1, dtype=torch.float64))


def _emitted_distribution(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Exact law of the first emitted token of `verify_reference` (K=1) in float64, by enumeration over the draft
    token x ~ q and the implementation's own acceptance and correction-sampling maps (measured by bisection)."""
    vocab = p.shape[-1]
    drafts = torch.arange(vocab)
    pb, qb = p.expand(vocab, -1, -1), q.expand(vocab, -1, -1)

    def accepted(u0):  # 0 if accepted, 1 if rejected: nondecreasing in u0
        u = torch.stack([u0, torch.zeros_like(u0)], 1)
        return 1 - verify_reference(pb, qb, drafts[:, None], u)[0]

    def correction(uk):
        u = torch.stack([torch.full_like(uk, 1 - 2**-53), uk], 1)
        return verify_reference(pb, qb, drafts[:, None], u)[1]

    accept_prob = _preimage_lengths(accepted, vocab, 2)[:, 0]  # (x,)
    residual = _preimage_lengths(correction, vocab, vocab)  # (x, t): law of the correction after rejecting x
    emitted = q[0][:, None] * ((1 - accept_prob)[:, None] * residual + accept_prob[:, None] * torch.eye(vocab))
    return emitted.sum(0), accept_prob


@pytest.mark.parametrize("case", ["random", "one_hot_backup", "equal", "saguaro"])
def test_first_token_law_equals_target_by_enumeration(case):
    p, q = _toy(1)
    if case == "one_hot_backup":  # random-token backup: x uniform, q = delta_x (handled per draft below)
        law = torch.zeros(V, dtype=torch.float64)
        for x in range(V):
            one_hot = torch.nn.functional.one_hot(torch.tensor([x]), V).double()
            emitted, accept_prob = _emitted_distribution(p, one_hot)
            assert accept_prob[x].item() == pytest.approx(p[0, x].item(), abs=1e-14)  # accept w.p. p(x)
            law += emitted / V
    else:
        q = {"random": q, "equal": p[:1].clone(), "saguaro": _saguaro(q)}[case]
        law, accept_prob = _emitted_distribution(p, q)
        expected_accept = torch.clamp(p[0] / q[0], max=1.0)
        torch.testing.assert_close(accept_prob, expected_accept, atol=1e-14, rtol=0)
    torch.testing.assert_close(law, p[0], atol=1e-13, rtol=0)


def test_argmax_backup_rule_is_not_exact():
    """The trap in the public code: accepting a random proposal iff it is argmax p biases the output."""
    p, _ = _toy(2)
    law = torch.zeros(V, dtype=torch.float64)
    for x in range(V):
        accept = float(x == p[0].argmax())
        residual = torch.nn.functional.one_hot(p[0].argmax(), V).double()  # what that rule emits on reject
        law += (accept * torch.nn.functional.one_hot(torch.tensor(x), V) + (1 - accept) * residual) / V
    assert (law - p[0]).abs().sum().item() / 2 > 0.2


def _chi_square_pvalue(counts: torch.Tensor, probs: torch.Tensor) -> float:
    counts = counts.double()
    expected = probs.double() / probs.double().sum() * counts.sum()
    return stats.chisquare(counts.numpy(), expected.numpy()).pvalue


def _first_tokens(p, q, drafts, seed, greedy=False):
    n = drafts.shape[0]
    k = drafts.shape[1]
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, k + 1, generator=g)
    num, bonus = verify(p.expand(n, -1, -1), q.expand(n, -1, -1), drafts, u, greedy=greedy, backend="torch")
    return torch.where(num >= 1, drafts[:, 0], bonus), num, bonus


@pytest.mark.parametrize("k", [1, 3])
def test_first_token_chi_square(k):
    p, q = (t.float() for t in _toy(3, k=k, vocab=8))
    n = 40_000
    g = torch.Generator().manual_seed(4)
    drafts = torch.multinomial(q, n, replacement=True, generator=g).T  # (n, k), row i drawn from q_i
    first, num, _ = _first_tokens(p, q, drafts, seed=5)
    pvalue = _chi_square_pvalue(torch.bincount(first, minlength=8), p[0])
    assert pvalue > 1e-3
    # acceptance rate of the first draft = sum_x min(p, q) = 1 - TV(p, q)
    expected = torch.minimum(p[0], q[0]).sum().item()
    assert (num >= 1).double().mean().item() == pytest.approx(expected, abs=4 / n**0.5)


def test_chi_square_detects_a_biased_rule():
    """The same statistic rejects the argmax-backup rule, so the test above has power."""
    p, _ = (t.float() for t in _toy(3, k=1, vocab=8))
    n = 40_000
    g = torch.Generator().manual_seed(6)
    x = torch.randint(0, 8, (n,), generator=g)
    biased = torch.where(x == p[0].argmax(), x, p[0].argmax())
    pvalue = _chi_square_pvalue(torch.bincount(biased, minlength=8), p[0])
    assert pvalue < 1e-6


def test_bonus_after_full_acceptance_follows_last_target_row():
    p, _ = (t.float() for t in _toy(7, k=2, vocab=6))
    n = 30_000
    drafts = torch.tensor([[1, 4]]).expand(n, -1)
    q = torch.nn.functional.one_hot(drafts[0], 6).float()[None]  # point masses: accept w.p. p(x)
    _, num, bonus = _first_tokens(p, q, drafts, seed=8)
    full = num == 2
    assert full.double().mean().item() == pytest.approx((p[0, 1] * p[1, 4]).item(), abs=4 / n**0.5)
    pvalue = _chi_square_pvalue(torch.bincount(bonus[full], minlength=6), p[2])
    assert pvalue > 1e-3


def test_greedy_accepts_matching_prefix_and_returns_argmax():
    p = torch.tensor([[[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.2, 0.2, 0.6], [0.3, 0.3, 0.4]]]).expand(4, -1, -1)
    drafts = torch.tensor([[1, 0, 2], [1, 1, 2], [0, 0, 2], [1, 0, 0]])
    num, bonus = verify(p, None, drafts, torch.rand(4, 4), greedy=True)
    assert num.tolist() == [3, 1, 0, 2]
    assert bonus.tolist() == [2, 0, 1, 2]  # argmax at position num (ties would go to the first index)


def test_residual_zero_samples_from_target():
    """p_0 == q_0 and a draft of zero mass: rejected (0 < 0 is false), residual all zero -> sample from p_0."""
    p = torch.tensor([[[0.25, 0.25, 0.5, 0.0], [0.1, 0.2, 0.3, 0.4]]])
    q = p[:, :1].clone()
    num, bonus = verify_reference(p, q, torch.tensor([[3]]), torch.tensor([[0.3, 0.6]]))
    assert num.item() == 0 and bonus.item() == 2  # inverse CDF of p_0 at 0.6: cumsum 0.25, 0.5, 1.0


def test_one_hot_drafts_are_accepted_with_target_probability():
    p = torch.tensor([[[0.2, 0.7, 0.1], [0.3, 0.3, 0.4]]]).expand(2, -1, -1)
    q = torch.nn.functional.one_hot(torch.tensor([[1], [1]]), 3).float()
    num, bonus = verify(p, q, torch.tensor([[1], [1]]), torch.tensor([[0.69, 0.5], [0.71, 0.5]]))
    assert num.tolist() == [1, 0]
    # rejected at 0: residual max(0, p - delta_1) = [0.2, 0, 0.1] -> u=0.5 of 0.3 lands on index 0
    assert bonus.tolist() == [1, 0]


@pytest.mark.parametrize("bad, message", [
    ({"draft_tokens": torch.zeros(2, 3, dtype=torch.long)}, "draft_tokens must be"),
    ({"uniforms": torch.zeros(2, 2)}, "uniforms must be"),
    ({"draft_probs": torch.zeros(2, 3, 4)}, "draft_probs must be"),
    ({"draft_probs": None}, "draft_probs is required"),
    ({"target_probs": torch.zeros(2, 4)}, "target_probs must be"),
])
def test_bad_inputs_name_the_argument(bad, message):
    args = {"target_probs": torch.rand(2, 3, 4), "draft_probs": torch.rand(2, 2, 4),
            "draft_tokens": torch.zeros(2, 2, dtype=torch.long), "uniforms": torch.rand(2, 3)}
    args.update(bad)
    with pytest.raises(ValueError, match=message):
        verify(**args)


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="backend='cuda'"):
        verify(torch.rand(1, 2, 3), torch.rand(1, 1, 3), torch.zeros(1, 1, dtype=torch.long), torch.rand(1, 2),
               backend="cuda")
