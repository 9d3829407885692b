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


def effective_dimension_slq(model: nn.Module, x: torch.Tensor, y: torch.Tensor, alpha: float,
                            loss_name: str = "ce", probes: int = 8, steps: int = 30, seed: int = 0) -> float:
    """N_eff = tr(f(H)), f(l) = max(l, 0) / (max(l, 0) + alpha), over the *whole* Hessian spectrum, by stochastic
    Lanczos quadrature (Rademacher probes + `steps`-step Lanczos with full reorthogonalisation), float64 on the
    model's device."""
    from generalization.pac_bayes.subspace import unflatten
    from generalization.train import loss_fn

    model = model.double()
    try:
        names = [n for n, _ in model.named_parameters()]
        shapes = [p.shape for _, p in model.named_parameters()]
        theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).requires_grad_(True)
        value = loss_fn(loss_name, functional_call(model, unflatten(theta, names, shapes), (x.double(),)), y)
        grad = torch.autograd.grad(value, theta, create_graph=True)[0]
        P = theta.numel()
        m = min(steps, P)
        gen = torch.Generator().manual_seed(seed)
        estimates = []
        for _ in range(probes):
            v = (torch.randint(0, 2, (P,), generator=gen).double() * 2 - 1) / P**0.5
            basis, alphas, betas = [v.to(theta.device)], [], []
            for j in range(m):
                w = torch.autograd.grad(grad, theta, basis[-1], retain_graph=True)[0].detach()
                alphas.append(float(w @ basis[-1]))
                Q = torch.stack(basis)
                w = w - Q.T @ (Q @ w)  # full reorthogonalisation
                beta = float(w.norm())
                if j == m - 1 or beta < 1e-10:
                    break
                betas.append(beta)
                basis.append(w / beta)
            k = len(alphas)
            T = np.diag(alphas) + np.diag(betas[: k - 1], 1) + np.diag(betas[: k - 1], -1)
            nodes, vecs = np.linalg.eigh(T)
            lam = np.clip(nodes, 0.0, None)
            estimates.append(P * float((vecs[0] ** 2 * lam / (lam + alpha)).sum()))
        return float(np.mean(estimates))
    finally:
        model.float()
