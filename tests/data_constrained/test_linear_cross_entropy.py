"""The chunked output-layer loss against the plain full-logits computation: loss and both gradients, with and
without a distillation teacher, any chunk size; scoring in float32."""

import pytest
import torch
import torch.nn.functional as F

from data_constrained.linear_cross_entropy import linear_cross_entropy, target_logprobs_chunked
from data_constrained.train import distill_kl


def _inputs(n=37, d=8, v=29, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(v, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, v, (n,), generator=g)
    return h, w, y


def _grads(loss_fn, h, w):
    h, w = h.clone().requires_grad_(), w.clone().requires_grad_()
    loss = loss_fn(h, w)
    (2.5 * loss).backward()
    return loss.item(), h.grad, w.grad


@pytest.mark.parametrize("chunk_rows", [1, 5, 37, 100])
def test_cross_entropy_and_gradients_match_full_logits(chunk_rows):
    h, w, y = _inputs()
    ours = _grads(lambda h, w: linear_cross_entropy(h, w, y, chunk_rows=chunk_rows), h, w)
    ref = _grads(lambda h, w: F.cross_entropy(h @ w.t(), y), h, w)
    assert ours[0] == pytest.approx(ref[0], abs=1e-6)
    assert torch.allclose(ours[1], ref[1], atol=1e-6) and torch.allclose(ours[2], ref[2], atol=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_distillation_loss_and_gradients_match_full_logits(temperature):
    h, w, y = _inputs(seed=1)
    teacher = torch.log_softmax(torch.randn(37, 29, dtype=torch.float64), -1)
    alpha = 0.7

    def ours_fn(h, w):
        return linear_cross_entropy(h, w, y, teacher=lambda rows: teacher[rows], alpha=alpha,
                                    temperature=temperature, chunk_rows=6)

    def ref_fn(h, w):
        z = h @ w.t()
        return (1 - alpha) * F.cross_entropy(z, y) + alpha * distill_kl(z[None], teacher[None], temperature)

    ours, ref = _grads(ours_fn, h, w), _grads(ref_fn, h, w)
    assert ours[0] == pytest.approx(ref[0], abs=1e-6)
    assert torch.allclose(ours[1], ref[1], atol=1e-6) and torch.allclose(ours[2], ref[2], atol=1e-6)


def test_chunked_scoring_is_float32_log_softmax_of_the_targets():
    h, w, y = _inputs(seed=2)
    got = target_logprobs_chunked(h.float(), w.float(), y, chunk_rows=4)
    assert got.dtype == torch.float32
    want = torch.log_softmax(h @ w.t(), -1).gather(-1, y[:, None]).squeeze(-1)
    assert torch.allclose(got.double(), want, atol=1e-5)


def test_bad_shapes_are_named():
    h, w, y = _inputs()
    with pytest.raises(ValueError, match="targets must be"):
        linear_cross_entropy(h, w, y[:-1])
    with pytest.raises(ValueError, match=r"hidden \(N, D\) and weight \(V, D\)"):
        linear_cross_entropy(h, w[:, :-1], y)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_bf16_fused_loss_matches_full_logits_and_compiles():
    from data_constrained.linear_cross_entropy import compiled_chunk_loss

    g = torch.Generator(device="cuda").manual_seed(0)
    h = torch.randn(8192, 256, device="cuda", generator=g)
    w = torch.randn(16384, 256, device="cuda", generator=g) * 0.05
    y = torch.randint(0, 16384, (8192,), device="cuda", generator=g)
    for chunk_loss in (None, compiled_chunk_loss()):
        ours = _grads(lambda h, w, fn=chunk_loss: linear_cross_entropy(h, w, y, compute_dtype=torch.bfloat16,
                                                                       chunk_rows=3000, chunk_loss=fn), h, w)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            ref = _grads(lambda h, w: F.cross_entropy((h @ w.t()).float(), y), h, w)
        assert ours[0] == pytest.approx(ref[0], rel=1e-3)
        assert torch.allclose(ours[1], ref[1], rtol=0.05, atol=1e-4)
        assert torch.allclose(ours[2], ref[2], rtol=0.05, atol=1e-4)
