"""The measuring kit of `python -m ssd.bench`: a `Bench` holds the pair and its engines and times generations;
`pool_telemetry` and `round_breakdown` turn engine telemetry into the numbers the results files report.

    bench = Bench(cfg)                       # cfg: ssd.bench_config.BenchConfig
    row = bench.run(bench.llm("sd"), cfg.prompts, bench.params(0.0))
    row["tokens_per_s"], row["mean_accepted"], row["outputs"]

Engines are made on first use, one per (strategy, decoding settings), with KV slots for the largest batch any
section asks for, and kept until `release` (which keeps the headline settings' engines).
"""

from __future__ import annotations

import dataclasses
import gc
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssd.config import DecodingConfig, resolve_model_paths

if TYPE_CHECKING:
    from ssd.bench_config import BenchConfig


class SectionSkipped(Exception):  # noqa: N818 - a reason to record, not an error
    """A section that cannot run here (no CUDA, no results file to read); the message says why."""


class Bench:
    """The pair, its engines (one `LLM` per strategy and decoding setting, made on first use) and timed runs."""

    def __init__(self, cfg: BenchConfig, save_partial: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        from common.device import choose_device, choose_dtype

        self.cfg = cfg
        self.target, self.draft = resolve_model_paths(cfg.model)
        if self.draft is None and any(s != "ar" for s in cfg.strategies):
            raise ValueError("model.draft_path is required for sd/ssd")
        self.device = choose_device(cfg.runtime.device)
        self.dtype = choose_dtype(cfg.runtime.dtype, self.device)
        self.max_batch = max([1, *cfg.batch_sizes, *cfg.backup_batch_sizes])
        self.save_partial = save_partial or (lambda section, metrics: None)
        self.reference: dict[float, list[list[int]]] = {}  # AR outputs of the headline prompts, by temperature
        self._llms: dict[tuple, Any] = {}

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def llm(self, strategy: str, decoding: DecodingConfig | None = None):
        """The engine for `strategy` with these decoding settings (made once, KV slots for `max_batch` rows)."""
        from ssd.engine.llm import LLM

        d = dataclasses.replace(decoding or self.cfg.decoding, strategy=strategy)
        key = (strategy, d.k) if strategy == "ar" else (strategy, json.dumps(dataclasses.asdict(d)))
        if key not in self._llms:
            r = self.cfg.runtime
            self._llms[key] = LLM(self.target, self.draft if strategy != "ar" else None, strategy=strategy, k=d.k,
                                  device=r.device, dtype=r.dtype, max_len=r.max_len, max_batch_size=self.max_batch,
                                  cuda_graphs=r.cuda_graphs, triton_kernels=r.triton_kernels, seed=self.cfg.seed,
                                  **d.ssd_options())
        return self._llms[key]

    def release(self) -> None:
        """Drop the engines of non-default decoding settings (a sweep's), keeping the headline ones."""
        default = dataclasses.asdict(self.cfg.decoding)
        for key in list(self._llms):
            if key[0] != "ar" and json.loads(key[1]) | {"strategy": default["strategy"]} != default:
                del self._llms[key]
        gc.collect()
        if self.cuda:
            import torch

            torch.cuda.empty_cache()

    def params(self, temperature: float | None = None):
        from ssd.engine.sampler import SamplingParams

        s = self.cfg.sampling
        return SamplingParams(s.temperature if temperature is None else temperature, s.top_p, s.max_new_tokens,
                              ignore_eos=s.ignore_eos)

    def run(self, llm, prompts: list, params, batch: int = 1, repeats: int | None = None,
            timing: bool = False) -> dict[str, Any]:
        """Generate every prompt (in batches of `batch`), `repeats` times after a warm-up; pooled telemetry.

        Every repeat restarts the random stream, so all repeats emit the same tokens and only their timing
        differs; the fastest repeat is reported (with its outputs).
        """
        llm.generate(prompts[:batch], params)  # warm-up: allocator, CUDA graphs, Triton compilation
        best: dict[str, Any] | None = None
        for _ in range(repeats or self.cfg.repeats):
            llm.reseed(self.cfg.seed)
            tels, outs = [], []
            for i in range(0, len(prompts), batch):
                got = llm.generate(prompts[i:i + batch], params, timing=timing)
                outs += [o.token_ids for o in got]
                tels.append(got[0].telemetry)
            pooled = pool_telemetry(tels)
            pooled["outputs"] = outs
            if best is None or pooled["tokens_per_s"] > best["tokens_per_s"]:
                best = pooled
        return best

    def sweep_repeats(self) -> int:
        return self.cfg.sweep_repeats or self.cfg.repeats

    def vocab(self) -> int:
        return json.loads((Path(self.target) / "config.json").read_text())["vocab_size"]


# ------------------------------------------------------------------------------------------- pooled numbers


def pool_telemetry(tels: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum times and tokens over runs, average rates weighted by rounds (overlap weighted by verify time)."""
    tokens = sum(t["generated_tokens"] for t in tels)
    total = sum(t["time_s"]["total"] for t in tels)
    out: dict[str, Any] = {"generated_tokens": tokens, "tokens_per_s": tokens / total if total else None,
                           "time_s": {k: sum(t["time_s"][k] for t in tels) for k in tels[0]["time_s"]}}
    rounds = sum(t["rounds"] for t in tels)
    out["rounds"] = rounds
    if "mean_accepted" in tels[0]:
        out["mean_accepted"] = sum(t["mean_accepted"] * t["rounds"] for t in tels) / rounds
        out["tokens_per_round"] = out["mean_accepted"] + 1
        positions = len(tels[0]["acceptance_per_position"])
        out["acceptance_per_position"] = [
            mean_or_none([t["acceptance_per_position"][i] for t in tels if t["acceptance_per_position"][i] is not None])
            for i in range(positions)]
    if "cache_hit_rate" in tels[0]:
        lookups = sum(t["cache_lookups"] for t in tels)
        out["cache_hit_rate"] = sum(t["cache_hit_rate"] * t["cache_lookups"] for t in tels) / max(lookups, 1)
        out["backup_neural"] = sum(t["backup_neural"] for t in tels)
        out["backup_random"] = sum(t["backup_random"] for t in tels)
    if all("async_time_s" in t for t in tels):  # a timed CPU run: cache building timed apart
        async_s = sum(t["async_time_s"] for t in tels)
        hidden_s = sum(t["hidden_draft_time_s"] for t in tels)
        out["async_time_s"], out["hidden_draft_time_s"] = async_s, hidden_s
        out["async_tokens_per_s"] = tokens / async_s if async_s else None
        out["hidden_draft_tokens_per_s"] = tokens / hidden_s if hidden_s else None
    if all(t.get("draft_overlap_fraction") is not None for t in tels):  # a timed GPU run, draft on its stream
        verify = sum(t["time_s"]["verify"] for t in tels)
        overlap = sum(t["draft_overlap_fraction"] * t["time_s"]["verify"] for t in tels)
        out["draft_overlap_fraction"] = overlap / verify if verify else None
    return out


def round_breakdown(timed: dict[str, Any]) -> dict[str, Any]:
    """Milliseconds per round of a timed run: draft (proposal and backup steps), cache build, verify, overhead.

    `total` is the measured loop time per round. With the cache built beside the verify (`concurrent`, a GPU's
    second stream) total = draft + verify + overhead and the cache build is hidden under the verify for
    `draft_overlap_fraction` of it; on one CPU it runs after the verify and total = all four.
    """
    t, rounds = timed["time_s"], max(timed["rounds"], 1)
    concurrent = "cache_build" in t
    if concurrent:
        build = t["cache_build"]
    elif timed.get("hidden_draft_time_s") is not None:
        build = t["total"] - timed["hidden_draft_time_s"]
    else:
        build = 0.0
    ms = {name: 1e3 * value / rounds for name, value in
          (("draft", t["draft"] - build), ("cache_build", build), ("verify", t["verify"]),
           ("overhead", t["overhead"]), ("total", t["total"]))}
    return {**ms, "rounds": timed["rounds"], "tokens_per_round": timed["generated_tokens"] / rounds,
            "concurrent": concurrent,
            "draft_overlap_fraction": timed.get("draft_overlap_fraction")}


def mean_or_none(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def fraction_identical(outputs: list[list[int]], reference: list[list[int]]) -> float | None:
    """Fraction of the outputs token-identical to the reference outputs of the same prompts (None for none)."""
    return mean_or_none([float(a == b) for a, b in zip(outputs, reference, strict=True)])


def ratio_or_none(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing (or b is 0)."""
    return a / b if a is not None and b else None


# the speed-up keys every section and the headline report: key -> (strategy, baseline)
SPEEDUPS = {"sd_speedup_vs_ar": ("sd", "ar"), "ssd_speedup_vs_sd": ("ssd", "sd"), "ssd_speedup_vs_ar": ("ssd", "ar")}


def speedups(rate: dict[str, float | None]) -> dict[str, float | None]:
    """The SPEEDUPS ratios of tokens/s per strategy (`rate`: strategy -> tokens/s of runs of one setting); a
    ratio whose strategies are missing is None."""
    return {key: ratio_or_none(rate.get(a), rate.get(b)) for key, (a, b) in SPEEDUPS.items()}
