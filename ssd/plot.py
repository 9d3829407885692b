"""`python -m ssd.plot scale=cpu` - draw experiments/ssd/figures/*.png from experiments/ssd/results/*_<scale>.json.

Figures are drawn only from results JSON (written by `python -m ssd.bench`); a missing results file (or, in the
one-file benchmark `bench_<scale>.json`, a missing section) skips its figure with a message.
- per-section files (`make reproduce-ssd`): speedup, cache_hit_vs_fanout, saguaro_c, batch;
- `bench_<scale>.json` (`make bench-ssd`): `bench_batch` (tokens/s vs batch for AR/SD/SSD, HF at batch 1),
  `bench_bound` (fraction of the memory-bandwidth bound: ours, our torch path, HF), `bench_fanout` (hit rate vs
  budget, geometric vs uniform fan-out) and `bench_round_time` (time per round: draft / cache build / verify /
  overhead, with the measured overlap) and `bench_k` (SD / SSD speed-up, acceptance and hit rate vs K).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from common.config import LoggerConfig, check_choice, hydra_app
from common.paths import experiments_dir
from common.plotting import PALETTE, PAPER_STYLE, new_figure, save_figure


def plot_all(scale: str = "cpu", root: Path | None = None) -> list[Path]:
    """Every figure whose results exist; returns the PNG paths."""
    base = (root / "experiments" / "ssd") if root else experiments_dir("ssd")
    drawn = []
    for name, fn in (("speedup", speedup), ("cache_hit_vs_fanout", cache_hit_vs_fanout),
                     ("saguaro_c", saguaro_c), ("batch", batch)):
        source = base / "results" / f"{name}_{scale}.json"
        if not source.is_file():
            print(f"skip {name}: no {source}", file=sys.stderr)
            continue
        record = json.loads(source.read_text())
        if name == "cache_hit_vs_fanout":  # our trained pair's sweep, when `make reproduce-ssd` ran it
            trained = base / "results" / f"{name}_trained_{scale}.json"
            extra = json.loads(trained.read_text()) if trained.is_file() else None
            drawn.append(fn(record, source, base / "figures" / f"{name}_{scale}.png", extra, trained))
            continue
        drawn.append(fn(record, source, base / "figures" / f"{name}_{scale}.png"))
    source = base / "results" / f"bench_{scale}.json"
    if not source.is_file():
        print(f"skip bench figures: no {source}", file=sys.stderr)
        return drawn
    record = json.loads(source.read_text())
    for name, (needs, fn) in BENCH_FIGURES.items():
        if not _has(record["metrics"], needs):
            print(f"skip {name}: no {'.'.join(needs)} in {source}", file=sys.stderr)
            continue
        drawn.append(fn(record, source, base / "figures" / f"{name}_{scale}.png"))
    return drawn


def speedup(record: dict, source: Path, out: Path) -> Path:
    """Left: our tokens/s ratio to AR (measured, and derived for SSD); right: the paper's ratios."""
    m, paper = record["metrics"], record["paper"]
    fig, axes = new_figure(2)
    ax, ax_paper = axes[0]
    names = [n for n in ("ar", "sd", "ssd") if n in m]
    ratios = [m[n]["ratio_vs_ar"] for n in names]
    ax.bar(names, ratios, color=PALETTE[0], label="measured")
    if "ssd" in m and m["ssd"].get("hidden_draft_ratio_vs_ar"):
        ax.bar(["ssd\n(draft hidden)"], [m["ssd"]["hidden_draft_ratio_vs_ar"]], color=PALETTE[1],
               label="derived: cache build on own device")
    ax.axhline(1.0, **PAPER_STYLE)
    ax.set_ylabel("tokens/s relative to AR")
    ax.set_title(f"ours ({record['scale']}, batch 1, T=0)")
    ax.legend(fontsize=8)
    tps = paper["tokens_per_s"]
    ax_paper.bar(list(tps), [v / tps["ar"] for v in tps.values()], color=PALETTE[2])
    ax_paper.set_title("paper (Llama-70B + 1B draft, H100s)")
    ax_paper.tick_params(axis="x", labelsize=8)
    return save_figure(fig, out, source, caption="AR/SD/SSD throughput relative to AR")


def cache_hit_vs_fanout(record: dict, source: Path, out: Path, trained: dict | None = None,
                        trained_source: Path | None = None) -> Path:
    fig, ax = new_figure()
    series = [("random toy pair", record, "-")] + ([("trained pair", trained, ":")] if trained else [])
    for label, rec, style in series:
        m = rec["metrics"]
        for i, key in enumerate(k for k in m if k.startswith("cache_hit_rate_t")):
            ax.plot(m["budget"], m[key], marker="o", linestyle=style, color=PALETTE[i],
                    label=f"{label}, T={key.split('_t')[-1]}")
    ax.axhspan(0.8, 0.9, color="#cccccc", alpha=0.5, label="paper: 80-90% at B~20-30")
    ax.set_xlabel("speculation budget B (sum of fan-outs)")
    ax.set_ylabel("cache hit rate")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    ax.set_title(f"outcome prediction vs fan-out ({record['scale']})")
    sources = [source] + ([trained_source] if trained else [])
    return save_figure(fig, out, sources, caption="SSD cache hit rate vs budget (geometric fan-out)")


def saguaro_c(record: dict, source: Path, out: Path) -> Path:
    m = record["metrics"]
    fig, ax = new_figure()
    ax.plot(m["c"], m["cache_hit_rate"], marker="o", color=PALETTE[0], label="cache hit rate")
    ax2 = ax.twinx()
    ax2.plot(m["c"], m["mean_accepted"], marker="s", color=PALETTE[1], label="mean accepted")
    ax.set_xlabel("Saguaro C (down-weight of the draft's top-F tokens)")
    ax.set_ylabel("cache hit rate")
    ax2.set_ylabel("accepted tokens / round")
    ax.invert_xaxis()
    fig.legend(fontsize=8, loc="lower left")
    ax.set_title(f"Saguaro sampling, T=1 ({record['scale']})")
    return save_figure(fig, out, source, caption="Saguaro sampling ablation")


def batch(record: dict, source: Path, out: Path) -> Path:
    m = record["metrics"]
    fig, ax = new_figure()
    for i, key in enumerate(k for k in m if k.startswith("tokens_per_s_")):
        ax.plot(m["batch_size"], m[key], marker="o", color=PALETTE[i], label=key.removeprefix("tokens_per_s_"))
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("tokens/s (all sequences)")
    ax.legend(fontsize=8)
    ax.set_title(f"throughput vs batch ({record['scale']})")
    return save_figure(fig, out, source, caption="tokens/s vs batch size")


# ------------------------------------------------------------------------------------- bench_<scale>.json figures


def _where(record: dict) -> str:
    """`gpu (NVIDIA H200)` / `cpu`: the scale and the device the numbers were measured on."""
    device = record.get("provenance", {}).get("device", "")
    return f"{record['scale']}, {device}" if device else record["scale"]


def bench_batch(record: dict, source: Path, out: Path) -> Path:
    """Tokens/s (all sequences) vs batch size for AR / SD / SSD; HF peers with our pair as batch-1 points."""
    m = record["metrics"]
    sweep = m["batch"]
    fig, ax = new_figure(width=5.0)
    for i, strategy in enumerate(("ar", "sd", "ssd")):
        if f"tokens_per_s_{strategy}" in sweep:
            ax.plot(sweep["batch_size"], sweep[f"tokens_per_s_{strategy}"], marker="o", color=PALETTE[i],
                    label=strategy.upper())
    for i, (key, label) in enumerate((("hf_assisted_tok_s", "HF assisted generation"),
                                      ("hf_generate_pair_tok_s", "HF generate"))):
        if key in m:
            ax.plot([1], [m[key]], marker="s", linestyle="none", color=PALETTE[3 + i], label=f"{label} (batch 1)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("tokens/s (all sequences)")
    ax.legend(fontsize=8)
    ax.set_title(f"throughput vs batch, our pair ({_where(record)})", fontsize=9)
    return save_figure(fig, out, source, caption="tokens/s vs batch size: AR / SD / SSD and HF with the same pair")


def bench_bound(record: dict, source: Path, out: Path) -> Path:
    """Fraction of the memory-bandwidth bound at batch 1: ours (and with the skinny-GEMM projections, where
    measured), our torch path, HF generate (dynamic, static + compile) per random Llama shape, and our pair's AR."""
    m = record["metrics"]
    shapes, peers = m["bound"]["shapes"], m.get("hf_peers", {})
    groups: dict[str, dict[str, float]] = {}
    for name, row in shapes.items():
        label = name.upper() + (" (timing only)" if name in m["bound"].get("timing_only", []) else "")
        bars = {"ours": row["ar_fraction_of_bound"]}
        if "ar_skinny_gemm_tok_s" in row:
            bars["ours, skinny-GEMM projections"] = row["ar_skinny_gemm_tok_s"] / row["bound_tok_s"]
        bars["ours, torch path"] = row["ar_torch_path_tok_s"] / row["bound_tok_s"]
        if peers.get("shape") == name:
            for key, bar in (("hf_generate_tok_s", "HF generate"), ("hf_static_compiled_tok_s", "HF static + compile")):
                if key in peers:
                    bars[bar] = peers[key] / row["bound_tok_s"]
        groups[label] = bars
    if "ar_fraction_of_bound_pair" in m:
        groups["our pair"] = {"ours": m["ar_fraction_of_bound_pair"]}
    series = list(dict.fromkeys(bar for bars in groups.values() for bar in bars))
    fig, ax = new_figure(width=5.4)
    width = 0.8 / len(series)
    for j, bar in enumerate(series):
        xs = [i + j * width for i, bars in enumerate(groups.values()) if bar in bars]
        ys = [bars[bar] for bars in groups.values() if bar in bars]
        ax.bar(xs, ys, width, color=PALETTE[j], label=bar)
    ax.axhline(0.8, **PAPER_STYLE, label="issue target: 80%")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))], list(groups), fontsize=8)
    ax.set_ylabel("fraction of the bound (bandwidth / bytes per token)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    ax.set_title(f"AR at batch 1 vs the bandwidth bound ({m['bound']['copy_bandwidth_tb_s']:.2f} TB/s measured)",
                 fontsize=9)
    return save_figure(fig, out, source, caption="AR decode throughput as a fraction of the memory-bandwidth bound")


def bench_fanout(record: dict, source: Path, out: Path) -> Path:
    """SSD cache hit rate vs budget B: geometric fan-out (solid) and the budget split evenly (dashed)."""
    m = record["metrics"]
    sweep = m["cache_hit_vs_fanout"]
    fig, ax = new_figure(width=5.0)
    for i, t in enumerate(sweep["temperatures"]):
        for prefix, style, marker, kind in (("", "-", "o", "geometric"), ("uniform_", "--", "s", "uniform")):
            key = f"{prefix}cache_hit_rate_t{t:g}"
            if key in sweep:
                ax.plot(sweep["budget"], sweep[key], marker=marker, linestyle=style, color=PALETTE[i],
                        fillstyle="full" if kind == "geometric" else "none", label=f"{kind}, T={t:g}")
    ax.axhspan(0.8, 0.9, color="#cccccc", alpha=0.5, label="paper: 80-90% at B~20-30")
    if "setup" in m:
        ax.axvline(m["setup"]["budget"], color="#999999", linestyle=":", linewidth=1, label="headline budget")
    ax.set_xlabel("speculation budget B (sum of fan-outs)")
    ax.set_ylabel("cache hit rate")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    ax.set_title(f"outcome prediction vs fan-out ({_where(record)})", fontsize=9)
    return save_figure(fig, out, source, caption="SSD cache hit rate vs budget: geometric vs uniform fan-out")


def bench_round_time(record: dict, source: Path, out: Path) -> Path:
    """Milliseconds per round of the timed runs, stacked: draft, verify, overhead, and the cache build - on top
    when it ran after the verify, beside the bar (hatched) when it ran on its own stream during the verify."""
    rows = record["metrics"]["speedup"]["round_breakdown"]
    fig, ax = new_figure(width=5.0)
    parts = (("draft", PALETTE[0]), ("verify", PALETTE[1]), ("overhead", PALETTE[2]), ("cache_build", PALETTE[3]))
    labelled: set[str] = set()
    for i, row in enumerate(rows.values()):
        bottom = 0.0
        for part, color in parts:
            if part == "cache_build" and row["concurrent"]:
                continue
            label = None if part in labelled else part.replace("_", " ")
            labelled.add(part)
            ax.bar(i, row[part], 0.5, bottom=bottom, color=color, label=label)
            bottom += row[part]
        if row["concurrent"] and row["cache_build"]:
            overlap = row.get("draft_overlap_fraction")
            ax.bar(i + 0.3, row["cache_build"], 0.12, color=PALETTE[3], hatch="//", edgecolor="white",
                   label="cache build (own stream, beside the verify)")
            if overlap is not None:
                ax.text(i + 0.3, row["cache_build"], f"overlap\n{overlap:.0%}", ha="center", va="bottom", fontsize=7)
        ax.text(i, bottom, f"{row['tokens_per_round']:.2f} tok/round", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(rows)), [name.upper() for name in rows])
    ax.set_ylim(0, ax.get_ylim()[1] * 1.15)  # room for the labels on top of the bars
    ax.set_ylabel("ms per round (timed run, batch 1)")
    ax.legend(fontsize=7)
    ax.set_title(f"where a round's time goes ({_where(record)})", fontsize=9)
    return save_figure(fig, out, source, caption="round time breakdown: draft / cache build / verify / overhead")


# figure name -> (the key path in the metrics it is drawn from, the function)
def bench_k(record: dict, source: Path, out: Path) -> Path:
    """Left: SD / SSD speed-up over AR vs the speculation length K; right: accepted tokens per round and the SSD
    cache hit rate."""
    sweep = record["metrics"]["speculation_k"]
    fig, axes = new_figure(ncols=2)
    left, right = axes[0]
    for i, (key, label) in enumerate((("sd_speedup_vs_ar", "SD / AR"), ("ssd_speedup_vs_ar", "SSD / AR"))):
        if key in sweep:
            left.plot(sweep["k"], sweep[key], marker="o", color=PALETTE[i + 1], label=label)
    left.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    left.set_xlabel("speculation length K")
    left.set_ylabel("tokens/s ratio to AR (same run)")
    left.legend(fontsize=8)
    for i, key in enumerate(("mean_accepted_sd", "mean_accepted_ssd")):
        if key in sweep:
            right.plot(sweep["k"], sweep[key], marker="o", color=PALETTE[i + 1],
                       label=f"accepted per round, {key.rsplit('_', 1)[1].upper()}")
    if "cache_hit_rate_ssd" in sweep:
        hit = right.twinx()
        hit.plot(sweep["k"], sweep["cache_hit_rate_ssd"], marker="s", linestyle="--", color=PALETTE[3],
                 label="SSD cache hit rate")
        hit.set_ylim(0, 1)
        hit.set_ylabel("cache hit rate")
        hit.legend(fontsize=8, loc="lower right")
    right.set_xlabel("speculation length K")
    right.set_ylabel("draft tokens accepted per round")
    right.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"speculation length, our pair, batch 1 ({_where(record)})", fontsize=9)
    return save_figure(fig, out, source, caption="SD / SSD vs the speculation length K: speed-up, acceptance, hits")


BENCH_FIGURES = {"bench_batch": (("batch",), bench_batch), "bench_bound": (("bound", "shapes"), bench_bound),
                 "bench_fanout": (("cache_hit_vs_fanout",), bench_fanout),
                 "bench_round_time": (("speedup", "round_breakdown"), bench_round_time),
                 "bench_k": (("speculation_k",), bench_k)}


def _has(metrics: dict, path: tuple[str, ...]) -> bool:
    for key in path:
        if not isinstance(metrics, dict) or key not in metrics:
            return False
        metrics = metrics[key]
    return True


@dataclass
class PlotConfig:
    scale: str = "cpu"
    results_root: str | None = None  # None: the repository's experiments/
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def __post_init__(self) -> None:
        check_choice("scale", self.scale, ("cpu", "gpu", "tiny"))


@hydra_app("ssd", "plot", PlotConfig)
def main(cfg: PlotConfig) -> list[Path]:
    paths = plot_all(cfg.scale, Path(cfg.results_root) if cfg.results_root else None)
    for path in paths:
        print(path)
    return paths


if __name__ == "__main__":
    main()
