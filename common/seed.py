"""Deterministic seeding of Python, NumPy, and (if imported by the caller's package) torch and JAX."""

from __future__ import annotations

import os
import random
import sys

import numpy as np


def seed_everything(seed: int, deterministic_torch: bool = False) -> np.random.Generator:
    """Seed `random`, NumPy's legacy global RNG and torch (CPU and CUDA) when torch is importable.

    Returns a fresh `np.random.Generator(PCG64(seed))` that callers should prefer over global state.
    With `deterministic_torch`, torch is asked for deterministic kernels (slower on GPU).
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if "torch" in sys.modules or _importable("torch"):
        import torch

        torch.manual_seed(seed)
        if deterministic_torch:
            torch.use_deterministic_algorithms(True, warn_only=True)
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return np.random.default_rng(seed)


def jax_key(seed: int):
    """A `jax.random.key(seed)`; JAX has no global RNG, so JAX code threads this key explicitly."""
    import jax

    return jax.random.key(seed)


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
