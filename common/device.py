"""Device and dtype choice with a clear, warned fallback to the CPU.

`choose_device("auto")` takes CUDA when torch sees a GPU, else the CPU. Asking for `cuda` on a machine without
one does not crash the run: it warns once and uses the CPU, because every experiment also has a `cpu` scale.
"""

from __future__ import annotations

import warnings

_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16", "float64": "float64", "fp64": "float64"}


def cuda_available() -> bool:
    """True when torch is installed and sees at least one CUDA device."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def choose_device(requested: str = "auto") -> str:
    """Resolve `auto`, `cpu`, `cuda` or `cuda:N` to a device string torch accepts.

    Raises ValueError for anything else; warns and returns `cpu` when CUDA is asked for but absent.
    """
    if requested == "auto":
        return "cuda" if cuda_available() else "cpu"
    if requested == "cpu":
        return "cpu"
    if requested == "cuda" or requested.startswith("cuda:"):
        if cuda_available():
            return requested
        warnings.warn(f"device={requested!r} requested but no CUDA device is visible; falling back to cpu",
                      RuntimeWarning, stacklevel=2)
        return "cpu"
    raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {requested!r}")


def choose_dtype(requested: str, device: str) -> str:
    """Resolve a dtype name (`auto`, `float32`/`fp32`, `bfloat16`/`bf16`, `float16`/`fp16`, `float64`).

    `auto` is bfloat16 on CUDA and float32 on the CPU. Half precision on the CPU warns and gives float32,
    since CPU half matmuls are slow and the CPU scale is for correctness.
    """
    if requested == "auto":
        return "bfloat16" if device.startswith("cuda") else "float32"
    if requested not in _DTYPES:
        raise ValueError(f"dtype must be one of auto, {', '.join(sorted(_DTYPES))}; got {requested!r}")
    name = _DTYPES[requested]
    if device == "cpu" and name in ("bfloat16", "float16"):
        warnings.warn(f"dtype={requested!r} on cpu falls back to float32", RuntimeWarning, stacklevel=2)
        return "float32"
    return name


def torch_dtype(name: str):
    """The torch dtype for a resolved dtype name."""
    import torch

    return getattr(torch, _DTYPES.get(name, name))


def describe_device(device: str) -> str:
    """A human-readable description for provenance, e.g. 'NVIDIA H100 80GB HBM3' or 'cpu (2 cores)'."""
    import os

    if device.startswith("cuda") and cuda_available():
        import torch

        index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
        return torch.cuda.get_device_name(index)
    return f"cpu ({os.cpu_count()} cores)"
