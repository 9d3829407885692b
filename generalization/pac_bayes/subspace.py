"""Training in a random subspace (Li et al. 2018; Lotfi et al. 2022): theta = theta0 + P z, z in R^d.

    net = SubspaceModel(build_model("mlp", 784, 128), d=1000, projection="kronecker", seed=0)
    logits = net(x)                         # only net.z (d,) is trainable; theta0 and P are fixed by the seed

Projections P (D, d) with (approximately) unit-norm columns:
* "dense": i.i.d. N(0, 1/D) entries; O(D d) memory, for small models and tests.
* "kronecker": P = (Q1 kron Q2)[:D, :d'] with Q1 (D1, d1), Q2 (D2, d2), D1 D2 >= D, d1 d2 >= d, entries
  N(0, 1/D1) and N(0, 1/D2); P z = vec(Q1 Z Q2^T) costs O(D sqrt(d)) time and O(sqrt(D d)) memory.
Both are full rank with probability one, so at d = D every theta is reachable (the forward pass of any network
of the same shape is reproduced).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import functional_call

PROJECTIONS = ("dense", "kronecker")


class Projection(nn.Module):
    """A fixed random linear map R^d -> R^D, seeded."""

    def __init__(self, D: int, d: int, kind: str = "kronecker", seed: int = 0) -> None:
        super().__init__()
        if kind not in PROJECTIONS:
            raise ValueError(f"unknown projection {kind!r}; expected one of {', '.join(PROJECTIONS)}")
        if not 1 <= d <= D:
            raise ValueError(f"subspace dimension d={d} must be in [1, D={D}]")
        self.D, self.d, self.kind = D, d, kind
        gen = torch.Generator().manual_seed(seed)
        if kind == "dense":
            self.register_buffer("P", torch.randn(D, d, generator=gen) / math.sqrt(D))
        else:
            D1, d1 = math.ceil(math.sqrt(D)), math.ceil(math.sqrt(d))
            D2, d2 = math.ceil(D / D1), math.ceil(d / d1)
            self.register_buffer("Q1", torch.randn(D1, d1, generator=gen) / math.sqrt(D1))
            self.register_buffer("Q2", torch.randn(D2, d2, generator=gen) / math.sqrt(D2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(d,) -> (D,)."""
        if self.kind == "dense":
            return self.P @ z
        d1, d2 = self.Q1.shape[1], self.Q2.shape[1]
        Z = torch.cat([z, z.new_zeros(d1 * d2 - self.d)]).view(d1, d2)
        return (self.Q1 @ Z @ self.Q2.T).reshape(-1)[: self.D]

    def matrix(self) -> torch.Tensor:
        """The explicit (D, d) matrix (for tests and small models)."""
        eye = torch.eye(self.d, dtype=self.Q1.dtype if self.kind == "kronecker" else self.P.dtype)
        return torch.stack([self(e) for e in eye], dim=1)


class SubspaceModel(nn.Module):
    """Wraps a network: its initial weights become the fixed theta0, only z (d,) is trained."""

    def __init__(self, base: nn.Module, d: int, projection: str = "kronecker", seed: int = 0) -> None:
        super().__init__()
        self.base = base
        self.names = [name for name, _ in base.named_parameters()]
        self.shapes = [p.shape for _, p in base.named_parameters()]
        theta0 = torch.cat([p.detach().reshape(-1) for p in base.parameters()])
        for p in base.parameters():
            p.requires_grad_(False)
        self.register_buffer("theta0", theta0)
        self.projection = Projection(theta0.numel(), d, projection, seed)
        self.z = nn.Parameter(torch.zeros(d))

    @property
    def D(self) -> int:
        return self.theta0.numel()

    def theta(self, z: torch.Tensor | None = None) -> torch.Tensor:
        return self.theta0 + self.projection(self.z if z is None else z)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        return functional_call(self.base, unflatten(self.theta(z), self.names, self.shapes), (x,))


def unflatten(theta: torch.Tensor, names: list[str], shapes: list[torch.Size]) -> dict[str, torch.Tensor]:
    """Split a flat parameter vector into a {name: tensor} dict for `functional_call`."""
    out, offset = {}, 0
    for name, shape in zip(names, shapes, strict=True):
        size = math.prod(shape)
        out[name] = theta[offset:offset + size].view(shape)
        offset += size
    return out
