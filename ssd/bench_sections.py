"""The sections of `python -m ssd.bench`: each is `section(bench) -> metrics dict`, listed in `SECTIONS`.

What each one measures is in `ssd.bench`'s docstring. A section that cannot run here raises `SectionSkipped`
with the reason; long sections hand their partial metrics to `bench.save_partial` as they go.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ssd.bench_runs import (
    SPEEDUPS,
    Bench,
    SectionSkipped,
    fraction_identical,
    mean_or_none,
    ratio_or_none,
    round_breakdown,
)
from ssd.decoding.fanout import uniform_fanout

ISSUE_SHAPES = ("1b", "3b")  # the shapes the issue's bound target is about; others are timing only


def pair(bench: Bench) -> dict[str, Any]:
    """Batch-1 step times of our target and draft, their ratio, and the pair's training results."""
    from ssd.bandwidth import bytes_per_token

    if bench.draft is None:
        raise SectionSkipped("no draft model (model.draft_path) to time against the target")
    cfg, llm = bench.cfg, bench.llm("sd")
    k, context = cfg.decoding.k, cfg.step_time_context
    out: dict[str, Any] = {"context": context, "batch": 1, "graphed": bench.cuda and cfg.runtime.cuda_graphs,
                           "target_params": _params(llm.target.model), "draft_params": _params(llm.draft.model)}
    mean_prompt = mean_or_none([len(llm.encode(p)) for p in cfg.prompts]) or 0
    out["target_bytes_per_token"] = bytes_per_token(llm.target.model, int(mean_prompt + cfg.sampling.max_new_tokens / 2))
    times = {"target_step_ms": (llm.target, 1), "draft_step_ms": (llm.draft, 1),
             "target_verify_ms": (llm.target, k + 1), "draft_catch_up_ms": (llm.draft, 2)}
    for name, (runner, tokens) in times.items():
        out[name] = 1e3 * forward_latency(runner, tokens, context, cfg.step_time_repeats, cfg.runtime.cuda_graphs)
    out["step_time_ratio"] = out["target_step_ms"] / out["draft_step_ms"]
    out["training"], reason = _pair_training(bench, out)
    if reason:
        out["skipped"] = {"training": reason}
    return out


def forward_latency(runner, tokens: int, context: int, repeats: int, graphs: bool = True) -> float:
    """Median seconds of one forward of `runner` at batch 1: `tokens` tokens after `context` cached positions
    (slot 0; the cache contents do not change the work). On CUDA the forward is replayed as a CUDA graph, as
    the engine's rounds are (CUDA events, 5 groups of `repeats`); on the CPU wall-clock per call."""
    import torch

    from ssd.engine.round_graph import RoundGraph

    if context + tokens > runner.max_len:
        raise ValueError(f"step_time_context={context} + {tokens} tokens exceed the cache's max_len={runner.max_len}")
    device = runner.device
    ids = torch.zeros((1, tokens), dtype=torch.long, device=device)
    positions = torch.arange(context, context + tokens, device=device)[None]
    slots = torch.zeros(1, dtype=torch.long, device=device)
    times = []
    with torch.inference_mode():
        step = RoundGraph(lambda: runner.forward(ids, positions, slots), device, graphs)
        step()  # warm-up (and capture)
        if device.type != "cuda":
            for _ in range(repeats):
                start = time.perf_counter()
                step()
                times.append(time.perf_counter() - start)
        else:
            for _ in range(5):
                begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                begin.record()
                for _ in range(repeats):
                    step()
                end.record()
                end.synchronize()
                times.append(begin.elapsed_time(end) / 1e3 / repeats)
    times.sort()
    return times[len(times) // 2]


def _params(model) -> int:
    return sum(p.numel() for p in {p.data_ptr(): p for p in model.parameters()}.values())


def _pair_training(bench: Bench, measured: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """(the pair's training results from `pair_results`, "") when that file describes the models loaded here,
    else (None, why not)."""
    from common.results import read_result, result_path

    if not bench.cfg.pair_results:
        return None, "pair_results is not set (no training run to read)"
    root = Path(bench.cfg.results_root) if bench.cfg.results_root else None
    path = result_path("ssd", bench.cfg.pair_results, root)
    if not path.is_file():
        return None, f"no results file {path} (train the pair first: make ssd-models SCALE={bench.cfg.scale})"
    m = read_result(path)["metrics"]
    for name in ("target", "draft"):
        if m.get(f"{name}_params") != measured[f"{name}_params"]:
            return None, (f"{path.name} describes a {name} of {m.get(f'{name}_params')} parameters, the loaded one "
                          f"has {measured[f'{name}_params']}: a file for other models")
    keys = ("target_val_loss", "draft_val_loss", "greedy_agreement", "val_tokens_evaluated", "target_steps",
            "target_train_s", "target_stopped_early", "draft_steps", "draft_train_s", "draft_stopped_early")
    return {"source": path.name, **{key: m.get(key) for key in keys}}, ""


def speedup(bench: Bench) -> dict[str, Any]:
    """AR / SD / SSD at batch 1 on the configured prompts; greedy identity; one timed run per strategy."""
    cfg = bench.cfg
    greedy = cfg.sampling.temperature == 0
    # on a CPU a timer is a clock read around the same work, so the headline runs are the timed runs; on a GPU
    # timing replays the round piece by piece, so it gets runs of its own
    timed_headline = cfg.timed_runs and not bench.cuda
    rows: dict[str, Any] = {}
    for strategy in cfg.strategies:
        rows[strategy] = bench.run(bench.llm(strategy), cfg.prompts, bench.params(), timing=timed_headline)
    reference = rows.get("ar", {}).get("outputs")
    if reference is not None:
        bench.reference[cfg.sampling.temperature] = reference
    for row in rows.values():
        outs = row.pop("outputs")
        if reference is not None and greedy:
            row["greedy_identical_to_ar"] = outs == reference
            row["greedy_agreement"] = divergence_report(bench.llm("ar"), cfg.prompts, reference, outs)
        _add_ratios(row, rows)
    if cfg.timed_runs:
        breakdown = {}
        for strategy in cfg.strategies:
            timed = rows[strategy] if timed_headline else bench.run(bench.llm(strategy), cfg.prompts, bench.params(),
                                                                    repeats=1, timing=True)
            timed.pop("outputs", None)
            breakdown[strategy] = round_breakdown(timed)
            row = rows[strategy]
            for key in ("async_tokens_per_s", "hidden_draft_tokens_per_s", "draft_overlap_fraction"):
                if timed.get(key) is not None:
                    row[key] = timed[key]
            for key in ("async", "hidden_draft"):
                if row.get(f"{key}_tokens_per_s"):
                    if "sd" in rows:
                        row[f"{key}_ratio_vs_sd"] = row[f"{key}_tokens_per_s"] / rows["sd"]["tokens_per_s"]
                    if "ar" in rows:
                        row[f"{key}_ratio_vs_ar"] = row[f"{key}_tokens_per_s"] / rows["ar"]["tokens_per_s"]
        rows["round_breakdown"] = breakdown
        if "ssd" in rows and "draft_overlap_fraction" not in rows["ssd"]:
            rows["skipped"] = {"draft_overlap_fraction": (
                "the cache was not built on a second CUDA stream (CPU: after the verify), so nothing overlapped; "
                "async_tokens_per_s and hidden_draft_tokens_per_s derive what an overlap would give")}
    return rows


def _add_ratios(row: dict[str, Any], rows: dict[str, Any]) -> None:
    if "ar" in rows:
        row["ratio_vs_ar"] = row["tokens_per_s"] / rows["ar"]["tokens_per_s"]
    if "sd" in rows:
        row["ratio_vs_sd"] = row["tokens_per_s"] / rows["sd"]["tokens_per_s"]


def divergence_report(ar_llm, prompts: list, reference: list[list[int]], outputs: list[list[int]]) -> dict[str, Any]:
    """Fraction of greedy outputs identical to AR's; at each divergence, its position and the target's top-2
    logit margin there (a tiny margin means batched-GEMM rounding, not a decoding bug)."""
    import torch

    from ssd.engine.kv_cache import KVCache

    model = ar_llm.target.model
    divergences = []
    for prompt, out, ref in zip(prompts, outputs, reference, strict=True):
        if out == ref:
            continue
        i = next((j for j, (a, b) in enumerate(zip(out, ref, strict=False)) if a != b), min(len(out), len(ref)))
        ids = ar_llm.encode(prompt) + ref[:i]
        cache = KVCache.for_model(model.config, 1, len(ids), next(model.parameters()).dtype, ar_llm.device)
        with torch.inference_mode():
            logits = model(torch.tensor([ids], device=ar_llm.device), torch.arange(len(ids), device=ar_llm.device)[None],
                           cache, torch.zeros(1, dtype=torch.long, device=ar_llm.device), last_only=True)[0, -1]
        top2 = logits.float().topk(2).values
        divergences.append({"position": i, "top2_margin": float(top2[0] - top2[1])})
    return {"fraction_identical": 1 - len(divergences) / max(len(reference), 1), "divergences": divergences}


def hf_assisted(bench: Bench) -> dict[str, Any]:
    """HF assisted generation with our pair (greedy, the same prompt ids and number of new tokens), batch 1."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from common.device import torch_dtype

    if bench.draft is None:
        raise SectionSkipped("no draft model (model.draft_path) to assist with")
    cfg = bench.cfg
    prompts = [bench.llm("ar").encode(p) for p in cfg.prompts]
    dtype = torch_dtype(bench.dtype)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # generate() warns about its own default generation config
    try:  # the models are freed with this frame; `Bench.release` after the section empties the CUDA cache
        target = AutoModelForCausalLM.from_pretrained(str(bench.target), dtype=dtype).to(bench.device).eval()
        draft = AutoModelForCausalLM.from_pretrained(str(bench.draft), dtype=dtype).to(bench.device).eval()
        out = {"prompts": len(prompts), "max_new_tokens": cfg.sampling.max_new_tokens, "dtype": bench.dtype,
               "assistant_settings": "transformers' defaults (its version is in the provenance)"}
        runs = {"assisted": draft, **({"plain": None} if cfg.hf_assisted.plain_generate else {})}
        for name, assistant in runs.items():
            rate, outputs = _hf_generate(bench, target, assistant, prompts)
            prefix = "" if name == "assisted" else "plain_"
            out[f"{prefix}tokens_per_s"] = rate
            reference = bench.reference.get(0.0)
            if reference is not None:
                out[f"{prefix}fraction_identical_to_ar"] = fraction_identical(outputs, reference)
            bench.save_partial("hf_assisted", out)
    finally:
        hf_logging.set_verbosity(verbosity)
    return out


def _hf_generate(bench: Bench, target, assistant, prompts: list[list[int]]) -> tuple[float, list[list[int]]]:
    """Tokens/s of greedy HF `generate` over the prompts one by one (best of `hf_assisted.repeats`, after a
    short warm-up), and the new tokens of each prompt."""
    import torch

    n = bench.cfg.sampling.max_new_tokens
    # use_cache explicitly: our exports' generation_config.json may carry the training config's use_cache=False,
    # which assisted generation refuses (transformers 5: "assisted generate requires `use_cache=True`")
    kwargs: dict[str, Any] = {"do_sample": False, "max_new_tokens": n, "use_cache": True,
                              "pad_token_id": target.generation_config.eos_token_id}
    if bench.cfg.sampling.ignore_eos:
        kwargs["min_new_tokens"] = n
    if assistant is not None:
        kwargs["assistant_model"] = assistant

    def generate(ids: list[int], **extra: Any) -> list[int]:
        x = torch.tensor([ids], device=bench.device)
        with torch.inference_mode():
            y = target.generate(x, attention_mask=torch.ones_like(x), **(kwargs | extra))
        return y[0, len(ids):].tolist()

    generate(prompts[0], max_new_tokens=min(n, 16), min_new_tokens=0)  # warm-up
    best, outputs = 0.0, []
    for _ in range(bench.cfg.hf_assisted.repeats):
        _sync(bench)
        start = time.perf_counter()
        outputs = [generate(ids) for ids in prompts]
        _sync(bench)
        best = max(best, sum(len(o) for o in outputs) / (time.perf_counter() - start))
    return best, outputs


def _sync(bench: Bench) -> None:
    if bench.cuda:
        import torch

        torch.cuda.synchronize()


def bound(bench: Bench) -> dict[str, Any]:
    """Our AR against the memory-bandwidth bound on random Llama shapes (`ssd.bandwidth.bound_report`)."""
    if not bench.cuda:
        raise SectionSkipped("needs CUDA: the bound is weight bytes / HBM bandwidth, measured with CUDA events")
    import torch

    from ssd.bandwidth import bound_report

    b = bench.cfg.bound
    timing_only = [s for s in b.shapes if s not in ISSUE_SHAPES]

    def labelled(report: dict[str, Any]) -> dict[str, Any]:
        return {**report, "timing_only": timing_only, "dtype": "bfloat16", "batch": 1}

    report = bound_report(b.shapes, torch.device(bench.device), torch.bfloat16, b.prompt_len, b.new_tokens,
                          hf=False, on_update=lambda r: bench.save_partial("bound", labelled(r)))
    return labelled(report)


def hf_peers(bench: Bench) -> dict[str, Any]:
    """HF `generate` at batch 1 on a random Llama shape: dynamic cache, then static cache + torch.compile."""
    if not bench.cuda:
        raise SectionSkipped("needs CUDA (ssd.bandwidth.hf_throughput times with CUDA synchronisation)")
    import torch

    from ssd.bandwidth import LLAMA_SHAPES, hf_throughput

    b = bench.cfg.bound
    shape, device = LLAMA_SHAPES[b.hf_shape], torch.device(bench.device)
    out: dict[str, Any] = {"shape": b.hf_shape, "prompt_len": b.prompt_len, "new_tokens": b.hf_new_tokens,
                           "dtype": "bfloat16"}
    out["hf_generate_tok_s"] = hf_throughput(shape, torch.bfloat16, device, b.prompt_len, b.hf_new_tokens)
    bench.save_partial("hf_peers", out)
    if b.hf_compiled:
        out["hf_static_compiled_tok_s"] = hf_throughput(shape, torch.bfloat16, device, b.prompt_len,
                                                        b.hf_new_tokens, compiled=True)
    torch.cuda.empty_cache()
    return out


def temperature(bench: Bench) -> dict[str, Any]:
    """AR / SD / SSD at batch 1 at each temperature: tokens/s, ratios, accepted length, hit rate."""
    cfg = bench.cfg
    out: dict[str, Any] = {"temperature": list(cfg.temperatures)}
    for t in cfg.temperatures:
        rows = {s: bench.run(bench.llm(s), cfg.prompts, bench.params(t), repeats=bench.sweep_repeats())
                for s in cfg.strategies}
        for s, row in rows.items():
            out.setdefault(f"tokens_per_s_{s}", []).append(row["tokens_per_s"])
            if s != "ar":
                out.setdefault(f"mean_accepted_{s}", []).append(row["mean_accepted"])
        if "ssd" in rows:
            out.setdefault("cache_hit_rate_ssd", []).append(rows["ssd"]["cache_hit_rate"])
        _append_speedups(out, rows)
        bench.save_partial("temperature", out)
    return out


def _append_speedups(out: dict[str, Any], rows: dict[str, Any]) -> None:
    """Append this setting's sd/ar, ssd/sd, ssd/ar ratios (runs of the same setting) to `out`'s lists."""
    rate = {s: row["tokens_per_s"] for s, row in rows.items()}
    for key, (a, b) in SPEEDUPS.items():
        if a in rate and b in rate:
            out.setdefault(key, []).append(ratio_or_none(rate[a], rate[b]))


def batch_sweep(bench: Bench) -> dict[str, Any]:
    """Tokens/s of each strategy vs batch size (the prompts repeated to fill the batch); greedy identity to AR."""
    cfg = bench.cfg
    out: dict[str, Any] = {"batch_size": list(cfg.batch_sizes)}
    for batch in cfg.batch_sizes:
        prompts = (cfg.prompts * batch)[:batch]
        rows = {s: bench.run(bench.llm(s), prompts, bench.params(), batch, repeats=bench.sweep_repeats())
                for s in cfg.strategies}
        for s, row in rows.items():
            out.setdefault(f"tokens_per_s_{s}", []).append(row["tokens_per_s"])
        if "ssd" in rows:
            ssd = rows["ssd"]
            out.setdefault("cache_hit_rate_ssd", []).append(ssd["cache_hit_rate"])
            out.setdefault("random_backup_ssd", []).append(ssd["backup_random"] > 0)
        if "ar" in rows and cfg.sampling.temperature == 0:
            for s in rows:
                if s != "ar":
                    out.setdefault(f"fraction_identical_{s}", []).append(
                        fraction_identical(rows[s]["outputs"], rows["ar"]["outputs"]))
        _append_speedups(out, rows)
        bench.save_partial("batch", out)
    return out


def cache_hit_vs_fanout(bench: Bench) -> dict[str, Any]:
    """SSD cache hit rate, accepted length and tokens/s vs budget B: geometric fan-out, and (if configured) the
    same budget split evenly; a uniform fan-out equal to the geometric one reuses its run."""
    from ssd.decoding.saguaro import resolve_fanout

    cfg, vocab = bench.cfg, bench.vocab()
    kinds = ["geometric"] + (["uniform"] if cfg.sweep_uniform_fanout else [])
    out: dict[str, Any] = {"budget": [], "fanout": [], "temperatures": list(cfg.sweep_temperatures)}
    if cfg.sweep_uniform_fanout:
        out["fanout_uniform"] = []
    for budget in cfg.sweep_budgets:
        d = dataclasses.replace(cfg.decoding, budget=budget, fanout=None)
        geometric = resolve_fanout(d.k, vocab, budget, None, d.acceptance_rate, d.fanout_power)
        fanouts = {"geometric": geometric, "uniform": uniform_fanout(d.k, budget, vocab)}
        out["budget"].append(budget)
        out["fanout"].append(geometric)
        if cfg.sweep_uniform_fanout:
            out["fanout_uniform"].append(fanouts["uniform"])
            out.setdefault("uniform_same_as_geometric", []).append(fanouts["uniform"] == geometric)
        measured: dict[tuple, dict[str, Any]] = {}
        for kind in kinds:
            decoding = dataclasses.replace(d, fanout=None if kind == "geometric" else fanouts[kind])
            prefix = "" if kind == "geometric" else "uniform_"
            for t in cfg.sweep_temperatures:
                key = (tuple(fanouts[kind]), t)
                if key not in measured:
                    measured[key] = bench.run(bench.llm("ssd", decoding), cfg.prompts, bench.params(t),
                                              repeats=bench.sweep_repeats())
                row = measured[key]
                for name in ("cache_hit_rate", "mean_accepted", "tokens_per_s"):
                    out.setdefault(f"{prefix}{name}_t{t:g}", []).append(row[name])
        bench.save_partial("cache_hit_vs_fanout", out)
        bench.release()
    return out


def saguaro_c(bench: Bench) -> dict[str, Any]:
    """Hit rate, acceptance and tokens/s vs Saguaro's C at temperature 1."""
    out: dict[str, Any] = {"c": [], "cache_hit_rate": [], "mean_accepted": [], "tokens_per_s": []}
    for c in bench.cfg.sweep_saguaro_c:
        d = dataclasses.replace(bench.cfg.decoding, saguaro_c=c)
        row = bench.run(bench.llm("ssd", d), bench.cfg.prompts, bench.params(1.0), repeats=bench.sweep_repeats())
        out["c"].append(c)
        for name in ("cache_hit_rate", "mean_accepted", "tokens_per_s"):
            out[name].append(row[name])
        bench.save_partial("saguaro_c", out)
        bench.release()
    return out


def backup(bench: Bench) -> dict[str, Any]:
    """SSD with the neural (draft) vs the random-token backup speculator, vs batch size."""
    cfg = bench.cfg
    out: dict[str, Any] = {"batch_size": list(cfg.backup_batch_sizes),
                           "auto_switch_above_batch": cfg.decoding.neural_backup_max_batch}
    for kind in ("neural", "random"):
        llm = bench.llm("ssd", dataclasses.replace(cfg.decoding, backup=kind))
        for batch in cfg.backup_batch_sizes:
            prompts = (cfg.prompts * batch)[:batch]
            row = bench.run(llm, prompts, bench.params(), batch, repeats=bench.sweep_repeats())
            for name in ("tokens_per_s", "cache_hit_rate", "mean_accepted"):
                out.setdefault(f"{name}_{kind}", []).append(row[name])
            bench.save_partial("backup", out)
        bench.release()
    return out


def speculation_k(bench: Bench) -> dict[str, Any]:
    """SD and SSD vs the speculation length K at batch 1 (the configured temperature and budget, AR once):
    tokens/s, their ratios to AR of the same run, accepted length, (SSD) cache hit rate, and for greedy runs the
    fraction of outputs identical to AR."""
    cfg = bench.cfg
    ar = bench.run(bench.llm("ar"), cfg.prompts, bench.params(), repeats=bench.sweep_repeats())
    out: dict[str, Any] = {"k": [], "budget": [], "tokens_per_s_ar": ar["tokens_per_s"]}
    for k in cfg.sweep_k:
        d = dataclasses.replace(cfg.decoding, k=k, budget=max(cfg.decoding.budget, k + 1), fanout=None)
        out["k"].append(k)
        out["budget"].append(d.budget)
        rows = {"ar": ar} | {s: bench.run(bench.llm(s, d), cfg.prompts, bench.params(), repeats=bench.sweep_repeats())
                             for s in cfg.strategies if s != "ar"}
        for s, row in rows.items():
            if s == "ar":
                continue
            out.setdefault(f"tokens_per_s_{s}", []).append(row["tokens_per_s"])
            out.setdefault(f"mean_accepted_{s}", []).append(row["mean_accepted"])
            if cfg.sampling.temperature == 0:
                out.setdefault(f"fraction_identical_{s}", []).append(fraction_identical(row["outputs"], ar["outputs"]))
        if "ssd" in rows:
            out.setdefault("cache_hit_rate_ssd", []).append(rows["ssd"]["cache_hit_rate"])
        _append_speedups(out, rows)
        bench.save_partial("speculation_k", out)
        bench.release()
    return out


SECTIONS: dict[str, Callable[[Bench], dict[str, Any]]] = {
    "pair": pair, "speedup": speedup, "hf_assisted": hf_assisted, "bound": bound, "hf_peers": hf_peers,
    "temperature": temperature, "batch": batch_sweep, "cache_hit_vs_fanout": cache_hit_vs_fanout,
    "saguaro_c": saguaro_c, "backup": backup, "speculation_k": speculation_k}
