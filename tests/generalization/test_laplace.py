"""Last-layer Laplace: the GGN equals the autograd Hessian of the summed CE; evidence = its formula."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from generalization.laplace import last_layer_log_evidence
from generalization.models import build_model


def test_hessian_and_evidence_match_autograd_reference():
    torch.manual_seed(0)
    model = build_model("mlp", 4, 5, classes=3, depth=1).double()
    x, y = torch.randn(25, 4, dtype=torch.float64), torch.randint(0, 3, (25,))
    tau = 0.7
    out = last_layer_log_evidence(model, x, y, tau)
    feats = model.features(x).detach()
    W0 = torch.cat([model.head.weight, model.head.bias[:, None]], 1).detach()

    def neg_log_joint(w):
        W = w.view(3, 6)
        logits = feats @ W[:, :5].T + W[:, 5]
        return F.cross_entropy(logits, y, reduction="sum") + 0.5 * tau * (w**2).sum()

    H = torch.autograd.functional.hessian(neg_log_joint, W0.reshape(-1)).numpy()
    P = 18
    log_lik = -float(F.cross_entropy(model(x).detach(), y, reduction="sum"))
    log_prior = -0.5 * tau * float((W0**2).sum()) + 0.5 * P * np.log(tau / (2 * np.pi))
    expected = log_lik + log_prior + 0.5 * P * np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(H)[1]
    assert out["log_likelihood"] == pytest.approx(log_lik, rel=1e-9)
    assert out["log_evidence"] == pytest.approx(expected, rel=1e-9)
