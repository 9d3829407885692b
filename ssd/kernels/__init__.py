"""Triton kernels for the decode path, each beside a pure-torch reference (`*_reference`) it is tested against.

- `verify`: speculative-decoding verification (acceptance tests + residual / bonus sampling) for a batch in one launch.
- `rmsnorm`: RMSNorm with an optional fused residual add.
- `qkv_rotary`: after the fused QKV projection, QK-norm + rotary + the KV-cache write in one launch.
- `decode_attention`: attention at the true sequence length over a slot KV cache, split over the keys, with an
  optional shared prefix (speculation branches read their sequence's prefix in place).
- `swiglu`: silu(gate) * up after the fused gate-up projection.
- `bench`: `python -m ssd.kernels.bench` times every kernel against its reference on a GPU.

Kernels run on CUDA tensors, or on CPU tensors through Triton's interpreter when `TRITON_INTERPRET=1` (tests).
"""
