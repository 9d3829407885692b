"""Probing and surprise as pure functions.

- `ridge_r2`: closed-form ridge regression (float64) from latents to physical quantities, R^2 per target on
  held-out data (angles should be given as sin/cos pairs).
- `probe_targets`: angles as sin/cos pairs (a probe cannot regress a wrapped angle).
- `prediction_errors`: one-step latent prediction error ||predict(z_{t-K+1..t}, a_{t-K+1..t}) - z_{t+1}||^2 along
  episodes, with K frames of history (the training history; 1 = from each latent alone).
- `auroc`: area under the ROC curve of scores for positives vs negatives (Mann-Whitney U with ties at 1/2).
"""

from __future__ import annotations

import numpy as np
import torch


def ridge_r2(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
             ridge: float = 1e-3) -> np.ndarray:
    """R^2 per target column of a linear probe (with bias) fitted by ridge regression; features standardised."""
    x_train, x_test = np.asarray(x_train, np.float64), np.asarray(x_test, np.float64)
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-8
    a = np.c_[(x_train - mu) / sd, np.ones(len(x_train))]
    b = np.c_[(x_test - mu) / sd, np.ones(len(x_test))]
    reg = ridge * len(a) * np.eye(a.shape[1])
    reg[-1, -1] = 0.0
    w = np.linalg.solve(a.T @ a + reg, a.T @ np.asarray(y_train, np.float64))
    pred = b @ w
    y_test = np.asarray(y_test, np.float64)
    ss_res = ((y_test - pred) ** 2).sum(0)
    ss_tot = ((y_test - y_test.mean(0)) ** 2).sum(0) + 1e-12
    return 1.0 - ss_res / ss_tot


def probe_targets(states: np.ndarray, names: list[str] | tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
    """Angles (names containing 'angle' or 'yaw', or q0/q1) become sin/cos pairs; other quantities stay."""
    cols, out_names = [], []
    for i, name in enumerate(names):
        if "angle" in name or "yaw" in name or name in ("q0", "q1"):
            cols += [np.sin(states[..., i]), np.cos(states[..., i])]
            out_names += [f"sin_{name}", f"cos_{name}"]
        else:
            cols.append(states[..., i])
            out_names.append(name)
    return np.stack(cols, axis=-1), out_names


@torch.no_grad()
def prediction_errors(model, z: torch.Tensor, actions: torch.Tensor, history: int) -> torch.Tensor:
    """z (E, T+1, *S) latents of model steps, actions (E, T, A) model-step actions -> errors (E, T): the one-step
    prediction of z[:, t + 1] from the `history` latents ending at t (fewer at the start of an episode) and their
    actions, its squared error summed over the state (`model.state_cost`)."""
    e, t = actions.shape[:2]
    errors = []
    for step in range(t):
        lo = max(0, step + 1 - history)
        pred = model.rollout(z[:, lo: step + 1], actions[:, lo: step], actions[:, step: step + 1],
                             context=history)[:, 0]
        errors.append(model.state_cost(pred, z[:, step + 1]))
    return torch.stack(errors, dim=1)


def auroc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """P(score_pos > score_neg) + 0.5 P(equal)."""
    pos, neg = np.asarray(positives, np.float64), np.asarray(negatives, np.float64)
    greater = (pos[:, None] > neg[None, :]).mean()
    equal = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * equal)
