"""SIGReg cost: `python -m lejepa.bench [--device auto]` -> experiments/lejepa/results/bench_<scale>.json.

Times forward+backward of SIGReg (trapezoid quadrature, O(N M K)) against the exact Epps-Pulley closed form
(pairwise, O(N^2 M)) on the same projections, for growing batch size N; prints the ratio exact / quadrature.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from common.device import choose_device, describe_device
from common.results import write_result
from lejepa.sigreg import epps_pulley, random_directions


def exact_epps_pulley(proj: torch.Tensor) -> torch.Tensor:
    """Closed-form EP statistic per column of proj (N, M), pairwise in N (the baseline)."""
    n = proj.shape[0]
    diff = proj[:, None, :] - proj[None, :, :]
    pair = torch.exp(-0.5 * diff.square()).sum((0, 1)) * math.sqrt(2 * math.pi) / n
    single = torch.exp(-0.25 * proj.square()).sum(0) * 2 * math.sqrt(math.pi)
    return pair - single + n * math.sqrt(2 * math.pi / 3)


def time_fn(fn, proj: torch.Tensor, repeats: int) -> float:
    for _ in range(2):
        fn(proj).sum().backward()
    if proj.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn(proj).sum().backward()
    if proj.is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats * 1e3


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dim", type=int, default=192)
    parser.add_argument("--directions", type=int, default=256)
    parser.add_argument("--sizes", default="128,256,512")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    device = choose_device(args.device)
    scale = "gpu" if device.startswith("cuda") else "cpu"
    gen = torch.Generator(device="cpu").manual_seed(0)
    dirs = random_directions(args.dim, args.directions, gen).to(device)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        z = torch.randn(n, args.dim, generator=gen).to(device)
        proj = (z @ dirs).detach().requires_grad_(True)
        quad = time_fn(epps_pulley, proj, args.repeats)
        exact = time_fn(exact_epps_pulley, proj, args.repeats)
        rows.append({"N": n, "quadrature_ms": quad, "exact_pairwise_ms": exact, "ratio_exact_over_quad": exact / quad})
        print(f"N={n:5d}  quadrature {quad:8.2f} ms  exact pairwise {exact:8.2f} ms  ratio {exact / quad:6.1f}x")
    metrics = {"rows": rows, "dim": args.dim, "directions": args.directions, "knots": 17}
    write_result("lejepa", "bench", scale, metrics, paper={"note": "no timing reported in the paper"},
                 config=vars(args), device=describe_device(device))
    return metrics


if __name__ == "__main__":
    main()
