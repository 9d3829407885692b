"""Laplace approximation of a network's log marginal likelihood (last layer; MacKay 1992, Immer et al. 2021).

With the features phi (n, h+1) of the trained network fixed, the head W (C, h+1) gets a Gaussian prior
N(0, 1/tau I) and the Laplace evidence

    log p(D) ~= log p(y | X, W*) + log N(W* | 0, 1/tau) + P/2 log(2 pi) - 1/2 log|H|,
    H = sum_n (diag(p_n) - p_n p_n^T) kron phi_n phi_n^T + tau I      (exact GGN = Hessian for softmax CE)

(float64, NumPy). It is the marginal-likelihood proxy of Fig. 1(e) for the network: it falls when the net has
to memorise altered labels (lower likelihood under a simple head, larger weights, sharper curvature).
"""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def last_layer_log_evidence(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                            prior_precision: float) -> dict[str, float]:
    """Laplace log evidence of the head of `model` (needs `.features(x)` and a Linear `.head`), per point too."""
    model.eval()
    phi = model.features(x).double().cpu().numpy()
    phi = np.hstack([phi, np.ones((len(phi), 1))])
    head = model.head
    W = np.hstack([head.weight.double().cpu().numpy(), head.bias.double().cpu().numpy()[:, None]])
    logits = phi @ W.T
    logits -= logits.max(1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    probs = np.exp(log_probs)
    y_np = y.cpu().numpy()
    log_lik = float(log_probs[np.arange(len(y_np)), y_np].sum())
    C, H1 = W.shape
    lam = np.einsum("na,ab->nab", probs, np.eye(C)) - np.einsum("na,nb->nab", probs, probs)
    H = np.einsum("nab,ni,nj->aibj", lam, phi, phi, optimize=True).reshape(C * H1, C * H1)
    H += prior_precision * np.eye(C * H1)
    sign, logdet = np.linalg.slogdet(H)
    P = C * H1
    log_prior = -0.5 * prior_precision * float((W**2).sum()) + 0.5 * P * np.log(prior_precision / (2 * np.pi))
    evidence = log_lik + log_prior + 0.5 * P * np.log(2 * np.pi) - 0.5 * logdet
    return {"log_evidence": float(evidence), "log_evidence_per_point": float(evidence) / len(y_np),
            "log_likelihood": log_lik, "log_prior": float(log_prior), "log_det_hessian": float(logdet)}
