"""Autoregressive decoding against the memory-bandwidth bound, on random-weight Llama-3 shapes.

At batch 1 a decode step must read every weight once: time per token >= bytes read per token / HBM bandwidth.
`bytes_per_token` counts the weights a step reads (the LM head and every layer; of an untied embedding table only
one row) plus the KV cache up to the mean context of the run. The bandwidth is measured in the same run
(`copy_bandwidth`: a device-to-device copy, bytes read + written over the median time), so the fraction of the
bound is a ratio of two measurements on one GPU. The same shapes run through Hugging Face `generate` (dynamic
cache) and `generate` with a static cache and `torch.compile`, the peers a user would try first.

Random weights give the same timings as trained ones (no data-dependent work); greedy decoding of random
weights emits arbitrary tokens, which is fine for timing and nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from ssd.decoding.autoregressive import Autoregressive
from ssd.engine.model_runner import ModelRunner
from ssd.engine.sampler import SamplingParams
from ssd.engine.sequence import Sequence
from ssd.models.llama import Llama, LlamaConfig

_LLAMA3_ROPE = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192}
# Hugging Face config.json fields of the public Llama-3.2-1B / 3B and Llama-3.1-8B architectures
LLAMA_SHAPES: dict[str, dict[str, Any]] = {
    "1b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
           "num_key_value_heads": 8, "head_dim": 64, "tie_word_embeddings": True},
    "3b": {"hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 28, "num_attention_heads": 24,
           "num_key_value_heads": 8, "head_dim": 128, "tie_word_embeddings": True},
    "8b": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
           "num_key_value_heads": 8, "head_dim": 128, "tie_word_embeddings": False},
}
for _shape in LLAMA_SHAPES.values():
    _shape.update(vocab_size=128256, rms_norm_eps=1e-5, rope_theta=500000.0, rope_scaling=dict(_LLAMA3_ROPE),
                  max_position_embeddings=131072, architectures=["LlamaForCausalLM"], model_type="llama",
                  bos_token_id=128000, eos_token_id=128001)


def copy_bandwidth(device: torch.device, gib: float = 2.0, repeats: int = 20) -> float:
    """Device memory bandwidth in bytes/s: a `gib` GiB device-to-device copy, (read + written) / median time."""
    n = int(gib * 2**30) // 2
    src = torch.randn(n, dtype=torch.bfloat16, device=device)
    dst = torch.empty_like(src)
    times = []
    for i in range(repeats + 3):
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        if i >= 3:
            times.append(begin.elapsed_time(end) / 1e3)
    times.sort()
    return 2 * src.numel() * src.element_size() / times[len(times) // 2]


def random_llama(hf_config: dict[str, Any], dtype: torch.dtype, device: torch.device, max_len: int) -> Llama:
    """A Llama of this shape with N(0, 0.02) weights (norms 1), projections fused, ready to decode."""
    config = LlamaConfig.from_hf(hf_config)
    with torch.device("meta"):
        model = Llama(config)
    model.to_empty(device=device).to(dtype)
    generator = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02, generator=generator)
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    model.fuse_projections()
    model.setup_rope(max_len, device)
    return model.eval().requires_grad_(False)


def bytes_per_token(model: Llama, context: int) -> int:
    """Bytes one batch-1 decode step must read: weights (one embedding row unless tied) + KV up to `context`."""
    c = model.config
    seen: set[int] = set()
    total = 0
    for name, p in model.named_parameters():
        if p.data_ptr() in seen:
            continue
        seen.add(p.data_ptr())
        if name == "model.embed_tokens.weight" and not c.tie_word_embeddings:
            total += p.shape[1] * p.element_size()
        else:
            total += p.numel() * p.element_size()
    element = next(model.parameters()).element_size()
    return total + 2 * c.num_layers * c.num_kv_heads * c.head_dim * context * element


def ar_throughput(model: Llama, prompt_len: int = 32, new_tokens: int = 256, batch: int = 1, repeats: int = 3,
                  triton_kernels: bool = True, skinny_gemm: bool = False) -> dict[str, Any]:
    """Our engine's greedy AR tokens/s (best of `repeats` after a warm-up that captures the graphs)."""
    device = next(model.parameters()).device
    model.use_triton_kernels(triton_kernels, skinny_gemm)
    max_len = prompt_len + new_tokens + 8
    runner = ModelRunner(model, batch, max_len, device)
    strategy = Autoregressive(runner, seed=0)
    params = SamplingParams(temperature=0.0, max_new_tokens=new_tokens, ignore_eos=True)
    g = torch.Generator().manual_seed(0)
    prompts = torch.randint(0, model.config.vocab_size, (batch, prompt_len), generator=g).tolist()
    best = None
    for i in range(repeats + 1):
        seqs = [Sequence(b, p, new_tokens) for b, p in enumerate(prompts)]
        tel = strategy.generate(seqs, params)
        rate = tel.generated_tokens / tel.loop_s
        if i > 0 and (best is None or rate > best):
            best = rate
    return {"tokens_per_s": best, "batch": batch, "prompt_len": prompt_len, "new_tokens": new_tokens}


def kernel_breakdown(model: Llama, prompt_len: int = 32, new_tokens: int = 64, top: int = 12) -> dict[str, Any]:
    """Where a batch-1 decode step's device time goes: the CUDA kernels of `new_tokens` AR rounds (eager, under
    torch.profiler), grouped by kernel name, in microseconds per decoded token, with the share of the total."""
    from torch.profiler import ProfilerActivity, profile

    device = next(model.parameters()).device
    model.use_triton_kernels(True)
    runner = ModelRunner(model, 1, prompt_len + new_tokens + 8, device)
    strategy = Autoregressive(runner, seed=0, cuda_graphs=False)
    params = SamplingParams(temperature=0.0, max_new_tokens=new_tokens, ignore_eos=True)
    prompt = torch.randint(0, model.config.vocab_size, (prompt_len,)).tolist()
    strategy.generate([Sequence(0, prompt, new_tokens)], params)  # warm-up: Triton compilation
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        strategy.generate([Sequence(0, prompt, new_tokens)], params)
    rows = [(e.key, e.device_time_total, e.count) for e in prof.key_averages() if e.device_time_total > 0]
    total = sum(t for _, t, _ in rows)
    rows.sort(key=lambda r: -r[1])
    return {"device_us_per_token": total / new_tokens, "kernels_per_token": sum(c for *_, c in rows) / new_tokens,
            "top": [{"kernel": k[:90], "us_per_token": t / new_tokens, "share": t / total,
                     "calls_per_token": c / new_tokens} for k, t, c in rows[:top]]}


def hf_throughput(hf_config: dict[str, Any], dtype: torch.dtype, device: torch.device, prompt_len: int = 32,
                  new_tokens: int = 256, compiled: bool = False) -> float:
    """Hugging Face `generate` tokens/s at batch 1 (greedy): dynamic cache, or (`compiled`) a static cache, with
    which `generate` runs its decoding step through torch.compile (CUDA graphs) by itself."""
    from transformers import LlamaConfig as HFConfig
    from transformers import LlamaForCausalLM

    config = HFConfig(**{k: v for k, v in hf_config.items() if k not in ("architectures", "model_type")})
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype).eval()
    ids = torch.randint(0, config.vocab_size, (1, prompt_len), device=device)
    kwargs: dict[str, Any] = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False}
    if compiled:  # a static cache makes `generate` compile its decoding step itself (its CompileConfig)
        kwargs["cache_implementation"] = "static"
    with torch.inference_mode():
        for _ in range(2 if compiled else 1):  # warm-up (compilation, graph capture)
            model.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)
        torch.cuda.synchronize()
        start = time.perf_counter()
        out = model.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)
        torch.cuda.synchronize()
    return (out.shape[1] - prompt_len) / (time.perf_counter() - start)


def bound_report(shapes: list[str], device: torch.device, dtype: torch.dtype = torch.bfloat16,
                 prompt_len: int = 32, new_tokens: int = 256, hf: bool = True, hf_compiled: bool = True,
                 on_update: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """For each shape: bytes per token, the bound, our AR tokens/s and its fraction of the bound; HF peers on
    the first shape. Bandwidth measured first, in the same process. `on_update(report)` sees the report after
    every measurement (so a long run keeps what it has measured)."""
    update = on_update or (lambda _: None)
    bandwidth = copy_bandwidth(device)
    out: dict[str, Any] = {"copy_bandwidth_tb_s": bandwidth / 1e12, "prompt_len": prompt_len,
                           "new_tokens": new_tokens, "shapes": {}}
    for name in shapes:
        model = random_llama(LLAMA_SHAPES[name], dtype, device, prompt_len + new_tokens + 8)
        per_token = bytes_per_token(model, prompt_len + new_tokens // 2)
        bound = bandwidth / per_token
        ours = ar_throughput(model, prompt_len, new_tokens)
        torch_path = ar_throughput(model, prompt_len, new_tokens, repeats=1, triton_kernels=False)
        skinny = ar_throughput(model, prompt_len, new_tokens, skinny_gemm=True)
        out["shapes"][name] = {"params": sum(p.numel() for p in model.parameters()), "bytes_per_token": per_token,
                               "bound_tok_s": bound, "ar_tok_s": ours["tokens_per_s"],
                               "ar_fraction_of_bound": ours["tokens_per_s"] / bound,
                               "ar_torch_path_tok_s": torch_path["tokens_per_s"],
                               "ar_skinny_gemm_tok_s": skinny["tokens_per_s"],
                               "breakdown": kernel_breakdown(model, prompt_len)}
        out[f"ar_fraction_of_bound_{name}"] = ours["tokens_per_s"] / bound
        update(out)
        del model
        torch.cuda.empty_cache()
    if hf and shapes:
        out["hf_shape"] = shapes[0]
        out["hf_generate_tok_s"] = hf_throughput(LLAMA_SHAPES[shapes[0]], dtype, device, prompt_len, new_tokens)
        update(out)
        if hf_compiled:
            out["hf_static_compiled_tok_s"] = hf_throughput(LLAMA_SHAPES[shapes[0]], dtype, device, prompt_len,
                                                            new_tokens, compiled=True)
            update(out)
    return out
