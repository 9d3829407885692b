"""Compile Triton kernels on first use, for the GPU or for Triton's CPU interpreter.

Triton fixes its mode when it is first imported: with `TRITON_INTERPRET=1` in the environment at that moment, its
own library functions (`tl.sum`, `tl.cumsum`, ...) and every kernel run in the NumPy interpreter on CPU tensors;
otherwise kernels compile for CUDA. Kernels here are plain functions compiled by `kernel_for(fn, device)` in the
mode the imported Triton is in, with a clear error when CPU tensors meet a compiled-mode Triton.
Tests run the interpreter in a subprocess started with `TRITON_INTERPRET=1` (see tests/ssd/test_kernels.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_COMPILED: dict[Callable, Any] = {}


class KernelUnavailableError(RuntimeError):
    """A Triton kernel was asked for where it cannot run (no Triton, or CPU tensors without the interpreter)."""


def triton_available() -> bool:
    """True when Triton imports."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def interpreter_active() -> bool:
    """True when the imported Triton is in interpreter mode (TRITON_INTERPRET=1 was set before it was imported)."""
    import triton.language.standard as standard
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(standard.sum, InterpretedFunction)


def kernel_for(fn: Callable, device: Any) -> Any:
    """`fn` compiled with `triton.jit` for tensors on `device` (CUDA, or CPU under Triton's interpreter).

    Raises KernelUnavailableError when Triton is missing, or for CPU tensors when Triton is not interpreting.
    """
    if not triton_available():
        raise KernelUnavailableError(f"kernel {fn.__name__} needs the `triton` package, which does not import")
    interpret = interpreter_active()
    if str(device).split(":")[0] != "cuda" and not interpret:
        raise KernelUnavailableError(
            f"kernel {fn.__name__} got tensors on {device}; Triton kernels run on CUDA, or on CPU under Triton's "
            "interpreter, which needs TRITON_INTERPRET=1 in the environment before triton is first imported "
            "(or use the torch reference: backend='torch')")
    if fn not in _COMPILED:
        import triton

        with triton.knobs.runtime.scope():
            triton.knobs.runtime.interpret = interpret
            _COMPILED[fn] = triton.jit(fn)
    return _COMPILED[fn]


def next_power_of_2(n: int) -> int:
    """The smallest power of two >= n (n >= 1)."""
    return 1 << max(0, int(n) - 1).bit_length()
