"""`python -m ssd.bench experiment=<name>` - AR / SD / SSD and their peers, every ratio from one run.

Sections (`sections`, run in the order given; each one optional):
- `pair`: our pair's batch-1 step times (target and draft forward at T=1, target verify at T=K+1) and their
  ratio `step_time_ratio`; parameter counts, the bytes a target step reads; with `pair_results`, the val losses and
  greedy agreement of the pair's training run (`ssd.training.train_pair`, checked to be the same models).
- `speedup`: AR / SD / SSD at batch 1 on the configured prompts (best of `repeats` after a warm-up): tokens/s,
  ratios, acceptance, cache hit rate; for greedy runs the fraction of outputs identical to AR and the target's
  top-2 logit margin at each divergence (`divergence_report`); then one timed run per strategy (`timing=True`)
  for the round time split (`round_breakdown`: draft / cache build / verify / overhead) and, on a GPU, the
  fraction of the verify time the draft stream spent building the cache (`draft_overlap_fraction`). On a CPU the
  cache building runs after the verify, so the timed run gives instead two numbers derived from measured times:
  `async_tokens_per_s` (cache building overlapped with the verify on the same hardware) and
  `hidden_draft_tokens_per_s` (cache building on hardware of its own).
- `hf_assisted`: Hugging Face assisted generation with our pair (`generate(..., assistant_model=draft)`, greedy,
  the same prompt ids and lengths), and optionally plain HF `generate` with our target.
- `bound` (CUDA): `ssd.bandwidth.bound_report` on random Llama-3.2-1B/3B shapes at batch 1 (8B: timing only).
- `hf_peers` (CUDA): HF `generate` (dynamic cache) and with a static cache + torch.compile, on the 1B shape.
- `temperature`: AR / SD / SSD at batch 1 at each of `temperatures`.
- `batch`: AR / SD / SSD tokens/s vs batch size (`batch_sizes`; the prompts repeated to fill a batch).
- `cache_hit_vs_fanout`: SSD cache hit rate vs budget B (`sweep_budgets`) at `sweep_temperatures`, with the
  geometric fan-out and (`sweep_uniform_fanout`) the same budget split evenly over the K+1 outcomes.
- `saguaro_c`: hit rate and acceptance vs Saguaro's C at temperature 1 (`sweep_saguaro_c`).
- `backup`: SSD with the neural vs the random-token backup at `backup_batch_sizes`.

Results (each with the paper's numbers for the same quantities and the scale we ran at):
- `results_name` set (e.g. `bench`): every section goes into one file `<results_name>_<scale>.json`, rewritten
  after each section (and inside the long ones), so a crash or a time limit keeps what was measured; `complete`
  says whether every section ran. The headline keys (`headline`) sit at the top of its metrics; a section that
  cannot run here (no CUDA, no pair results file) is listed under `skipped` with the reason, never filled in.
- `results_name` null (`make reproduce-ssd`): one file per section, `<section>[_<tag>]_<scale>.json`.
Ratios are always between runs of the same process on the same prompts.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.config import ConfigError, LoggerConfig, as_dict, check_choice, check_range, hydra_app, run_dir
from common.logging import RunLogger
from common.seed import seed_everything
from ssd.config import DecodingConfig, ModelConfig, RuntimeConfig, SamplingConfig, resolve_model_paths

PAPER = {
    "source": "Kumar, Dao, May (ICLR 2026) / github tanishqkumar/ssd README figure",
    "setup": "Llama-3.1-70B target (TP4) + Llama-3.2-1B draft on a 5th H100, batch 1, temperature 0, 512 tokens",
    "tokens_per_s": {"ar": 65, "sd_vllm": 110, "sd_sglang": 170, "ssd": 262},
    "ssd_vs_ar": 4.0,
    "ssd_vs_sd_up_to": 2.0,
    "ssd_vs_ar_up_to": 5.0,
    "outcome_prediction": "80-90% with ~20-30 cached branches (K=7, F=3 in the examples)",
}
# issue #12's targets (not the paper's numbers): key -> lowest value that meets it
TARGETS = {"ar_fraction_of_bound_1b": 0.8, "ar_fraction_of_bound_3b": 0.8, "sd_speedup_vs_ar": 2.0,
           "ssd_speedup_vs_sd": 1.3, "ssd_speedup_vs_ar": 2.6, "sd_speedup_vs_hf_assisted": 10.0,
           "cache_hit_rate": 0.8, "step_time_ratio": 5.0}
DEFAULT_PROMPTS = ["Once upon a time", "def add(a, b):", "The quick brown fox", "Speculative decoding lets"]
SECTIONS = ("pair", "speedup", "hf_assisted", "bound", "hf_peers", "temperature", "batch", "cache_hit_vs_fanout",
            "saguaro_c", "backup")
LEGACY_SECTIONS = ["speedup", "cache_hit_vs_fanout", "saguaro_c", "batch"]
SHAPES = ("1b", "3b", "8b")  # the keys of ssd.bandwidth.LLAMA_SHAPES
ISSUE_SHAPES = ("1b", "3b")  # the shapes the issue's bound target is about; others are timing only


@dataclass
class BoundConfig:
    """`bound` and `hf_peers`: random-weight Llama shapes at batch 1 (`ssd.bandwidth`)."""

    shapes: list[str] = field(default_factory=lambda: ["1b", "3b"])
    prompt_len: int = 32
    new_tokens: int = 256
    hf_shape: str = "1b"
    hf_new_tokens: int = 128  # HF generate runs at ~15 tok/s: fewer tokens keep the section short
    hf_compiled: bool = True  # also HF generate with a static cache (torch.compile of the decoding step)

    def __post_init__(self) -> None:
        for shape in self.shapes:
            check_choice("bound.shapes[]", shape, SHAPES)
        check_choice("bound.hf_shape", self.hf_shape, SHAPES)
        check_range("bound.prompt_len", self.prompt_len, 1)
        check_range("bound.new_tokens", self.new_tokens, 1)
        check_range("bound.hf_new_tokens", self.hf_new_tokens, 1)


@dataclass
class HFAssistedConfig:
    """`hf_assisted`: transformers assisted generation with our pair."""

    repeats: int = 1
    plain_generate: bool = False  # also HF `generate` with our target alone (slow on a GPU: ~15-30 tok/s)

    def __post_init__(self) -> None:
        check_range("hf_assisted.repeats", self.repeats, 1)


@dataclass
class BenchConfig:
    scale: str = "cpu"
    model: ModelConfig = field(default_factory=ModelConfig)
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(max_new_tokens=64, ignore_eos=True))
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    prompts: list[str] = field(default_factory=lambda: list(DEFAULT_PROMPTS))
    strategies: list[str] = field(default_factory=lambda: ["ar", "sd", "ssd"])
    sections: list[str] = field(default_factory=lambda: list(LEGACY_SECTIONS))
    results_name: str | None = None  # one file <results_name>[_<tag>]_<scale>.json for all sections; None: one per section
    repeats: int = 2  # headline runs: best of `repeats` after a warm-up
    sweep_repeats: int = 0  # sweeps: repeats after a warm-up (0: `repeats`)
    timed_runs: bool = True  # `speedup`: one extra run per strategy with timing=True (round time split)
    temperatures: list[float] = field(default_factory=lambda: [0.0, 1.0])
    sweep_budgets: list[int] = field(default_factory=list)
    sweep_temperatures: list[float] = field(default_factory=lambda: [0.0, 1.0])
    sweep_uniform_fanout: bool = False
    sweep_saguaro_c: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    backup_batch_sizes: list[int] = field(default_factory=list)
    step_time_context: int = 128  # cached positions before the timed forward (`pair`)
    step_time_repeats: int = 50  # forwards per timing (`pair`)
    pair_results: str | None = None  # results stem of the pair's training run (pair_gpu), read from results_root
    bound: BoundConfig = field(default_factory=BoundConfig)
    hf_assisted: HFAssistedConfig = field(default_factory=HFAssistedConfig)
    seed: int = 0
    tag: str = ""  # results file suffix, e.g. "trained" -> speedup_trained_cpu.json
    results_root: str | None = None  # None: the repository's experiments/ (tests pass a temporary folder)
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def __post_init__(self) -> None:
        check_choice("scale", self.scale, ("cpu", "gpu", "tiny"))
        for s in self.strategies:
            check_choice("strategies[]", s, ("ar", "sd", "ssd"))
        for s in self.sections:
            check_choice("sections[]", s, SECTIONS)
        if len(set(self.sections)) != len(self.sections):
            raise ConfigError(f"sections={self.sections!r} lists a section twice")
        if self.results_name is not None and not self.results_name.isidentifier():
            raise ConfigError(f"results_name={self.results_name!r} must be a plain name such as 'bench'")
        check_range("repeats", self.repeats, 1)
        check_range("sweep_repeats", self.sweep_repeats, 0)
        for t in self.temperatures + self.sweep_temperatures:
            check_range("temperatures[]", t, 0)
        for budget in self.sweep_budgets:
            check_range("sweep_budgets[]", budget, self.decoding.k + 1, 4096)
        for c in self.sweep_saguaro_c:
            check_range("sweep_saguaro_c[]", c, 0, 1, low_open=True)
        for batch in self.batch_sizes + self.backup_batch_sizes:
            check_range("batch_sizes[]", batch, 1)
        check_range("step_time_context", self.step_time_context, 0)
        check_range("step_time_repeats", self.step_time_repeats, 1)
        check_range("seed", self.seed, 0)


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
            _mean([t["acceptance_per_position"][i] for t in tels if t["acceptance_per_position"][i] is not None])
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
    return {**ms, "rounds": timed["rounds"], "concurrent": concurrent,
            "draft_overlap_fraction": timed.get("draft_overlap_fraction")}


def uniform_fanout(k: int, budget: int, vocab: int) -> list[int]:
    """The budget B split evenly over the K+1 outcomes: F_k = B // (K+1), the remainder one each to the smallest
    k, each capped at vocab - 1 (the geometric fan-out's counterpart in the budget sweep)."""
    if k < 1 or budget < k + 1:
        raise ValueError(f"need K >= 1 and budget >= K+1; got K={k}, budget={budget}")
    base, extra = divmod(budget, k + 1)
    return [min(base + (i < extra), vocab - 1) for i in range(k + 1)]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# --------------------------------------------------------------------------------------------------- sections


def pair(bench: Bench) -> dict[str, Any]:
    """Batch-1 step times of our target and draft, their ratio, and the pair's training results."""
    from ssd.bandwidth import bytes_per_token

    if bench.draft is None:
        raise SectionSkipped("no draft model (model.draft_path) to time against the target")
    cfg, llm = bench.cfg, bench.llm("sd")
    k, context = cfg.decoding.k, cfg.step_time_context
    out: dict[str, Any] = {"context": context, "batch": 1, "graphed": bench.cuda and cfg.runtime.cuda_graphs,
                           "target_params": _params(llm.target.model), "draft_params": _params(llm.draft.model)}
    mean_prompt = _mean([len(llm.encode(p)) for p in cfg.prompts]) or 0
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
    rows: dict[str, Any] = {}
    for strategy in cfg.strategies:
        rows[strategy] = bench.run(bench.llm(strategy), cfg.prompts, bench.params())
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
            timed = bench.run(bench.llm(strategy), cfg.prompts, bench.params(), repeats=1, timing=True)
            timed.pop("outputs")
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
               "num_assistant_tokens": draft.generation_config.num_assistant_tokens,
               "num_assistant_tokens_schedule": draft.generation_config.num_assistant_tokens_schedule}
        runs = {"assisted": draft, **({"plain": None} if cfg.hf_assisted.plain_generate else {})}
        for name, assistant in runs.items():
            rate, outputs = _hf_generate(bench, target, assistant, prompts)
            prefix = "" if name == "assisted" else "plain_"
            out[f"{prefix}tokens_per_s"] = rate
            reference = bench.reference.get(0.0)
            if reference is not None:
                out[f"{prefix}fraction_identical_to_ar"] = _mean([float(a == b) for a, b in
                                                                  zip(outputs, reference, strict=True)])
            bench.save_partial("hf_assisted", out)
    finally:
        hf_logging.set_verbosity(verbosity)
    return out


def _hf_generate(bench: Bench, target, assistant, prompts: list[list[int]]) -> tuple[float, list[list[int]]]:
    """Tokens/s of greedy HF `generate` over the prompts one by one (best of `hf_assisted.repeats`, after a
    short warm-up), and the new tokens of each prompt."""
    import torch

    n = bench.cfg.sampling.max_new_tokens
    kwargs: dict[str, Any] = {"do_sample": False, "max_new_tokens": n,
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
    for key, (a, b) in {"sd_speedup_vs_ar": ("sd", "ar"), "ssd_speedup_vs_sd": ("ssd", "sd"),
                        "ssd_speedup_vs_ar": ("ssd", "ar")}.items():
        if a in rate and b in rate:
            out.setdefault(key, []).append(_ratio(rate[a], rate[b]))


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
                    same = [a == b for a, b in zip(rows[s]["outputs"], rows["ar"]["outputs"], strict=True)]
                    out.setdefault(f"fraction_identical_{s}", []).append(sum(same) / len(same))
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


SECTION_FUNCTIONS: dict[str, Callable[[Bench], dict[str, Any]]] = {
    "pair": pair, "speedup": speedup, "hf_assisted": hf_assisted, "bound": bound, "hf_peers": hf_peers,
    "temperature": temperature, "batch": batch_sweep, "cache_hit_vs_fanout": cache_hit_vs_fanout,
    "saguaro_c": saguaro_c, "backup": backup}
# what a section needs configured to have anything to measure
SECTION_NEEDS = {"batch": "batch_sizes", "cache_hit_vs_fanout": "sweep_budgets", "saguaro_c": "sweep_saguaro_c",
                 "backup": "backup_batch_sizes", "temperature": "temperatures"}
SECTION_PAPER = {
    "speedup": PAPER,
    "cache_hit_vs_fanout": {"outcome_prediction": PAPER["outcome_prediction"]},
    "saguaro_c": {"claim": "down-weighting the draft's top-F tokens by C < 1 raises the cache hit rate at "
                           "temperature > 0, output stays exact"},
    "batch": {"claim": "random-token backup keeps SSD ahead of SD at large batch"},
}


# --------------------------------------------------------------------------------------------------- headline


def headline(sections: dict[str, Any]) -> dict[str, Any]:
    """The flat headline keys from whatever sections have run (absent sections give absent keys)."""
    out: dict[str, Any] = {}
    p = sections.get("pair")
    if p:
        out.update({key: p[key] for key in ("step_time_ratio", "target_step_ms", "draft_step_ms", "target_verify_ms",
                                            "target_params", "draft_params")})
        if p.get("training"):
            out.update({key: p["training"][key] for key in ("target_val_loss", "draft_val_loss", "greedy_agreement")})
    s = sections.get("speedup")
    if s:
        for strategy in ("ar", "sd", "ssd"):
            if strategy in s:
                out[f"{strategy}_tok_s"] = s[strategy]["tokens_per_s"]
        out["sd_speedup_vs_ar"] = _ratio(out.get("sd_tok_s"), out.get("ar_tok_s"))
        out["ssd_speedup_vs_sd"] = _ratio(out.get("ssd_tok_s"), out.get("sd_tok_s"))
        out["ssd_speedup_vs_ar"] = _ratio(out.get("ssd_tok_s"), out.get("ar_tok_s"))
        for strategy in ("sd", "ssd"):
            if strategy in s and "mean_accepted" in s[strategy]:
                out[f"mean_accepted_{strategy}"] = s[strategy]["mean_accepted"]
            agreement = s.get(strategy, {}).get("greedy_agreement")
            if agreement is not None:
                margins = [d["top2_margin"] for d in agreement["divergences"]]
                out[f"fraction_identical_{strategy}"] = agreement["fraction_identical"]
                out[f"max_divergence_margin_{strategy}"] = max(margins) if margins else None
        if "ssd" in s:
            out["cache_hit_rate"] = s["ssd"].get("cache_hit_rate")
            if s["ssd"].get("draft_overlap_fraction") is not None:
                out["draft_overlap_fraction"] = s["ssd"]["draft_overlap_fraction"]
    h = sections.get("hf_assisted")
    if h and "plain_tokens_per_s" in h:
        out["hf_generate_pair_tok_s"] = h["plain_tokens_per_s"]
    if h and "tokens_per_s" in h:
        out["hf_assisted_tok_s"] = h["tokens_per_s"]
        out["sd_speedup_vs_hf_assisted"] = _ratio(out.get("sd_tok_s"), h["tokens_per_s"])
        out["ssd_speedup_vs_hf_assisted"] = _ratio(out.get("ssd_tok_s"), h["tokens_per_s"])
    b = sections.get("bound")
    if b:
        out["copy_bandwidth_tb_s"] = b["copy_bandwidth_tb_s"]
        out.update({key: value for key, value in b.items() if key.startswith("ar_fraction_of_bound_")})
        if p and out.get("ar_tok_s"):
            out["ar_fraction_of_bound_pair"] = out["ar_tok_s"] * p["target_bytes_per_token"] / (
                b["copy_bandwidth_tb_s"] * 1e12)
    peers = sections.get("hf_peers")
    if peers:
        for key in ("hf_generate_tok_s", "hf_static_compiled_tok_s"):
            if key in peers:
                out[key] = peers[key]
                ours = (b or {}).get("shapes", {}).get(peers["shape"], {}).get("ar_tok_s")
                out[f"ar_speedup_vs_{key.removesuffix('_tok_s')}"] = _ratio(ours, peers[key])
    return {key: value for key, value in out.items() if value is not None}


# ------------------------------------------------------------------------------------------------- entry point


@hydra_app("ssd", "bench", BenchConfig)
def main(cfg: BenchConfig) -> dict[str, Path]:
    return run_bench(cfg, run_dir())


class ResultsFile:
    """One results JSON for every section, rewritten atomically after each (and by long sections as they go)."""

    def __init__(self, cfg: BenchConfig, device: str) -> None:
        self.cfg, self.device, self.start = cfg, device, time.perf_counter()
        self.name = "_".join(part for part in (cfg.results_name, cfg.tag, cfg.scale) if part)
        self.sections: dict[str, Any] = {}
        self.skipped: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.seconds: dict[str, float] = {}
        self.model: dict[str, str] = {}
        self.path: Path | None = None

    def write(self, partial: str | None = None) -> Path:
        from common.results import write_result

        done = [s for s in self.cfg.sections if s in self.seconds]
        skipped = dict(self.skipped)  # whole sections, then single measurements inside a section
        for name, section in self.sections.items():
            skipped.update({f"{name}.{key}": why for key, why in section.get("skipped", {}).items()})
        metrics = {**headline(self.sections), "complete": len(done) == len(self.cfg.sections) and partial is None,
                   "sections_done": done, "section_in_progress": partial, "section_s": dict(self.seconds),
                   "skipped": skipped, "errors": dict(self.errors), **self.sections, "model": self.model,
                   "setup": {"k": self.cfg.decoding.k, "budget": self.cfg.decoding.budget,
                             "prompts": len(self.cfg.prompts), "max_new_tokens": self.cfg.sampling.max_new_tokens,
                             "temperature": self.cfg.sampling.temperature, "dtype": self.cfg.runtime.dtype}}
        paper = {**PAPER, "issue_12_targets": TARGETS,
                 "issue_12_targets_note": "issue #12's goals for this benchmark, not numbers from the paper"}
        root = Path(self.cfg.results_root) if self.cfg.results_root else None
        self.path = write_result("ssd", "bench", self.cfg.scale, metrics, paper=paper, config=as_dict(self.cfg),
                                 device=self.device, wall_s=time.perf_counter() - self.start, root=root, name=self.name)
        return self.path

    def partial(self, section: str, metrics: dict[str, Any]) -> None:
        self.sections[section] = metrics
        self.write(partial=section)


def run_bench(cfg: BenchConfig, log_dir: Path) -> dict[str, Path]:
    """Run the configured sections; write the results (one file, or one per section); return their paths."""
    import torch

    from common.device import choose_device, describe_device

    seed_everything(cfg.seed)
    if cfg.runtime.threads:
        torch.set_num_threads(cfg.runtime.threads)
    device = describe_device(choose_device(cfg.runtime.device))
    one_file = ResultsFile(cfg, device) if cfg.results_name else None
    bench = Bench(cfg, one_file.partial if one_file else None)
    if one_file is not None:
        one_file.model = {"target": str(bench.target), "draft": str(bench.draft)}
    written: dict[str, Path] = {}
    failed: list[str] = []
    with RunLogger(cfg.logger, log_dir, config=as_dict(cfg), name=f"bench_{cfg.scale}") as log:
        for name in cfg.sections:
            needs = SECTION_NEEDS.get(name)
            if needs and not getattr(cfg, needs):
                if one_file:
                    one_file.skipped[name] = f"{needs} is empty"
                continue
            start = time.perf_counter()
            try:
                metrics = SECTION_FUNCTIONS[name](bench)
            except SectionSkipped as skip:
                if one_file is None:
                    print(f"skip {name}: {skip}", file=sys.stderr)
                    continue
                one_file.skipped[name] = str(skip)
                one_file.seconds[name] = round(time.perf_counter() - start, 3)
                one_file.sections.pop(name, None)
                one_file.write()
                continue
            except Exception as err:  # recorded, the other sections still run; the run fails at the end
                traceback.print_exc()
                failed.append(name)
                if one_file is None:
                    continue
                one_file.errors[name] = f"{type(err).__name__}: {err}"
                one_file.write()
                continue
            finally:
                bench.release()
            log.summary({f"{name}/{k}": v for k, v in _flat(metrics).items()})
            if one_file is not None:
                one_file.sections[name] = metrics
                one_file.seconds[name] = round(time.perf_counter() - start, 3)
                written[name] = one_file.write()
            else:
                written[name] = _write_section(cfg, name, metrics, bench, device, time.perf_counter() - start)
            print(f"wrote {written[name]} ({name}, {time.perf_counter() - start:.1f} s)", file=sys.stderr)
    if one_file is not None and one_file.path is not None:
        print_headline(one_file.path)
    elif "speedup" in written:
        _print_table(written["speedup"])
    if failed:
        raise RuntimeError(f"bench sections failed: {', '.join(failed)} (tracebacks above; the others were written)")
    return written


def _write_section(cfg: BenchConfig, name: str, metrics: dict[str, Any], bench: Bench, device: str,
                   wall_s: float) -> Path:
    from common.results import write_result

    metrics["note"] = ("CPU toy numbers: tiny random models on a shared 2-core CPU; ratios say nothing about GPU "
                       "speed" if cfg.scale != "gpu" else "")
    metrics["model"] = {"target": str(bench.target), "draft": str(bench.draft)}
    return write_result("ssd", name, cfg.scale, metrics, paper=SECTION_PAPER.get(name, {}), config=as_dict(cfg),
                        device=device, wall_s=wall_s, root=Path(cfg.results_root) if cfg.results_root else None,
                        name=f"{name}_{cfg.tag}_{cfg.scale}" if cfg.tag else None)


def _flat(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}/"))
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = v
    return out


def print_headline(path: Path) -> None:
    """The headline keys of a one-file bench, each against issue #12's target where it has one."""
    metrics = json.loads(path.read_text())["metrics"]
    print(f"{path.name}: {'complete' if metrics['complete'] else 'INCOMPLETE'}"
          + "".join(f"; skipped {k} ({v})" for k, v in metrics["skipped"].items())
          + "".join(f"; FAILED {k} ({v})" for k, v in metrics["errors"].items()))
    keys = [k for k in metrics if isinstance(metrics[k], int | float) and not isinstance(metrics[k], bool)]
    for key in keys:
        goal = TARGETS.get(key)
        verdict = "" if goal is None else f"  target >= {goal:g}: {'met' if metrics[key] >= goal else 'NOT met'}"
        print(f"  {key:34} {metrics[key]:12.4g}{verdict}")
    if "speedup" in metrics:
        _print_rows(metrics["speedup"])


def _print_table(path: Path) -> None:
    _print_rows(json.loads(path.read_text())["metrics"])


def _print_rows(rows: dict[str, Any]) -> None:
    print(f"{'strategy':8} {'tok/s':>8} {'x AR':>6} {'x SD':>6} {'acc.len':>7} {'hit':>5} {'async tok/s':>11} "
          f"{'hidden-draft tok/s':>18}")
    for name, r in rows.items():
        if name not in ("ar", "sd", "ssd"):
            continue
        print(f"{name:8} {r['tokens_per_s']:8.1f} {r.get('ratio_vs_ar', 0):6.2f} {r.get('ratio_vs_sd', 0):6.2f} "
              f"{r.get('mean_accepted', 0):7.2f} {r.get('cache_hit_rate', 0):5.2f} "
              f"{r.get('async_tokens_per_s') or 0:11.1f} {r.get('hidden_draft_tokens_per_s') or 0:18.1f}")


if __name__ == "__main__":
    main()
