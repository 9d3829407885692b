"""Triton kernels equal their torch references, run on CPU through Triton's interpreter.

Triton chooses interpreter or compiled mode once, when it is first imported, and by the time this module runs the
test session has usually imported it already (transformers does). So the kernel tests run in one child pytest
process started with TRITON_INTERPRET=1; here each test reports the outcome of its twin there. Run this file
alone as `TRITON_INTERPRET=1 pytest tests/ssd/test_kernels.py` to execute the tests in-process.
Shapes are tiny: the interpreter is slow.
"""

import functools
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

from ssd.decoding.verification import verify, verify_reference
from ssd.kernels.launch import KernelUnavailableError, interpreter_active
from ssd.kernels.rmsnorm_rotary import rmsnorm, rmsnorm_reference, rotary, rotary_reference, rotary_tables
from ssd.kernels.verify import verify_triton

IN_INTERPRETER = interpreter_active()
_CHILD: dict[str, str] = {}


def interpreted(test):
    """Run `test` here if Triton is interpreting, else look up its outcome in the child process."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        if IN_INTERPRETER:
            return test(*args, **kwargs)
        name = os.environ["PYTEST_CURRENT_TEST"].split("::", 1)[1].rsplit(" ", 1)[0]
        outcome = _child_outcomes().get(name)
        assert outcome is not None, f"{name} did not run in the TRITON_INTERPRET=1 child process"
        assert outcome == "passed", f"{name} under TRITON_INTERPRET=1:\n{outcome}"

    return run


def _child_outcomes() -> dict[str, str]:
    if not _CHILD:
        report = Path(os.environ.get("TMPDIR", "/tmp")) / f"ssd_kernels_{os.getpid()}.xml"
        env = {**os.environ, "TRITON_INTERPRET": "1"}
        env.pop("PYTEST_ADDOPTS", None)
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=300",
                               f"--junitxml={report}", __file__], env=env, capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parents[2])
        if not report.exists():
            raise RuntimeError(f"child pytest under TRITON_INTERPRET=1 wrote no report:\n{proc.stdout[-4000:]}"
                               f"{proc.stderr[-2000:]}")
        for case in ET.parse(report).getroot().iter("testcase"):
            failure = case.find("failure")
            if failure is None:
                failure = case.find("error")
            _CHILD[case.get("name")] = "passed" if failure is None else (failure.text or "failed")[-3000:]
        report.unlink()
    return _CHILD


def _batch(seed: int, batch: int, k: int, vocab: int, draft: str):
    g = torch.Generator().manual_seed(seed)
    p = torch.softmax(torch.randn(batch, k + 1, vocab, generator=g) * 2, -1)
    if draft == "one_hot":  # greedy draft / random-token backup: point masses
        x = torch.randint(0, vocab, (batch, k), generator=g)
        q = torch.nn.functional.one_hot(x, vocab).float()
    else:  # a draft near the target, so that acceptance runs are long enough to exercise every position
        q = torch.softmax(torch.randn(batch, k, vocab, generator=g) * 2, -1) * 0.3 + p[:, :k] * 0.7
        x = torch.multinomial(q.reshape(-1, vocab), 1, generator=g).reshape(batch, k)
    if draft == "equal":
        q = p[:, :k].clone()
    u = torch.rand(batch, k + 1, generator=g)
    return p, q, x, u


@pytest.mark.parametrize("k", range(1, 8))
@pytest.mark.parametrize("draft", ["soft", "one_hot"])
@interpreted
def test_verify_kernel_equals_reference(k, draft):
    vocab = 37  # not a multiple of the 16-wide vocabulary block
    p, q, x, u = _batch(seed=10 * k, batch=4, k=k, vocab=vocab, draft=draft)
    for greedy in (False, True):
        ref = verify_reference(p, q, x, u, greedy)
        out = verify_triton(p, q, x, u, greedy, block_v=16)
        assert torch.equal(out[0], ref[0]), (greedy, out, ref)
        assert torch.equal(out[1], ref[1]), (greedy, out, ref)


@interpreted
def test_verify_kernel_covers_every_outcome():
    """Across a larger batch, every accepted length 0..K occurs, so each kernel branch was compared."""
    p, q, x, u = _batch(seed=3, batch=24, k=3, vocab=20, draft="soft")
    out = verify(p, q, x, u, backend="triton")
    ref = verify_reference(p, q, x, u)
    assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1])
    assert set(out[0].tolist()) == {0, 1, 2, 3}


@interpreted
def test_verify_kernel_equal_draft_and_ties():
    p, q, x, u = _batch(seed=5, batch=3, k=2, vocab=21, draft="equal")
    assert all(torch.equal(a, b) for a, b in zip(verify_triton(p, q, x, u, block_v=8),
                                                  verify_reference(p, q, x, u), strict=True))
    tied = torch.full((2, 3, 21), 1 / 21)  # all tied: argmax is index 0 in both, across blocks
    tied[1, :, 19] = tied[1, :, 3] = 0.2
    drafts = torch.tensor([[0, 0], [3, 19]])
    for impl in (verify_reference, lambda *a: verify_triton(*a, block_v=8)):
        num, bonus = impl(tied, None, drafts, torch.rand(2, 3), True)
        assert num.tolist() == [2, 1] and bonus.tolist() == [0, 3]


def test_triton_backend_on_cpu_needs_the_interpreter():
    if IN_INTERPRETER:
        pytest.skip("checks the error of a compiled-mode Triton; this process interprets")
    p, q, x, u = _batch(seed=0, batch=1, k=1, vocab=5, draft="soft")
    with pytest.raises(KernelUnavailableError, match="TRITON_INTERPRET=1"):
        verify(p, q, x, u, backend="triton")
    assert all(torch.equal(a, b) for a, b in zip(verify(p, q, x, u), verify_reference(p, q, x, u), strict=True))


@pytest.mark.parametrize("dim", [40, 64])
@interpreted
def test_rmsnorm_kernel_matches_reference(dim):
    g = torch.Generator().manual_seed(dim)
    x = torch.randn(3, 2, dim, generator=g)
    w = torch.randn(dim, generator=g)
    res = torch.randn(3, 2, dim, generator=g)
    torch.testing.assert_close(rmsnorm(x, w, 1e-5), rmsnorm_reference(x, w, 1e-5), atol=1e-5, rtol=1e-5)
    y, h = rmsnorm(x, w, 1e-5, residual=res)
    y_ref, h_ref = rmsnorm_reference(x, w, 1e-5, residual=res)
    torch.testing.assert_close(h, x + res, atol=0, rtol=0)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    hf = (x + res).double()  # against the definition in float64
    expected = hf / hf.pow(2).mean(-1, keepdim=True).add(1e-5).sqrt() * w.double()
    torch.testing.assert_close(y.double(), expected, atol=1e-5, rtol=1e-5)


@interpreted
def test_rotary_kernel_matches_reference_and_transformers():
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    g = torch.Generator().manual_seed(0)
    tokens, hq, hk, d = 4, 3, 1, 24  # d/2 = 12: not a power of two
    q = torch.randn(tokens, hq, d, generator=g)
    k = torch.randn(tokens, hk, d, generator=g)
    pos = torch.tensor([0, 7, 3, 15])
    cos, sin = rotary_tables(16, d, theta=500000.0)
    out_q, out_k = rotary(q, k, pos, cos, sin)
    ref_q, ref_k = rotary_reference(q, k, pos, cos, sin)
    torch.testing.assert_close(out_q, ref_q, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(out_k, ref_k, atol=1e-6, rtol=1e-6)
    full_cos = torch.cat([cos, cos], -1)[pos][None]  # HF layout: (1, T, d), q/k as (1, H, T, d)
    full_sin = torch.cat([sin, sin], -1)[pos][None]
    hf_q, hf_k = apply_rotary_pos_emb(q.transpose(0, 1)[None], k.transpose(0, 1)[None], full_cos, full_sin)
    torch.testing.assert_close(ref_q, hf_q[0].transpose(0, 1), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(ref_k, hf_k[0].transpose(0, 1), atol=1e-6, rtol=1e-6)


def test_kernel_shape_errors_are_clear():
    with pytest.raises(ValueError, match="weight must be"):
        rmsnorm_reference(torch.zeros(2, 4), torch.zeros(3))
    with pytest.raises(ValueError, match="positions must be"):
        rotary_reference(torch.zeros(2, 1, 4), torch.zeros(2, 1, 4), torch.zeros(3, dtype=torch.long),
                         *rotary_tables(8, 4))


def _on_gpu():
    if IN_INTERPRETER:
        pytest.skip("compiled kernels are tested in the parent process")


@pytest.mark.gpu
@pytest.mark.parametrize("vocab", [16384, 128256])
def test_verify_kernel_on_gpu(vocab):
    _on_gpu()
    g = torch.Generator(device="cuda").manual_seed(0)
    batch, k = 64, 7
    p = torch.softmax(torch.randn(batch, k + 1, vocab, device="cuda", generator=g) * 3, -1)
    q = torch.softmax(torch.randn(batch, k, vocab, device="cuda", generator=g) * 3, -1) * 0.2 + p[:, :k] * 0.8
    x = torch.multinomial(q.reshape(-1, vocab), 1, generator=g).reshape(batch, k)
    u = torch.rand(batch, k + 1, device="cuda", generator=g)
    num, bonus = verify(p, q, x, u)  # auto: the Triton kernel on CUDA
    ref_num, ref_bonus = verify_reference(p, q, x, u)
    assert torch.equal(num, ref_num)  # same float32 products and comparisons
    assert (bonus == ref_bonus).float().mean().item() >= 0.97  # cumulative sums may round differently
    g_num, g_bonus = verify(p, q, p[:, :k].argmax(-1), u, greedy=True)
    assert (g_num == k).all() and torch.equal(g_bonus, p[:, k].argmax(-1))


@pytest.mark.gpu
def test_rmsnorm_and_rotary_kernels_on_gpu():
    _on_gpu()
    x = torch.randn(64, 4096, device="cuda", dtype=torch.bfloat16)
    r = torch.randn_like(x)
    w = torch.randn(4096, device="cuda", dtype=torch.bfloat16)
    y, h = rmsnorm(x, w, 1e-5, residual=r)
    y_ref, h_ref = rmsnorm_reference(x, w, 1e-5, residual=r)
    assert torch.equal(h, h_ref)
    torch.testing.assert_close(y, y_ref, atol=3e-2, rtol=2e-2)
    q = torch.randn(64, 32, 128, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(64, 8, 128, device="cuda", dtype=torch.bfloat16)
    pos = torch.randint(0, 4096, (64,), device="cuda")
    cos, sin = rotary_tables(4096, 128, device="cuda")
    for out, ref in zip(rotary(q, k, pos, cos, sin), rotary_reference(q, k, pos, cos, sin), strict=True):
        torch.testing.assert_close(out, ref, atol=2e-2, rtol=2e-2)
