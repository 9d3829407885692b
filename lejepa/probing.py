"""Probing and surprise as pure functions.

- `ridge_r2`: closed-form ridge regression (float64) from latents to physical quantities, R^2 per target on
  held-out data (angles should be given as sin/cos pairs).
- `prediction_errors`: one-step latent prediction error ||predictor(z_t, a_t) - z_{t+1}||^2 along episodes.
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


@torch.no_grad()
def prediction_errors(predictor, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """z (E, T+1, D), actions (E, T, A) -> errors (E, T): one-step prediction from each latent alone (context 1)."""
    e, t, d = z.shape[0], actions.shape[1], z.shape[2]
    pred = predictor(z[:, :-1].reshape(e * t, 1, d), actions.reshape(e * t, 1, -1)).view(e, t, d)
    return (pred - z[:, 1:]).square().sum(-1)


def auroc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """P(score_pos > score_neg) + 0.5 P(equal)."""
    pos, neg = np.asarray(positives, np.float64), np.asarray(negatives, np.float64)
    greater = (pos[:, None] > neg[None, :]).mean()
    equal = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * equal)
