"""The flat radius is where the loss has risen by epsilon along the (filter-normalised) direction."""

import numpy as np
import torch

from generalization.flatness import flat_radius
from generalization.models import build_model
from generalization.train import fit


def test_flat_radius_is_bracketed_and_restores_weights():
    torch.manual_seed(0)
    x, y = torch.randn(100, 5), torch.randint(0, 3, (100,))
    model = build_model("mlp", 5, 16, classes=3, depth=1)
    fit(model, x, y, epochs=50, batch_size=100, lr=1e-2)
    before = [p.detach().clone() for p in model.parameters()]
    radii = flat_radius(model, x, y, epsilon=0.1, directions=4, seed=0)
    assert radii.shape == (4,) and (radii > 0).all() and (radii < 10).all()
    for p, q in zip(model.parameters(), before, strict=True):
        assert torch.equal(p, q)
    small = flat_radius(model, x, y, epsilon=0.01, directions=4, seed=0)
    assert (small <= radii + 1e-9).all() and np.mean(small) < np.mean(radii)
