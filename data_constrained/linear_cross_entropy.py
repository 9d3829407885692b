"""Next-token losses from the last hidden states, chunk by chunk, without the (tokens, vocab) float32 logits.

A decoder's loss is CE(h W^T, y) for hidden states h (N, D), the output matrix W (V, D) and targets y (N,). Written
plainly, autograd keeps the (N, V) logits (and their float32 copy) for the backward pass: at N = 32k tokens and
V = 16k that is 2 GiB per copy. Here the rows go through in chunks of `chunk_rows`; for each chunk

    z = h_c W^T (compute dtype, then float32)     p = softmax(z)     loss_c = logsumexp(z) - z[y]
    dL/dz = (p - onehot(y)) / N                   dL/dh_c = dL/dz W  dL/dW += (dL/dz)^T h_c

so the gradients are ready when the forward pass ends and only one chunk's (chunk_rows, V) float32 buffers ever
exist. Three matrix products per chunk, as in the plain forward + backward: nothing is recomputed. The backward pass
scales the stored gradients by the incoming one (the loss is a scalar).

Distillation adds a teacher: given the teacher's log-probabilities t (rows, V) of a chunk (a callable computes them
from the teacher's own hidden states, chunk by chunk, so the teacher's logits are never whole either), the loss is

    (1 - alpha) CE(z, y) + alpha T^2 KL(softmax(t / T) || softmax(z / T)),
    d/dz = (1 - alpha) (p - onehot(y)) + alpha T (softmax(z / T) - softmax(t / T)),

the same quantity as `train.distill_kl` on full logits (tests/data_constrained/test_linear_cross_entropy.py).
`target_logprobs_chunked` scores held-out tokens the same way, in float32.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

TeacherLogprobs = Callable[[slice], torch.Tensor]  # rows -> (rows, V) float32 teacher log-probabilities
DEFAULT_CHUNK_ROWS = 4096  # (4096, 16384) float32 = 256 MiB per buffer


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, *,
                         teacher: TeacherLogprobs | None = None, alpha: float = 0.0, temperature: float = 1.0,
                         compute_dtype: torch.dtype | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                         chunk_loss: Callable | None = None) -> torch.Tensor:
    """Mean over the N rows of the loss above, a scalar float32 tensor with gradients for `hidden` and `weight`.

    hidden (N, D), weight (V, D), targets (N,) int64; `compute_dtype` is the dtype of the matrix products
    (default: hidden's; bf16 under mixed precision), their outputs are taken to float32 before any softmax.
    `teacher`: None for plain cross-entropy, else a callable rows -> (rows, V) float32 log-probabilities.
    `chunk_loss`: the per-chunk softmax arithmetic (default `chunk_loss_and_grad`; `compiled_chunk_loss()` fuses it
    into a few kernels on CUDA)."""
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(f"hidden (N, D) and weight (V, D) expected, got {tuple(hidden.shape)} and "
                         f"{tuple(weight.shape)}")
    if targets.shape != hidden.shape[:1]:
        raise ValueError(f"targets must be ({hidden.shape[0]},), got {tuple(targets.shape)}")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    return _LinearCrossEntropy.apply(hidden, weight, targets, teacher, float(alpha), float(temperature),
                                     compute_dtype or hidden.dtype, int(chunk_rows),
                                     chunk_loss or chunk_loss_and_grad)


def compiled_chunk_loss() -> Callable:
    """`chunk_loss_and_grad` through torch.compile (one fused pass over a chunk's logits instead of several)."""
    return torch.compile(chunk_loss_and_grad, dynamic=False)


@torch.no_grad()
def target_logprobs_chunked(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                            chunk_rows: int = DEFAULT_CHUNK_ROWS) -> torch.Tensor:
    """log softmax(h W^T)[y] per row, (N,) float32, computed in float32 chunk by chunk (the scoring precision)."""
    out = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
    w = weight.float()
    for rows in _chunks(hidden.shape[0], chunk_rows):
        z = hidden[rows].float() @ w.t()
        out[rows] = z.gather(-1, targets[rows, None]).squeeze(-1) - torch.logsumexp(z, dim=-1)
    return out


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, teacher, alpha, temperature, compute_dtype, chunk_rows, chunk_loss):
        n = hidden.shape[0]
        want_h, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        with torch.autocast(hidden.device.type, enabled=False):
            w = weight.to(compute_dtype)
            grad_h = torch.empty_like(hidden) if want_h else None
            grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if want_w else None
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            for rows in _chunks(n, chunk_rows):
                h = hidden[rows].to(compute_dtype)
                z = (h @ w.t()).float()
                t_logp = teacher(rows) if teacher is not None else None
                loss, grad_z = chunk_loss(z, targets[rows], t_logp, alpha, temperature)
                total += loss.sum()
                if want_h or want_w:
                    grad_z = grad_z.div_(n).to(compute_dtype)
                    if want_h:
                        grad_h[rows] = (grad_z @ w).to(hidden.dtype)
                    if want_w:
                        grad_w += (grad_z.t() @ h).float()
        ctx.save_for_backward(*(g for g in (grad_h, grad_w) if g is not None))
        ctx.which = (want_h, want_w)
        ctx.dtypes = (hidden.dtype, weight.dtype)
        return total / n

    @staticmethod
    def backward(ctx, grad_out):
        saved = list(ctx.saved_tensors)
        (want_h, want_w), (h_dtype, w_dtype) = ctx.which, ctx.dtypes
        grad_h = (saved.pop(0) * grad_out).to(h_dtype) if want_h else None
        grad_w = (saved.pop(0) * grad_out).to(w_dtype) if want_w else None
        return grad_h, grad_w, None, None, None, None, None, None, None


def chunk_loss_and_grad(z: torch.Tensor, y: torch.Tensor, teacher_logp: torch.Tensor | None, alpha: float,
                         temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row loss (R,) and its gradient in z (R, V), both float32, for logits z (R, V) float32."""
    lse = torch.logsumexp(z, dim=-1)
    ce = lse - z.gather(-1, y[:, None]).squeeze(-1)
    grad = torch.exp(z - lse[:, None])  # softmax(z)
    grad.scatter_add_(-1, y[:, None], torch.full_like(grad[:, :1], -1.0))  # softmax(z) - onehot(y)
    if teacher_logp is None or alpha == 0.0:
        return ce, grad
    t = torch.log_softmax(teacher_logp.float() / temperature, dim=-1)
    s = torch.log_softmax(z / temperature, dim=-1)
    p_t = t.exp()
    kl = (p_t * (t - s)).sum(-1) * temperature**2
    grad.mul_(1.0 - alpha).add_((s.exp() - p_t).mul_(alpha * temperature))
    return (1.0 - alpha) * ce + alpha * kl, grad


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(start, min(n, start + size)) for start in range(0, n, size)]
