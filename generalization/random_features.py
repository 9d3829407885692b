"""Linear random-feature regression (Fig. 1g): exact double descent and effective dimensionality.

Features phi(x) = relu(W x / sqrt(F)) / sqrt(p), W (p, F) i.i.d. N(0, 1), fixed; the linear head is the
minimum-norm least-squares fit of centred one-hot labels, computed exactly from the SVD of the (n, p) feature
matrix (NumPy float64). Test error peaks at the interpolation threshold p = n and falls again for p >> n.

The training loss 1/2 ||Phi w - Y||^2 has Hessian Phi^T Phi (per output), whose eigenvalues are the squared
singular values of Phi: the effective dimensionality N_eff = sum s_i^2 / (s_i^2 + alpha) is exact.
"""

from __future__ import annotations

import numpy as np

from generalization.effective_dim import effective_dimension
from generalization.gp import centred_one_hot


def random_features(x: np.ndarray, W: np.ndarray) -> np.ndarray:
    """(n, p) ReLU random features of x (n, F) with weights W (p, F)."""
    return np.maximum(x @ W.T / np.sqrt(x.shape[1]), 0.0) / np.sqrt(W.shape[0])


def feature_draws(x: np.ndarray, x_test: np.ndarray, p: int, seeds: int, seed: int):
    """Yield (phi (n, p), phi_test (m, p)) for `seeds` draws of W; the same draws in every sweep of this module."""
    for s in range(seeds):
        W = np.random.default_rng(seed + 7919 * s + p).normal(size=(p, x.shape[1]))
        yield random_features(x, W), random_features(x_test, W)


def min_norm_fit(phi: np.ndarray, Y: np.ndarray, rcond: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """(weights (p, C), singular values) of the minimum-norm least-squares solution."""
    U, s, Vt = np.linalg.svd(phi, full_matrices=False)
    keep = s > rcond * s.max()
    weights = Vt[keep].T @ ((U[:, keep].T @ Y) / s[keep, None])
    return weights, s


def width_sweep(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, widths: list[int],
                alpha: float, seeds: int, seed: int, classes: int = 10) -> dict[str, list[float]]:
    """Train/test error and MSE and N_eff of the Hessian for each number of features p (mean over seeds)."""
    Y = centred_one_hot(y, classes)
    Y_test = centred_one_hot(y_test, classes)
    keys = ("train_error", "test_error", "train_mse", "test_mse", "effective_dim", "weight_norm")
    out: dict[str, list[float]] = {"width": list(widths), **{k: [] for k in keys}}
    for p in widths:
        rows = {k: [] for k in keys}
        for phi, phi_test in feature_draws(x, x_test, p, seeds, seed):
            weights, sv = min_norm_fit(phi, Y)
            pred, pred_test = phi @ weights, phi_test @ weights
            rows["train_error"].append(float((pred.argmax(1) != y).mean()))
            rows["test_error"].append(float((pred_test.argmax(1) != y_test).mean()))
            rows["train_mse"].append(float(((pred - Y) ** 2).sum(1).mean()))
            rows["test_mse"].append(float(((pred_test - Y_test) ** 2).sum(1).mean()))
            rows["effective_dim"].append(effective_dimension(sv**2, alpha))
            rows["weight_norm"].append(float(np.linalg.norm(weights)))
        for k in keys:
            out[k].append(float(np.mean(rows[k])))
    return out


# --- cross-entropy variant: linear softmax classifier on the same features ----------------------------------------
#
# Loss sum_i CE(W^T phi_i, y_i) + ridge/2 ||W||_F^2, W (p, C), no bias. Unlike squared loss, the Hessian of the
# CE data term depends on the fitted solution,
#     H = sum_i phi_i phi_i^T kron Lambda_i,   Lambda_i = diag(pi_i) - pi_i pi_i^T   (pi_i = softmax of the logits),
# (the Gauss-Newton matrix equals the Hessian for softmax CE), so it can shrink as the fit becomes confident.
# With vec(W) row-major (index k*C + a) and J = Phi kron I_C the logit Jacobian, H = J^T Lambda J; its non-zero
# spectrum equals that of the dual Lambda^1/2 (K kron I_C) Lambda^1/2, K = Phi Phi^T, an (nC x nC) matrix
# (further reduced to n(C-1) because every Lambda_i annihilates the all-ones vector).


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def softmax_ce_fit(phi: np.ndarray, y: np.ndarray, ridge: float, classes: int = 10, rtol: float = 1e-10,
                   max_iter: int = 200) -> dict:
    """Minimiser of sum_i CE(phi_i W, y_i) + ridge/2 ||W||^2 (float64), by trust-region Newton-CG with exact
    Hessian-vector products, deterministic, from W = 0. The ridge makes it unique and finite (also when the data
    are separable); the optimum lies in the row space of phi, so it is solved in the r = rank(phi) coordinates
    B = V^T W (phi = U S V^T): at most min(n, p) * C unknowns. Stops at ||grad|| <= rtol * ||grad at W=0|| or when
    float64 can no longer lower the objective; `converged` is ||grad|| <= 1e-7 ||grad at 0||. Returns weights (p, C),
    grad_rel (that ratio at the returned W), iterations and converged."""
    from scipy.optimize import minimize

    if ridge <= 0:
        raise ValueError(f"ridge must be > 0, got {ridge}")
    U, s, Vt = np.linalg.svd(phi, full_matrices=False)
    keep = s > 1e-12 * s.max()
    Z, V = U[:, keep] * s[keep], Vt[keep].T
    r = Z.shape[1]
    Y = np.eye(classes)[y]

    def value_grad(b: np.ndarray) -> tuple[float, np.ndarray]:
        B = b.reshape(r, classes)
        log_p = _log_softmax(Z @ B)
        return float(-(log_p * Y).sum() + 0.5 * ridge * b @ b), (Z.T @ (np.exp(log_p) - Y) + ridge * B).ravel()

    def hessp(b: np.ndarray, v: np.ndarray) -> np.ndarray:
        P = softmax(Z @ b.reshape(r, classes))
        PV = P * (Z @ v.reshape(r, classes))
        return (Z.T @ (PV - P * PV.sum(1, keepdims=True))).ravel() + ridge * v

    cache: dict[bytes, tuple[float, np.ndarray]] = {}

    def cached(b: np.ndarray) -> tuple[float, np.ndarray]:
        key = b.tobytes()
        if key not in cache:
            cache.clear()
            cache[key] = value_grad(b)
        return cache[key]

    g0 = float(np.linalg.norm(phi.T @ (1.0 / classes - Y)))
    res = minimize(lambda b: cached(b)[0], np.zeros(r * classes), jac=lambda b: cached(b)[1], hessp=hessp,
                   method="trust-ncg", options={"gtol": rtol * g0, "maxiter": max_iter})
    W = V @ res.x.reshape(r, classes)
    grad_rel = float(np.linalg.norm(phi.T @ (softmax(phi @ W) - Y) + ridge * W)) / g0
    return {"weights": W, "grad_rel": grad_rel, "iterations": int(res.nit), "converged": grad_rel <= 1e-7}


def ce_hessian_direct(phi: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """The (pC x pC) Hessian of sum_i CE in vec(W) (row-major, index k*C + a), formed explicitly (small problems)."""
    lam = np.einsum("ia,ab->iab", probs, np.eye(probs.shape[1])) - np.einsum("ia,ib->iab", probs, probs)
    p, C = phi.shape[1], probs.shape[1]
    return np.einsum("ik,il,iab->kalb", phi, phi, lam, optimize=True).reshape(p * C, p * C)


def _lambda_factor(probs: np.ndarray) -> np.ndarray:
    """F (n, C, C-1) with F_i F_i^T = Lambda_i = diag(pi_i) - pi_i pi_i^T exactly: Lambda_i = E (E^T Lambda_i E) E^T
    for an orthonormal basis E (C, C-1) of the complement of the all-ones vector, and F_i = E (E^T Lambda_i E)^1/2."""
    n, C = probs.shape
    E = np.linalg.svd(np.eye(C) - 1.0 / C)[0][:, : C - 1]
    lam = np.einsum("ia,ab->iab", probs, np.eye(C)) - np.einsum("ia,ib->iab", probs, probs)
    small = np.einsum("ca,icd,db->iab", E, lam, E)
    w, Q = np.linalg.eigh(small)
    root = np.einsum("iab,ib,icb->iac", Q, np.sqrt(np.clip(w, 0.0, None)), Q)
    return np.einsum("ca,iab->icb", E, root)


def ce_hessian_eigenvalues(phi: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """All eigenvalues of the CE Hessian that can be non-zero (descending), exactly, from the smaller of the primal
    form R^T R and the dual form R R^T, R = F^T J of shape (n(C-1), pC): the dual R R^T has blocks
    K_ij F_i^T F_j (n(C-1) x n(C-1)); the primal one has pC rows. The remaining eigenvalues are exactly zero."""
    n, p = phi.shape
    F = _lambda_factor(probs)
    m = F.shape[2]
    if p * probs.shape[1] < n * m:
        R = np.einsum("ik,icb->ibkc", phi, F).reshape(n * m, p * probs.shape[1])
        gram = R.T @ R
    else:
        Q = F.transpose(1, 0, 2).reshape(probs.shape[1], n * m)  # Q[c, (i, b)] = F_i[c, b]
        gram = (Q.T @ Q) * np.kron(phi @ phi.T, np.ones((m, m)))
    return np.sort(np.linalg.eigvalsh(gram))[::-1]


def ce_width_sweep(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, widths: list[int],
                   ridge_rel: float, seeds: int, seed: int, classes: int = 10,
                   extra_alpha: float | None = None) -> dict[str, list[float]]:
    """Linear softmax classifier on the same ReLU random features as `width_sweep` (same W draws), for each p:
    train/test error, train/test NLL (mean per point), ||W|| and the exact N_eff of the CE Hessian at the solution
    (mean over seeds). Ridge lambda = ridge_rel * mean_i ||phi_i||^2 (scale-free: a Gaussian prior N(0, 1/lambda)
    on W gives every logit a prior variance of about 1/ridge_rel, whatever p); N_eff uses alpha = lambda, the prior
    precision (MacKay 1992: the number of parameters the data determine), and optionally `extra_alpha` too.
    Raises RuntimeError if a fit does not converge (grad_rel > 1e-7)."""
    keys = ("train_error", "test_error", "train_nll", "test_nll", "effective_dim", "weight_norm", "ridge",
            "grad_rel", "iterations")
    if extra_alpha is not None:
        keys += ("effective_dim_extra_alpha",)
    out: dict[str, list[float]] = {"width": list(widths), **{k: [] for k in keys}}
    for p in widths:
        rows = {k: [] for k in keys}
        for phi, phi_test in feature_draws(x, x_test, p, seeds, seed):
            ridge = ridge_rel * float((phi**2).sum(1).mean())
            fit = softmax_ce_fit(phi, y, ridge, classes)
            if not fit["converged"]:
                raise RuntimeError(f"softmax fit at p={p} did not converge (grad_rel {fit['grad_rel']:.1e})")
            logits, logits_test = phi @ fit["weights"], phi_test @ fit["weights"]
            eigs = ce_hessian_eigenvalues(phi, softmax(logits))
            rows["train_error"].append(float((logits.argmax(1) != y).mean()))
            rows["test_error"].append(float((logits_test.argmax(1) != y_test).mean()))
            rows["train_nll"].append(float(-_log_softmax(logits)[np.arange(len(y)), y].mean()))
            rows["test_nll"].append(float(-_log_softmax(logits_test)[np.arange(len(y_test)), y_test].mean()))
            rows["effective_dim"].append(effective_dimension(eigs, ridge))
            rows["weight_norm"].append(float(np.linalg.norm(fit["weights"])))
            rows["ridge"].append(ridge)
            rows["grad_rel"].append(fit["grad_rel"])
            rows["iterations"].append(fit["iterations"])
            if extra_alpha is not None:
                rows["effective_dim_extra_alpha"].append(effective_dimension(eigs, extra_alpha))
        for k in keys:
            out[k].append(float(np.max(rows[k]) if k == "grad_rel" else np.mean(rows[k])))
    return out
