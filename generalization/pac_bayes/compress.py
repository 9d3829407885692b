"""The compression-bound pipeline for one model: subspace training -> quantization -> arithmetic code -> bound.

    out = compress_and_bound(build_model("mlp", 784, 128), x, y, x_test, y_test, cfg=CompressionSettings(d=1000))

The code of a hypothesis is prefix-free: Elias-delta(d), Elias-delta(L), Elias-delta(count_l + 1) for each
level (the static model), L float16 centroids, then the arithmetic-coded assignments. The architecture, the
projection seed and theta0 are fixed before seeing data (part of the prior); the choices of width, d and L
from the experiment's grid are paid for by `n_hypers` in the union bound. The code is decoded back and must
equal the assignments, and the reported train error is that of the decoded hypothesis on all n training points.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from generalization.models import count_parameters
from generalization.pac_bayes.arithmetic_coding import (
    StaticModel,
    decode,
    empirical_entropy_bits,
    encode,
    static_header_bits,
)
from generalization.pac_bayes.bounds import bound_from_code, elias_delta_bits
from generalization.pac_bayes.quantize import QuantizedSubspace
from generalization.pac_bayes.subspace import SubspaceModel
from generalization.train import evaluate, fit


@dataclass
class CompressionSettings:
    d: int = 1000
    projection: str = "kronecker"
    levels: int = 16
    epochs: int = 3
    batch_size: int = 256
    lr: float = 0.05
    schedule: str = "constant"  # lr schedule of the subspace training: "constant" or "cosine" (to 0)
    qat_epochs: int = 1
    qat_lr: float = 0.01
    fit_samples: int = 0  # train on a random subset of this size (0: all); the bound still uses all n points
    delta: float = 0.05
    n_hypers: int = 1
    seed: int = 0


def code_length_bits(idx: np.ndarray, levels: int) -> dict[str, float]:
    """Prefix-free code of the assignments `idx` (d,) with L=`levels`; returns the parts and the total.

    Runs the real coder and decodes the message back (raises if it does not round-trip).
    """
    counts = np.bincount(idx, minlength=levels)
    bits = encode(idx.tolist(), StaticModel(counts))
    if decode(bits, len(idx), StaticModel(counts)) != idx.tolist():
        raise RuntimeError("arithmetic code did not decode back to the quantized weights")
    header = elias_delta_bits(len(idx)) + elias_delta_bits(levels) + static_header_bits(counts)
    centroid_bits = 16 * levels
    return {"body_bits": len(bits), "header_bits": header, "centroid_bits": centroid_bits,
            "entropy_bits": empirical_entropy_bits(idx), "total_bits": len(bits) + header + centroid_bits}


def compress_and_bound(model: nn.Module, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor,
                       y_test: torch.Tensor, cfg: CompressionSettings) -> dict[str, float]:
    """Train `model` in a d-dim subspace on (x, y), quantize, code and bound; every number for the report."""
    start = time.perf_counter()
    D = count_parameters(model)
    torch.manual_seed(cfg.seed)
    net = SubspaceModel(model, min(cfg.d, D), cfg.projection, cfg.seed).to(x.device)
    if 0 < cfg.fit_samples < len(x):
        pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(cfg.seed))[: cfg.fit_samples]
        x_fit, y_fit = x[pick.to(x.device)], y[pick.to(x.device)]
    else:
        x_fit, y_fit = x, y
    fit(net, x_fit, y_fit, cfg.epochs, cfg.batch_size, cfg.lr, params=[net.z], seed=cfg.seed, schedule=cfg.schedule)
    float_train, float_test = evaluate(net, x, y)["error"], evaluate(net, x_test, y_test)["error"]
    quant = QuantizedSubspace(net, cfg.levels)
    if cfg.qat_epochs:
        fit(quant, x_fit, y_fit, cfg.qat_epochs, cfg.batch_size, cfg.qat_lr, params=[net.z, quant.centroids],
            seed=cfg.seed + 1)
    idx, centroids = quant.export()
    code = code_length_bits(idx, cfg.levels)
    with torch.no_grad():
        net.z.copy_(torch.as_tensor(centroids.astype(np.float32), device=x.device)[torch.as_tensor(idx, device=x.device)])
    train_err, test_err = evaluate(net, x, y)["error"], evaluate(net, x_test, y_test)["error"]
    bound = bound_from_code(train_err, code["total_bits"], len(x), cfg.delta, cfg.n_hypers)
    return {"D": D, "d": net.projection.d, "levels": cfg.levels, "float_train_error": float_train,
            "float_test_error": float_test, "train_error": train_err, "test_error": test_err, **code,
            **{k: v for k, v in bound.items() if k not in ("train_error", "code_bits")},
            "wall_s": time.perf_counter() - start}
