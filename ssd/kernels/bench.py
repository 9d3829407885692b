"""Time every Triton kernel against its torch reference on a GPU: `python -m ssd.kernels.bench [--quick]`.

Writes experiments/ssd/results/kernels_gpu.json (`--only gemm`: kernels_gemm_gpu.json) (microseconds per call from
`triton.testing.do_bench`, median,
and the speed-up reference / Triton). Outputs are checked against the references before timing. Without CUDA it
says so and exits 0 without writing anything.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

# (batch, K, vocab): batch-1 latency, a serving batch, and a large batch at the Llama-3 vocabulary size
VERIFY_SHAPES = [(1, 7, 16384), (16, 7, 16384), (64, 7, 16384), (1, 7, 128256), (32, 7, 128256)]
RMSNORM_SHAPES = [(1, 2048), (64, 2048), (1, 8192), (64, 8192)]  # (rows, hidden)
QKV_SHAPES = [(1, 32, 8, 64), (8, 32, 8, 64), (64, 32, 8, 128)]  # (tokens, q heads, kv heads, head dim)
# (rows, tokens per row, q heads, kv heads, head dim, cache length, keys visible): decode, verify, branch batch
ATTENTION_SHAPES = [(1, 1, 32, 8, 64, 1024, 512), (1, 8, 32, 8, 64, 1024, 512), (24, 2, 32, 8, 64, 1024, 512),
                    (1, 1, 24, 8, 128, 1024, 512)]
SWIGLU_SHAPES = [(1, 8192), (8, 8192), (64, 14336)]  # (rows, intermediate)
# (N, K) of the Llama-3.2-1B / 3B projections: qkv, o, gate-up, down
GEMM_SHAPES = [(3072, 2048), (2048, 2048), (16384, 2048), (2048, 8192), (5120, 3072), (3072, 3072), (16384, 3072),
               (3072, 8192)]
GEMM_CONFIGS = [(bn, bk, stages) for bn in (16, 32) for bk in (256, 512) for stages in (3, 4)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="first shape of each kernel only")
    parser.add_argument("--only", choices=["all", "gemm"], default="all", help="gemm: only the skinny GEMM sweep")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"],
                        help="activation dtype for rmsnorm / rotary / attention / swiglu")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("ssd.kernels.bench needs a CUDA device (none visible); nothing timed, nothing written.")
        return 0
    from common.device import describe_device
    from common.results import write_result

    start = time.perf_counter()
    dtype = getattr(torch, args.dtype)
    pick = (lambda shapes: shapes[:1]) if args.quick else (lambda shapes: shapes)
    rows = bench_skinny_gemm(pick(GEMM_SHAPES), dtype)
    if args.only == "all":
        rows += [*bench_verify(pick(VERIFY_SHAPES)), *bench_rmsnorm(pick(RMSNORM_SHAPES), dtype),
                 *bench_qkv_rotary(pick(QKV_SHAPES), dtype), *bench_attention(pick(ATTENTION_SHAPES), dtype),
                 *bench_swiglu(pick(SWIGLU_SHAPES), dtype)]
    for row in rows:
        print(f"{row['kernel']:>18} {str(row['shape']):>24}  triton {row['triton_us']:8.1f} us   "
              f"torch {row['torch_us']:8.1f} us   x{row['speedup']:.2f}"
              + (f"  ({row['best']}: {row['best_gb_s']:.0f} vs cuBLAS {row['cublas_gb_s']:.0f} GB/s)"
                 if "best" in row else ""))
    path = write_result("ssd", "kernels", "gpu", {"rows": rows, "dtype": args.dtype, "only": args.only},
                        paper={"note": "the paper reports end-to-end tok/s only; no per-kernel numbers"},
                        config={"quick": args.quick, "dtype": args.dtype}, device=describe_device("cuda"),
                        wall_s=time.perf_counter() - start,
                        name="kernels_gemm_gpu" if args.only == "gemm" else None)
    print(f"wrote {path}")
    return 0


def bench_verify(shapes: list[tuple[int, int, int]]) -> list[dict[str, Any]]:
    import torch

    from ssd.decoding.verification import verify_reference
    from ssd.kernels.verify import verify_triton

    rows = []
    for batch, k, vocab in shapes:
        g = torch.Generator(device="cuda").manual_seed(0)
        p = torch.softmax(torch.randn(batch, k + 1, vocab, device="cuda", generator=g), -1)
        q = torch.softmax(torch.randn(batch, k, vocab, device="cuda", generator=g), -1)
        x = torch.multinomial(q.reshape(-1, vocab), 1, generator=g).reshape(batch, k)
        u = torch.rand(batch, k + 1, device="cuda", generator=g)
        for greedy in (False, True):
            ref = verify_reference(p, q, x, u, greedy)
            out = verify_triton(p, q, x, u, greedy)
            row = _time(f"verify{'_greedy' if greedy else ''}", [batch, k, vocab],
                        partial(verify_triton, p, q, x, u, greedy), partial(verify_reference, p, q, x, u, greedy))
            # float32 cumulative sums in another order can move a sample sitting on a CDF boundary: report it
            row["identical_fraction"] = ((out[0] == ref[0]) & (out[1] == ref[1])).float().mean().item()
            rows.append(row)
    return rows


def bench_skinny_gemm(shapes: list[tuple[int, int]], dtype) -> list[dict[str, Any]]:
    """Weight bandwidth (GB/s) of cuBLAS (F.linear) and of each skinny_gemm config, M = 1 and 8, cycling through
    enough weight copies (> 256 MB) that L2 (60 MB) cannot hold them."""
    import torch
    import torch.nn.functional as F

    from ssd.kernels.skinny_gemm import skinny_gemm

    rows = []
    for n, k in shapes:
        copies = max(2, (256 << 20) // (n * k * 2) + 1)
        weights = [torch.randn(n, k, device="cuda", dtype=dtype) for _ in range(copies)]
        for m in (1, 8):
            x = torch.randn(m, k, device="cuda", dtype=dtype)
            _check_close(f"skinny_gemm {m, n, k}", skinny_gemm(x, weights[0]), F.linear(x, weights[0]))
            row = {"kernel": "skinny_gemm", "shape": [m, n, k], "weight_mb": n * k * 2 / 2**20,
                   "cublas_gb_s": _weight_gb_s(lambda w, x=x: F.linear(x, w), weights)}
            configs = {f"{bn}x{bk}s{st}": _weight_gb_s(lambda w, x=x, c=(bn, bk, st): skinny_gemm(
                x, w, block_n=c[0], block_k=c[1], num_stages=c[2]), weights) for bn, bk, st in GEMM_CONFIGS}
            best = max(configs, key=configs.get)
            row.update(configs=configs, best=best, best_gb_s=configs[best])
            row.update(triton_us=n * k * 2 / configs[best] / 1e3, torch_us=n * k * 2 / row["cublas_gb_s"] / 1e3)
            row["speedup"] = row["torch_us"] / row["triton_us"]
            rows.append(row)
    return rows


def _weight_gb_s(fn: Callable[[Any], Any], weights: list) -> float:
    """GB/s of weight bytes read by `fn(w)`, w cycling through `weights` (median of do_bench)."""
    from triton.testing import do_bench

    state = {"i": 0}

    def call() -> None:
        state["i"] = (state["i"] + 1) % len(weights)
        fn(weights[state["i"]])

    ms = do_bench(call, warmup=10, rep=40, return_mode="median")
    return weights[0].numel() * weights[0].element_size() / (ms * 1e6)


def bench_rmsnorm(shapes: list[tuple[int, int]], dtype) -> list[dict[str, Any]]:
    import torch

    from ssd.kernels.rmsnorm import rmsnorm, rmsnorm_reference

    rows = []
    for n, d in shapes:
        x = torch.randn(n, d, device="cuda", dtype=dtype)
        r = torch.randn(n, d, device="cuda", dtype=dtype)
        w = torch.randn(d, device="cuda", dtype=dtype)
        _check_close(f"rmsnorm {n, d}", rmsnorm(x, w, 1e-6, r), rmsnorm_reference(x, w, 1e-6, r))
        rows.append(_time("rmsnorm_residual", [n, d], partial(rmsnorm, x, w, 1e-6, r),
                          partial(rmsnorm_reference, x, w, 1e-6, r)))
    return rows


def bench_qkv_rotary(shapes: list[tuple[int, int, int, int]], dtype) -> list[dict[str, Any]]:
    import torch

    from ssd.kernels.qkv_rotary import qkv_rotary_cache, qkv_rotary_cache_reference, rotary_tables

    rows = []
    for t, hq, hk, d in shapes:
        qkv = torch.randn(t, (hq + 2 * hk) * d, device="cuda", dtype=dtype)
        pos = torch.randint(0, 4096, (t,), device="cuda")
        slots = torch.arange(t, device="cuda")
        cos, sin = rotary_tables(4096, d, device="cuda")
        caches = [torch.zeros(t, hk, 4096, d, device="cuda", dtype=dtype) for _ in range(4)]
        args = (qkv, pos, slots, cos, sin)
        _check_close(f"qkv_rotary {t, hq, hk, d}", qkv_rotary_cache(*args, *caches[:2], hq, hk),
                     qkv_rotary_cache_reference(*args, *caches[2:], hq, hk))
        _check_close(f"qkv_rotary cache {t, hq, hk, d}", (caches[0], caches[1]), (caches[2], caches[3]))
        rows.append(_time("qkv_rotary_cache", [t, hq, hk, d], partial(qkv_rotary_cache, *args, *caches[:2], hq, hk),
                          partial(qkv_rotary_cache_reference, *args, *caches[2:], hq, hk)))
    return rows


def bench_attention(shapes: list[tuple[int, ...]], dtype) -> list[dict[str, Any]]:
    import torch

    from ssd.kernels.decode_attention import decode_attention, decode_attention_reference

    rows = []
    for b, t, hq, hk, d, max_len, visible in shapes:
        q = torch.randn(b, t, hq, d, device="cuda", dtype=dtype)
        k = torch.randn(b, hk, max_len, d, device="cuda", dtype=dtype)
        v = torch.randn_like(k)
        slots = torch.arange(b, device="cuda")
        pos = (visible - t + torch.arange(t, device="cuda")).expand(b, t).contiguous()
        locks = torch.zeros(2 * b * hk, dtype=torch.int32, device="cuda")
        _check_close(f"decode_attention {b, t, hq, hk, d}", decode_attention(q, k, v, slots, pos, locks),
                     decode_attention_reference(q, k, v, slots, pos))
        row = _time("decode_attention", [b, t, hq, hk, d, max_len, visible],
                    partial(decode_attention, q, k, v, slots, pos, locks),
                    partial(decode_attention_reference, q, k, v, slots, pos))
        read = 2 * b * hk * visible * d * k.element_size()
        row["kv_read_gb_s"] = read / (row["triton_us"] * 1e3)
        rows.append(row)
    return rows


def bench_swiglu(shapes: list[tuple[int, int]], dtype) -> list[dict[str, Any]]:
    import torch

    from ssd.kernels.swiglu import silu_mul, silu_mul_reference

    rows = []
    for n, inter in shapes:
        x = torch.randn(n, 2 * inter, device="cuda", dtype=dtype)
        _check_close(f"silu_mul {n, inter}", silu_mul(x), silu_mul_reference(x))
        rows.append(_time("silu_mul", [n, inter], partial(silu_mul, x), partial(silu_mul_reference, x)))
    return rows


def _time(kernel: str, shape: list[int], fast: Callable[[], Any], reference: Callable[[], Any]) -> dict[str, Any]:
    from triton.testing import do_bench

    triton_ms = do_bench(fast, warmup=25, rep=100, return_mode="median")
    torch_ms = do_bench(reference, warmup=25, rep=100, return_mode="median")
    return {"kernel": kernel, "shape": shape, "triton_us": triton_ms * 1e3, "torch_us": torch_ms * 1e3,
            "speedup": torch_ms / triton_ms}


def _check_close(name: str, out, ref) -> None:
    import torch

    outs = out if isinstance(out, tuple) else (out,)
    refs = ref if isinstance(ref, tuple) else (ref,)
    for a, b in zip(outs, refs, strict=True):
        if not torch.allclose(a.float(), b.float(), atol=2e-2, rtol=2e-2):
            raise AssertionError(f"{name}: Triton output differs from the torch reference")


if __name__ == "__main__":
    sys.exit(main())
