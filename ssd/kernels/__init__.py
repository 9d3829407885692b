"""Triton kernels for the decode path, each beside a pure-torch reference (`*_reference`) it is tested against.

- `verify`: speculative-decoding verification (acceptance tests + residual / bonus sampling) for a batch in one launch.
- `rmsnorm_rotary`: RMSNorm with an optional fused residual add, and rotary position embedding of q and k.
- `bench`: `python -m ssd.kernels.bench` times every kernel against its reference on a GPU.

Kernels run on CUDA tensors, or on CPU tensors through Triton's interpreter when `TRITON_INTERPRET=1` (tests).
"""
