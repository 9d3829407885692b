"""Effective dimensionality (MacKay 1992; Maddox et al. 2020): N_eff(H, alpha) = sum_i lambda_i / (lambda_i + alpha).

Counts the directions in parameter space that the data determine (Hessian eigenvalue lambda_i >> alpha);
alpha -> 0 gives the number of positive eigenvalues (the parameter count for a full-rank Hessian), alpha -> inf
gives 0. For networks the Hessian eigenvalues come from Hessian-vector products (double backprop) and
Lanczos (SciPy eigsh, the top-k), or from the exact Hessian for very small models.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh
from torch import nn
from torch.func import functional_call


def effective_dimension(eigenvalues: np.ndarray, alpha: float) -> float:
    """sum_i max(lambda_i, 0) / (max(lambda_i, 0) + alpha), alpha > 0."""
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    lam = np.clip(np.asarray(eigenvalues, dtype=np.float64), 0.0, None)
    return float((lam / (lam + alpha)).sum())


def _flat_loss(model: nn.Module, loss: Callable[[torch.Tensor], torch.Tensor]):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    from generalization.pac_bayes.subspace import unflatten

    def value(theta: torch.Tensor) -> torch.Tensor:
        return loss(functional_call(model, unflatten(theta, names, shapes), ()))

    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    return value, theta


def hessian_eigenvalues(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_name: str = "ce",
                        top_k: int = 50, exact_below: int = 1500, seed: int = 0) -> np.ndarray:
    """Top-`top_k` eigenvalues of the Hessian of the mean training loss at the model's weights (all of them,
    exactly, when the parameter count is <= `exact_below`). Lanczos with float64 HVPs otherwise."""
    from generalization.train import loss_fn

    model = model.double()
    xd = x.double()

    class _Bound(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self) -> torch.Tensor:
            return self.inner(xd)

    wrapper = _Bound()
    value, theta = _flat_loss(wrapper, lambda logits: loss_fn(loss_name, logits, y))
    P = theta.numel()
    try:
        if exact_below >= P:
            H = torch.autograd.functional.hessian(value, theta)
            return np.sort(np.linalg.eigvalsh(H.numpy()))[::-1]
        theta = theta.requires_grad_(True)
        grad = torch.autograd.grad(value(theta), theta, create_graph=True)[0]

        def hvp(v: np.ndarray) -> np.ndarray:
            vt = torch.as_tensor(np.asarray(v).reshape(-1), dtype=torch.float64)
            return torch.autograd.grad(grad, theta, vt, retain_graph=True)[0].numpy()

        op = LinearOperator((P, P), matvec=hvp, dtype=np.float64)
        v0 = np.random.default_rng(seed).normal(size=P)
        k = min(top_k, P - 1)
        eigs = eigsh(op, k=k, which="LA", v0=v0, tol=1e-3, return_eigenvectors=False, maxiter=20 * k)
        return np.sort(eigs)[::-1]
    finally:
        model.float()


def _hessian_operator(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_name: str):
    """(hvp, P): Hessian-vector products of the mean training loss on the model's device, computed in the
    model's dtype; hvp maps a float64 (P,) tensor to a float64 (P,) tensor."""
    from generalization.pac_bayes.subspace import unflatten
    from generalization.train import loss_fn

    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).requires_grad_(True)
    value = loss_fn(loss_name, functional_call(model, unflatten(theta, names, shapes), (x.to(theta.dtype),)), y)
    grad = torch.autograd.grad(value, theta, create_graph=True)[0]

    def hvp(v: torch.Tensor) -> torch.Tensor:
        return torch.autograd.grad(grad, theta, v.to(theta.dtype), retain_graph=True)[0].detach().double()

    return hvp, theta.numel()


def lanczos(hvp: Callable[[torch.Tensor], torch.Tensor], v0: torch.Tensor, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """`steps`-step Lanczos with full reorthogonalisation from v0 (P,); returns (Ritz values (m,) ascending,
    squared first components of the Ritz vectors (m,)) of the tridiagonal T (m <= steps, fewer on breakdown)."""
    basis, alphas, betas = [v0 / v0.norm()], [], []
    for j in range(steps):
        w = hvp(basis[-1])
        alphas.append(float(w @ basis[-1]))
        Q = torch.stack(basis)
        w = w - Q.T @ (Q @ w)
        w = w - Q.T @ (Q @ w)  # twice is enough (Kahan-Parlett)
        beta = float(w.norm())
        if j == steps - 1 or beta < 1e-10:
            break
        betas.append(beta)
        basis.append(w / beta)
    k = len(alphas)
    T = np.diag(alphas) + np.diag(betas[: k - 1], 1) + np.diag(betas[: k - 1], -1)
    nodes, vecs = np.linalg.eigh(T)
    return nodes, vecs[0] ** 2


def effective_dimension_slq(model: nn.Module, x: torch.Tensor, y: torch.Tensor, alpha: float,
                            loss_name: str = "ce", probes: int = 8, steps: int = 30, seed: int = 0) -> float:
    """N_eff = tr(f(H)), f(l) = max(l, 0) / (max(l, 0) + alpha), over the *whole* Hessian spectrum, by stochastic
    Lanczos quadrature (Rademacher probes + `steps`-step Lanczos with full reorthogonalisation), float64 on the
    model's device. Unbiased in the probes, but with few steps the quadrature can put a node with a large weight
    near alpha when a huge bulk of near-zero eigenvalues sits under a few outliers: use `effective_dimension_topk`
    for large networks."""
    model = model.double()
    try:
        hvp, P = _hessian_operator(model, x, y, loss_name)
        device = next(model.parameters()).device
        gen = torch.Generator().manual_seed(seed)
        estimates = []
        for _ in range(probes):
            v = (torch.randint(0, 2, (P,), generator=gen).double() * 2 - 1).to(device)
            nodes, weights = lanczos(hvp, v, min(steps, P))
            lam = np.clip(nodes, 0.0, None)
            estimates.append(P * float((weights * lam / (lam + alpha)).sum()))
        return float(np.mean(estimates))
    finally:
        model.float()


def effective_dimension_topk(model: nn.Module, x: torch.Tensor, y: torch.Tensor, alpha: float,
                             loss_name: str = "ce", top_k: int = 100, steps: int = 0, seed: int = 0,
                             hvp_dtype: torch.dtype = torch.float32) -> dict[str, float]:
    """N_eff from the top-`top_k` Hessian eigenvalues (Maddox et al. 2020): sum_{i<=k} l_i / (l_i + alpha).

    The eigenvalues are the largest Ritz values of a `steps`-step Lanczos run (default 2k; on the model's
    device, full reorthogonalisation, Lanczos vectors in float64, Hessian-vector products in `hvp_dtype`:
    float32 by default, since float64 convolutions are ~50x slower on GPUs). It ignores the bulk below the k-th
    eigenvalue, so it is a lower bound on the full N_eff, tight when that eigenvalue is << alpha:
    `kth_over_alpha` reports l_k / alpha. With steps = k = P and float64 it is exact."""
    dtype = next(model.parameters()).dtype
    model = model.to(hvp_dtype)
    try:
        hvp, P = _hessian_operator(model, x, y, loss_name)
        device = next(model.parameters()).device
        v0 = torch.randn(P, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(device)
        nodes, _ = lanczos(hvp, v0, min(steps or 2 * top_k, P))
        top = np.clip(nodes[::-1][:top_k], 0.0, None)
        return {"effective_dim": effective_dimension(top, alpha), "top_eigenvalue": float(top[0]),
                "kth_over_alpha": float(top[-1] / alpha), "k": len(top)}
    finally:
        model.to(dtype)
