"""A plain training loop: minibatch (or full-batch) Adam/SGD on cross-entropy or squared loss.

    history = fit(model, x, y, epochs=100, batch_size=256, lr=1e-3)     # x (N, ...) float32, y (N,) int64

`history["loss"]` is the mean training loss of each epoch measured on the batches *before* each update, so its
sum over epochs is the "training speed" estimate of the log marginal likelihood (Lyle et al. 2020): a model
that learns the data quickly has a high (less negative) estimate.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("ce", "mse")
SCHEDULES = ("constant", "cosine")


def loss_fn(name: str, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean loss: cross-entropy, or squared error against one-hot targets (summed over classes)."""
    if name == "ce":
        return F.cross_entropy(logits, y)
    if name == "mse":
        return ((logits - F.one_hot(y, logits.shape[1]).to(logits.dtype)) ** 2).sum(1).mean()
    raise ValueError(f"unknown loss {name!r}; expected one of {', '.join(LOSSES)}")


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, batch_size: int, lr: float,
        loss: str = "ce", optimizer: str = "adam", weight_decay: float = 0.0, seed: int = 0,
        params: list[torch.nn.Parameter] | None = None, schedule: str = "constant") -> dict[str, list[float]]:
    """Train `model` (its `params`, default all) in place; returns per-epoch mean loss and error.

    `schedule`: "constant" lr, or "cosine" decay from lr to 0 over all steps of the `epochs` passes."""
    params = list(model.parameters()) if params is None else params
    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}; expected 'adam' or 'sgd'")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")
    gen = torch.Generator().manual_seed(seed)
    n = len(x)
    total_steps = epochs * math.ceil(n / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, total_steps) / total_steps)) if schedule == "cosine" else 1.0)
    history: dict[str, list[float]] = {"loss": [], "error": []}
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen) if batch_size < n else torch.arange(n)
        total, wrong = 0.0, 0
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            logits = model(x[idx])
            value = loss_fn(loss, logits, y[idx])
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            sched.step()
            total += float(value.detach()) * len(idx)
            wrong += int((logits.argmax(1) != y[idx]).sum())
        history["loss"].append(total / n)
        history["error"].append(wrong / n)
    return history


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str = "ce",
             batch_size: int = 4096) -> dict[str, float]:
    """Mean loss and 0-1 error of `model` on (x, y)."""
    model.eval()
    total, wrong = 0.0, 0
    for start in range(0, len(x), batch_size):
        logits = model(x[start:start + batch_size])
        total += float(loss_fn(loss, logits, y[start:start + batch_size])) * len(logits)
        wrong += int((logits.argmax(1) != y[start:start + batch_size]).sum())
    return {"loss": total / len(x), "error": wrong / len(x)}
