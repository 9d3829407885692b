"""`python -m ssd.bench experiment=<name>` - AR / SD / SSD and their peers, every ratio from one run.

Sections (`sections`, run in the order given; each one optional):
- `pair`: our pair's batch-1 step times (target and draft forward at T=1, target verify at T=K+1) and their
  ratio `step_time_ratio`; parameter counts, the bytes a target step reads; with `pair_results`, the val losses and
  greedy agreement of the pair's training run (`ssd.training.train_pair`, checked to be the same models).
- `speedup`: AR / SD / SSD at batch 1 on the configured prompts (best of `repeats` after a warm-up): tokens/s,
  ratios, acceptance, cache hit rate; for greedy runs the fraction of outputs identical to AR and the target's
  top-2 logit margin at each divergence (`divergence_report`); the round time split (`round_breakdown`: draft /
  cache build / verify / overhead) from timed runs (`timing=True`): on a GPU one extra run per strategy (timing
  replays a round piece by piece), with the fraction of the verify time the draft stream spent building the
  cache (`draft_overlap_fraction`); on a CPU the headline runs themselves (a timer is a clock read), where the
  cache building runs after the verify and two numbers are derived from the measured times instead:
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
- `speculation_k`: SD / SSD tokens/s, acceptance and hit rate vs the speculation length K (`sweep_k`), AR once.

Results (each with the paper's numbers for the same quantities and the scale we ran at):
- `results_name` set (e.g. `bench`): every section goes into one file `<results_name>_<scale>.json`, rewritten
  after each section (and inside the long ones), so a crash or a time limit keeps what was measured; `complete`
  says whether every section ran. The headline keys (`headline`) sit at the top of its metrics; a section that
  cannot run here (no CUDA, no pair results file) is listed under `skipped` with the reason, never filled in.
- `results_name` null (`make reproduce-ssd`): one file per section, `<section>[_<tag>]_<scale>.json`.
Ratios are always between runs of the same process on the same prompts.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from common.config import as_dict, hydra_app, run_dir
from common.logging import RunLogger
from common.seed import seed_everything
from ssd.bench_config import BenchConfig
from ssd.bench_runs import Bench, SectionSkipped, ratio_or_none, speedups
from ssd.bench_sections import SECTIONS

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
# what a section needs configured to have anything to measure
SECTION_NEEDS = {"batch": "batch_sizes", "cache_hit_vs_fanout": "sweep_budgets", "saguaro_c": "sweep_saguaro_c",
                 "backup": "backup_batch_sizes", "temperature": "temperatures", "speculation_k": "sweep_k"}
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
        out.update(speedups({strategy: out.get(f"{strategy}_tok_s") for strategy in ("ar", "sd", "ssd")}))
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
        out["sd_speedup_vs_hf_assisted"] = ratio_or_none(out.get("sd_tok_s"), h["tokens_per_s"])
        out["ssd_speedup_vs_hf_assisted"] = ratio_or_none(out.get("ssd_tok_s"), h["tokens_per_s"])
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
                out[f"ar_speedup_vs_{key.removesuffix('_tok_s')}"] = ratio_or_none(ours, peers[key])
    if sections.get("speculation_k"):
        out.update(best_k(sections["speculation_k"]))
    return {key: value for key, value in out.items() if value is not None}


def best_k(sweep: dict[str, Any]) -> dict[str, Any]:
    """Each strategy at its own fastest K of the `speculation_k` sweep (one run, one AR): `best_k_<s>`,
    `<s>_best_k_tok_s` and the three speedups with the suffix `_best_k` (SSD vs SD compares both at their best K)."""
    out: dict[str, Any] = {}
    rate = {"ar": sweep.get("tokens_per_s_ar")}
    for strategy in ("sd", "ssd"):
        values = sweep.get(f"tokens_per_s_{strategy}")
        if values:
            i = max(range(len(values)), key=values.__getitem__)
            out[f"best_k_{strategy}"], out[f"{strategy}_best_k_tok_s"] = sweep["k"][i], values[i]
            rate[strategy] = values[i]
    return out | {f"{key}_best_k": value for key, value in speedups(rate).items()}


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

        done = [s for s in self.cfg.sections if s in self.sections and s != partial and s not in self.errors]
        settled = set(done) | set(self.skipped)
        skipped = dict(self.skipped)  # whole sections, then single measurements inside a section
        for name, section in self.sections.items():
            skipped.update({f"{name}.{key}": why for key, why in section.get("skipped", {}).items()})
        complete = partial is None and not self.errors and settled >= set(self.cfg.sections)
        metrics = {**headline(self.sections), "complete": complete,
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
                    one_file.write()
                continue
            start = time.perf_counter()
            try:
                metrics = SECTIONS[name](bench)
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
