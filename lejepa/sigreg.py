"""SIGReg: Sketched Isotropic Gaussian Regularization (LeJEPA, Balestriero & LeCun 2025).

Embeddings (N, D) are projected on M unit directions; each 1-D projection is tested against N(0, 1) with the
Epps-Pulley statistic

    EP = N * integral_{-inf}^{inf} |ECF(t) - phi(t)|^2 w(t) dt,   ECF(t) = mean_n exp(i t x_n),
    phi(t) = exp(-t^2 / 2) (standard normal characteristic function),   w(t) = exp(-t^2 / 2),

approximated by the trapezoid rule on [0, t_max] and doubled (the integrand is even in t). SIGReg is the mean of EP
over the M directions. Under the null (x_n iid N(0, 1)) E[EP] = sum_k q_k (1 - phi(t_k)^2) w(t_k), independent of N
(see `null_expectation`); for collapsed or non-Gaussian embeddings it grows like N.

All arithmetic runs in float32 (or float64 when the input is float64), also under bf16 autocast.
"""

from __future__ import annotations

import torch
from torch import nn


def quadrature(knots: int = 17, t_max: float = 3.0, dtype: torch.dtype = torch.float32,
               device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(t (K,), q (K,)): trapezoid nodes on [0, t_max] and weights, doubled for the symmetric half-line,
    with the window w(t) = exp(-t^2/2) folded into q. sum_k q_k f(t_k) ~ integral_R f(t) w(t) dt for even f."""
    if knots < 2:
        raise ValueError(f"knots must be >= 2, got {knots}")
    if t_max <= 0:
        raise ValueError(f"t_max must be > 0, got {t_max}")
    t = torch.linspace(0.0, t_max, knots, dtype=dtype, device=device)
    dt = t_max / (knots - 1)
    q = torch.full((knots,), 2.0 * dt, dtype=dtype, device=device)
    q[0] = q[-1] = dt
    return t, q * torch.exp(-0.5 * t.square())


def epps_pulley(proj: torch.Tensor, knots: int = 17, t_max: float = 3.0) -> torch.Tensor:
    """Epps-Pulley statistic of each column of `proj` (N, M) against N(0, 1) -> (M,).

    Leading batch dimensions are allowed: (..., N, M) -> (..., M). Computed in float32 (float64 stays float64).
    """
    if proj.ndim < 2:
        raise ValueError(f"proj must have shape (..., N, M), got {tuple(proj.shape)}")
    work = torch.float64 if proj.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=proj.device.type, enabled=False):
        x = proj.to(work)
        t, q = quadrature(knots, t_max, dtype=work, device=x.device)
        xt = x.unsqueeze(-1) * t  # (..., N, M, K)
        phi = torch.exp(-0.5 * t.square())
        err = (xt.cos().mean(-3) - phi).square() + xt.sin().mean(-3).square()  # (..., M, K)
        return (err @ q) * x.shape[-2]


def sigreg(z: torch.Tensor, directions: torch.Tensor, knots: int = 17, t_max: float = 3.0) -> torch.Tensor:
    """SIGReg of embeddings `z` (..., N, D) along unit `directions` (D, M): mean Epps-Pulley statistic -> (...)."""
    if z.shape[-1] != directions.shape[0]:
        raise ValueError(f"z has D={z.shape[-1]} but directions have D={directions.shape[0]}")
    work = torch.float64 if z.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=z.device.type, enabled=False):
        proj = z.to(work) @ directions.to(work)
    return epps_pulley(proj, knots, t_max).mean(-1)


def random_directions(dim: int, num: int, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """`num` directions uniform on the unit sphere of R^dim, as columns (dim, num)."""
    gen_device = generator.device if generator is not None else device
    a = torch.randn(dim, num, generator=generator, device=gen_device, dtype=dtype)
    return (a / a.norm(dim=0, keepdim=True)).to(device)


def null_expectation(knots: int = 17, t_max: float = 3.0) -> float:
    """E[EP] for iid N(0, 1) samples under the same quadrature: sum_k q_k (1 - exp(-t_k^2)) (any N)."""
    t, q = quadrature(knots, t_max, dtype=torch.float64)
    return float((q * (1.0 - torch.exp(-t.square()))).sum())


class SIGReg(nn.Module):
    """SIGReg loss with `num_directions` fresh random unit directions per call, drawn from `generator`.

    forward(z (..., N, D)) -> scalar mean over leading dims. Pass a torch.Generator for reproducible directions;
    without one the global RNG is used.
    """

    def __init__(self, num_directions: int = 256, knots: int = 17, t_max: float = 3.0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.num_directions = num_directions
        self.knots = knots
        self.t_max = t_max
        self.generator = generator

    def forward(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        gen = generator if generator is not None else self.generator
        dirs = random_directions(z.shape[-1], self.num_directions, gen, device=z.device)
        return sigreg(z, dirs, self.knots, self.t_max).mean()

    def extra_repr(self) -> str:
        return f"num_directions={self.num_directions}, knots={self.knots}, t_max={self.t_max}"
