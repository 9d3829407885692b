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
from ssd.kernels.decode_attention import decode_attention, decode_attention_reference
from ssd.kernels.launch import KernelUnavailableError, interpreter_active
from ssd.kernels.qkv_rotary import qkv_rotary_cache, qkv_rotary_cache_reference, rotary_tables
from ssd.kernels.rmsnorm import rmsnorm, rmsnorm_reference
from ssd.kernels.swiglu import silu_mul, silu_mul_reference
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


def _qkv_case(seed: int, tokens: int, hq: int, hk: int, d: int, slots: int = 3, length: int = 16):
    g = torch.Generator().manual_seed(seed)
    qkv = torch.randn(tokens, (hq + 2 * hk) * d, generator=g)
    pos = torch.randperm(length, generator=g)[:tokens]
    rows = torch.randint(0, slots, (tokens,), generator=g)
    return qkv, pos, rows, torch.full((slots, hk, length, d), float("nan"))


@pytest.mark.parametrize("qk_norm", [False, True])
@interpreted
def test_qkv_rotary_cache_kernel_matches_reference_and_transformers(qk_norm):
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    tokens, hq, hk, d = 4, 3, 1, 24  # d/2 = 12: not a power of two
    qkv, pos, rows, poison = _qkv_case(0, tokens, hq, hk, d)
    cos, sin = rotary_tables(16, d, theta=500000.0)
    norms = (torch.rand(d) + 0.5, torch.rand(d) + 0.5) if qk_norm else (None, None)
    caches = [poison.clone() for _ in range(4)]
    q = qkv_rotary_cache(qkv, pos, rows, cos, sin, caches[0], caches[1], hq, hk, *norms, eps=1e-6)
    q_ref = qkv_rotary_cache_reference(qkv, pos, rows, cos, sin, caches[2], caches[3], hq, hk, *norms, eps=1e-6)
    torch.testing.assert_close(q, q_ref, atol=1e-6, rtol=1e-6)
    for out, ref in zip(caches[:2], caches[2:], strict=True):  # same entries written, the rest left untouched
        torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6, equal_nan=True)
        assert out.isfinite().sum() == tokens * hk * d
    if qk_norm:
        return
    _, k, v = qkv.view(tokens, hq + 2 * hk, d).split([hq, hk, hk], dim=1)
    full_cos = torch.cat([cos, cos], -1)[pos][None]  # HF layout: (1, T, d), q/k as (1, H, T, d)
    full_sin = torch.cat([sin, sin], -1)[pos][None]
    hf_q, hf_k = apply_rotary_pos_emb(qkv[:, :hq * d].view(tokens, hq, d).transpose(0, 1)[None],
                                      k.transpose(0, 1)[None], full_cos, full_sin)
    torch.testing.assert_close(q_ref, hf_q[0].transpose(0, 1), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(caches[2][rows, :, pos], hf_k[0].transpose(0, 1), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(caches[3][rows, :, pos], v, atol=0, rtol=0)


def _attention_case(seed: int, b: int, t: int, hq: int, hk: int, d: int, length: int, prefix: bool):
    g = torch.Generator().manual_seed(seed)
    slots = 2 * b + 1
    q = torch.randn(b, t, hq, d, generator=g)
    k = torch.randn(slots, hk, length, d, generator=g)
    v = torch.randn(slots, hk, length, d, generator=g)
    rows = torch.randperm(slots, generator=g)[:b]
    last = torch.randint(t, length, (b,), generator=g)
    pos = last[:, None] - t + 1 + torch.arange(t)  # each row's T tokens end at a random position
    extra = {}
    if prefix:
        extra = {"prefix_slots": torch.randperm(slots, generator=g)[:b],
                 "prefix_lens": torch.randint(0, length, (b,), generator=g)}
    return q, k, v, rows, pos, extra


def _sdpa_float64(q, k, v, rows, pos, prefix_slots=None, prefix_lens=None):
    """The definition, independently: gather each row's keys position by position, SDPA with a boolean mask."""
    b, t, hq, d = q.shape
    length = k.shape[2]
    src = rows[:, None].expand(b, length).clone()
    if prefix_slots is not None:
        shared = torch.arange(length)[None] < prefix_lens[:, None]
        src = torch.where(shared, prefix_slots[:, None], src)
    keys = k[src, :, torch.arange(length)[None]].permute(0, 2, 1, 3).double()  # (B, Hkv, L, d)
    values = v[src, :, torch.arange(length)[None]].permute(0, 2, 1, 3).double()
    group = hq // k.shape[1]
    mask = torch.arange(length)[None, None, None] <= pos[:, None, :, None]
    out = torch.nn.functional.scaled_dot_product_attention(
        q.double().transpose(1, 2), keys.repeat_interleave(group, 1), values.repeat_interleave(group, 1),
        attn_mask=mask)
    return out.transpose(1, 2)


@pytest.mark.parametrize("t,hq,hk,d", [(1, 4, 2, 16), (4, 4, 1, 24), (3, 2, 2, 8)])
@pytest.mark.parametrize("prefix", [False, True])
@interpreted
def test_decode_attention_kernel_matches_the_definition(t, hq, hk, d, prefix):
    b, length = 3, 300  # 300 keys: two splits of 256, the second partly past every row's end
    q, k, v, rows, pos, extra = _attention_case(7 * t + d, b, t, hq, hk, d, length, prefix)
    expected = _sdpa_float64(q, k, v, rows, pos, **extra)
    ref = decode_attention_reference(q, k, v, rows, pos, **extra)
    torch.testing.assert_close(ref.double(), expected, atol=1e-5, rtol=1e-5)
    locks = torch.zeros(2 * b * hk, dtype=torch.int32)
    for _ in range(2):  # a second launch reuses the counters the first one left at zero
        out = decode_attention(q, k, v, rows, pos, locks, **extra)
        torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=1e-5)
        assert not locks.any()


@interpreted
def test_decode_attention_one_split_and_short_rows():
    q, k, v, rows, pos, _ = _attention_case(1, 2, 2, 4, 2, 16, 40, prefix=False)
    pos[0] = torch.tensor([0, 1])  # a row that sees one and two keys
    out = decode_attention(q, k, v, rows, pos, torch.zeros(8, dtype=torch.int32))
    torch.testing.assert_close(out.double(), _sdpa_float64(q, k, v, rows, pos), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[0, 0], v[rows[0], :, 0].repeat_interleave(2, 0), atol=1e-6, rtol=1e-6)


@interpreted
def test_silu_mul_kernel_matches_reference():
    x = torch.randn(3, 2 * 1100, generator=torch.Generator().manual_seed(0))  # 1100: two blocks, ragged
    torch.testing.assert_close(silu_mul(x), silu_mul_reference(x), atol=1e-6, rtol=1e-6)
    gate, up = x.double().chunk(2, -1)
    torch.testing.assert_close(silu_mul(x).double(), gate * torch.sigmoid(gate) * up, atol=1e-5, rtol=1e-5)


def test_kernel_shape_errors_are_clear():
    with pytest.raises(ValueError, match="weight must be"):
        rmsnorm_reference(torch.zeros(2, 4), torch.zeros(3))
    with pytest.raises(ValueError, match="positions and slots must be"):
        qkv_rotary_cache(torch.zeros(2, 12), torch.zeros(3, dtype=torch.long), torch.zeros(2, dtype=torch.long),
                         *rotary_tables(8, 4), torch.zeros(1, 1, 8, 4), torch.zeros(1, 1, 8, 4), 1, 1)
    with pytest.raises(ValueError, match="exceed"):
        decode_attention(torch.zeros(1, 40, 8, 16), torch.zeros(1, 2, 64, 16), torch.zeros(1, 2, 64, 16),
                         torch.zeros(1, dtype=torch.long), torch.zeros(1, 40, dtype=torch.long),
                         torch.zeros(4, dtype=torch.int32))
    with pytest.raises(ValueError, match="gate_up must be"):
        silu_mul(torch.zeros(2, 3))


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
    qkv = torch.randn(64, 48 * 128, device="cuda", dtype=torch.bfloat16)
    pos = torch.randint(0, 4096, (64,), device="cuda")
    rows = torch.randperm(64, device="cuda")
    cos, sin = rotary_tables(4096, 128, device="cuda")
    caches = [torch.zeros(64, 8, 4096, 128, device="cuda", dtype=torch.bfloat16) for _ in range(4)]
    q = qkv_rotary_cache(qkv, pos, rows, cos, sin, caches[0], caches[1], 32, 8)
    q_ref = qkv_rotary_cache_reference(qkv, pos, rows, cos, sin, caches[2], caches[3], 32, 8)
    for out, ref in [(q, q_ref), (caches[0], caches[2]), (caches[1], caches[3])]:
        torch.testing.assert_close(out, ref, atol=2e-2, rtol=2e-2)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_decode_attention_kernel_on_gpu(dtype):
    _on_gpu()
    for b, t, prefix in [(1, 1, False), (1, 8, False), (24, 2, True), (16, 8, True)]:
        q, k, v, rows, pos, extra = _attention_case(b * t, b, t, 32, 8, 64, 1100, prefix)
        q, k, v, rows, pos = (x.cuda() for x in (q, k, v, rows, pos))
        extra = {key: x.cuda() for key, x in extra.items()}
        locks = torch.zeros(2 * b * 8, dtype=torch.int32, device="cuda")
        out = decode_attention(q.to(dtype), k.to(dtype), v.to(dtype), rows, pos, locks, **extra)
        expected = _sdpa_float64(q.cpu(), k.cpu(), v.cpu(), rows.cpu(), pos.cpu(),
                                 **{key: x.cpu() for key, x in extra.items()})
        tol = 1e-5 if dtype == torch.float32 else 3e-2
        torch.testing.assert_close(out.double().cpu(), expected, atol=tol, rtol=tol)
        assert not locks.any()


@interpreted
def test_emit_kernel_matches_reference():
    from ssd.kernels.emit import emit, emit_reference

    g = torch.Generator().manual_seed(0)
    rows, width, capacity = 9, 5, 12
    new = torch.randint(0, 6, (rows, width), generator=g)
    count = torch.randint(0, width + 1, (rows,), generator=g)
    length = torch.randint(1, 8, (rows,), generator=g)
    limit = length + torch.randint(0, 5, (rows,), generator=g)
    done = torch.rand(rows, generator=g) < 0.2
    stop_ids = torch.tensor([3, 5] + [-1] * 14)
    tokens = torch.randint(0, 6, (rows, capacity), generator=g)
    state = [tokens, length, limit, done, stop_ids, torch.full((rows, width + 3), 7)]
    fast, ref = [[t.clone() for t in state] for _ in range(2)]
    emit(new, count, fast[0], fast[1], fast[2], fast[3], fast[4], fast[5])
    emit_reference(new, count, ref[0], ref[1], ref[2], ref[3], ref[4], ref[5])
    for a, b in zip(fast, ref, strict=True):
        assert torch.equal(a, b)
    kept = ref[5][:, width]
    assert (kept <= count).all() and (kept[done] == 0).all() and (ref[1] <= limit.clamp_min(length)).all()
    assert ref[5][:, -1].eq(7).all()  # the aux column is left alone


@interpreted
def test_argmax_kernel_matches_torch_with_ties():
    from ssd.kernels.argmax import BLOCK, argmax

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 2 * BLOCK + 17, generator=g)
    logits[1, 5] = logits[1, BLOCK + 3] = logits[1, -1] = 50.0  # a tie across blocks: the first index wins
    logits[2] = 0.0  # all tied
    assert torch.equal(argmax(logits), logits.argmax(-1))
    assert argmax(logits).tolist()[1:] == [5, 0]
    assert torch.equal(argmax(logits.view(3, 1, -1).to(torch.bfloat16)), logits.to(torch.bfloat16).argmax(-1)[:, None])


@pytest.mark.parametrize("m,n,k", [(1, 40, 300), (5, 16, 64), (16, 33, 257)])
@interpreted
def test_skinny_gemm_matches_float64(m, n, k):
    from ssd.kernels.skinny_gemm import skinny_gemm

    g = torch.Generator().manual_seed(m * n)
    x, w, r = torch.randn(m, k, generator=g), torch.randn(n, k, generator=g), torch.randn(m, n, generator=g)
    expected = x.double() @ w.double().t()
    torch.testing.assert_close(skinny_gemm(x, w, block_k=64).double(), expected, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(skinny_gemm(x, w, r, block_k=128).double(), expected + r.double(), atol=1e-4,
                               rtol=1e-5)
