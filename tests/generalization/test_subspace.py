"""theta = theta0 + P z: at d = D every network of the same shape is reproduced; the Kronecker map is exact."""

import pytest
import torch

from generalization.models import build_model, count_parameters
from generalization.pac_bayes.subspace import Projection, SubspaceModel


@pytest.mark.parametrize("kind", ["dense", "kronecker"])
def test_full_dimension_reproduces_any_network(kind):
    torch.manual_seed(0)
    target = build_model("mlp", 6, 5, classes=3, depth=1).double()
    base = build_model("mlp", 6, 5, classes=3, depth=1).double()
    D = count_parameters(base)
    net = SubspaceModel(base, D, kind, seed=1).double()
    theta_target = torch.cat([p.detach().reshape(-1) for p in target.parameters()])
    P = net.projection.matrix().double()
    assert torch.linalg.matrix_rank(P) == D
    with torch.no_grad():
        net.z.copy_(torch.linalg.solve(P, theta_target - net.theta0))
    x = torch.randn(10, 6, dtype=torch.float64)
    torch.testing.assert_close(net(x), target(x), rtol=1e-8, atol=1e-8)


def test_zero_z_is_the_base_network():
    torch.manual_seed(0)
    base = build_model("resmlp", 8, 7, classes=4, depth=1)
    reference = build_model("resmlp", 8, 7, classes=4, depth=1)
    reference.load_state_dict(base.state_dict())
    net = SubspaceModel(base, 20, "kronecker", seed=0)
    x = torch.randn(5, 8)
    torch.testing.assert_close(net(x), reference(x))
    assert [p for p in net.parameters() if p.requires_grad] == [net.z]


def test_kronecker_projection_equals_explicit_kron():
    proj = Projection(D=12, d=6, kind="kronecker", seed=3)  # D1=4, D2=3; d1=3, d2=2
    full = torch.kron(proj.Q1, proj.Q2)[:12, :6]
    z = torch.randn(6)
    torch.testing.assert_close(proj(z), full @ z)
    # columns have about unit norm
    big = Projection(D=40000, d=100, kind="kronecker", seed=0).matrix()
    assert big.norm(dim=0).mean() == pytest.approx(1.0, abs=0.05)


def test_bad_projection_arguments():
    with pytest.raises(ValueError, match="unknown projection"):
        Projection(10, 5, "fastfood")
    with pytest.raises(ValueError, match="subspace dimension"):
        Projection(10, 11)
