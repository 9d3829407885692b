"""`python -m ssd.plot scale=cpu` - draw experiments/ssd/figures/*.png from experiments/ssd/results/*_<scale>.json.

Figures are drawn only from results JSON (written by `python -m ssd.bench`); a missing results file skips its
figure with a message.
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
