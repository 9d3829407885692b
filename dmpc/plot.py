"""`python -m dmpc.plot`: figures drawn only from experiments/dmpc/results/*.json.

- `d4rl_<task>_<dataset>_<scale>.json` -> figures/d4rl_<task>_<dataset>_<scale>.png: D4RL-normalized score
  per method (bars, with the dataset's own average as a dashed line) and planning latency (ms per action).
- `jump_*.json`, `broken_ankle_*.json` -> one bar chart of returns per method.
- `distill_<scale>.json` -> the distilled student per DAgger round: its return next to the planner's (dashed), and
  its MSE to the planner's actions on held-out states (and on the states it visits itself, before training on
  them) next to the untrained policy's and BC's (dashed, dotted); actions/s of both in the title.
- `datasets.json` -> figures/datasets.png: each dataset's D4RL-normalized level per task, with the levels D4RL's
  definitions give (its `paper` block) as dashed marks.
- `trainer_costs_*.json` has no figure (the status table shows it).
"""

from __future__ import annotations

import sys
from pathlib import Path

from common.paths import experiments_dir
from common.plotting import PALETTE, PAPER_STYLE, new_figure, save_figure
from common.results import read_result

METHOD_ORDER = ("dmpc", "dmpc_1step", "dmpc_finetuned", "dmpc_original", "dmpc_distilled", "mbop", "bc", "behaviour")


def plot_all(results_dir: Path | None = None, figures_dir: Path | None = None) -> list[Path]:
    results_dir = results_dir or experiments_dir("dmpc") / "results"
    figures_dir = figures_dir or experiments_dir("dmpc") / "figures"
    written = []
    for path in sorted(results_dir.glob("*.json")):
        record = read_result(path)
        if record["experiment"] == "datasets":
            written.append(plot_datasets(path, record, figures_dir / f"{path.stem}.png"))
        elif record["experiment"] == "distill":
            written.append(plot_distill(path, record, figures_dir / f"{path.stem}.png"))
        elif record["experiment"] != "trainer_costs":
            written.append(plot_result(path, record, figures_dir / f"{path.stem}.png"))
    return written


DATASET_KINDS = ("random", "medium", "medium_replay", "medium_expert", "expert")


def plot_datasets(path: Path, record: dict, out: Path) -> Path:
    metrics, paper = record["metrics"], record["paper"]
    tasks = [t for t in ("hopper", "walker2d", "halfcheetah") if f"{t}_medium_normalized" in metrics]
    fig, ax = new_figure(width=6.4)
    width = 0.8 / len(DATASET_KINDS)
    for i, kind in enumerate(DATASET_KINDS):
        xs = [t + (i - 2) * width for t in range(len(tasks))]
        ax.bar(xs, [metrics.get(f"{task}_{kind}_normalized", 0.0) for task in tasks], width=width,
               color=PALETTE[i], label=kind.replace("_", "-"))
        for x, task in zip(xs, tasks, strict=True):
            level = paper.get(f"{task}_{kind}_normalized")
            if level is not None:
                ax.hlines(level, x - width / 2, x + width / 2, **PAPER_STYLE)
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylabel("D4RL-normalized return")
    ax.set_title(f"our datasets ({record['scale']} scale); dashes: D4RL's definitions")
    ax.legend(fontsize=7, ncols=5, loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    return save_figure(fig, out, source=path, caption=f"dataset levels at {record['scale']} scale")


def plot_distill(path: Path, record: dict, out: Path) -> Path:
    metrics = record["metrics"]
    rounds = [r["round"] for r in metrics["rounds"]]
    fig, axes = new_figure(ncols=2)
    ax, ax2 = axes[0]
    ax.plot(rounds, [r["return_mean"] for r in metrics["rounds"]], "o-", color=PALETTE[0], label="student")
    ax.axhline(metrics["planner"]["return_mean"], label="D-MPC planner", **PAPER_STYLE)
    ax.set_xlabel("DAgger round")
    ax.set_ylabel("episode return")
    ax.legend(fontsize=8, frameon=True, framealpha=0.9)
    speed = metrics["student"]["actions_per_s"], metrics["planner"]["actions_per_s"]
    ax.set_title(f"{speed[0]:.0f} vs {speed[1]:.1f} actions/s" if all(speed) else "return")
    ax2.plot(rounds, [r["val_mse"] for r in metrics["rounds"]], "o-", color=PALETTE[1],
             label="student, held-out episodes")
    visited = [(r["round"], r["visited_mse"]) for r in metrics["rounds"] if r["visited_mse"] is not None]
    if visited:
        ax2.plot(*zip(*visited, strict=True), "s", color=PALETTE[2], label="previous student, states it visits")
    ax2.axhline(metrics["untrained_val_mse"], label="untrained", **PAPER_STYLE)
    if metrics.get("bc_val_mse") is not None:
        ax2.axhline(metrics["bc_val_mse"], label="BC", **{**PAPER_STYLE, "linestyle": ":"})
    ax2.set_yscale("log")
    for axis in (ax, ax2):
        axis.set_xticks(rounds)
    ax2.set_xlabel("DAgger round")
    ax2.set_ylabel("MSE to the planner's actions")
    ax2.legend(fontsize=8, frameon=True, framealpha=0.9)
    fig.subplots_adjust(wspace=0.45)
    return save_figure(fig, out, source=path, caption=f"planner distillation at {record['scale']} scale")


def _methods(metrics: dict) -> list[str]:
    names = [m for m in metrics if m not in ("dataset", "diagnostics")]
    return sorted(names, key=lambda m: METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER))


def plot_result(path: Path, record: dict, out: Path) -> Path:
    metrics = record["metrics"]
    methods = _methods(metrics)
    normalized = all("normalized_mean" in metrics[m] for m in methods)
    key, err = ("normalized_mean", "normalized_std") if normalized else ("return_mean", "return_std")
    fig, axes = new_figure(ncols=2)
    ax = axes[0, 0] if hasattr(axes, "shape") and axes.ndim == 2 else axes[0]
    x = range(len(methods))
    ax.bar(x, [metrics[m][key] for m in methods], yerr=[metrics[m][err] for m in methods],
           color=[PALETTE[i % len(PALETTE)] for i in x])
    if normalized and "normalized_mean" in metrics.get("dataset", {}):
        ax.axhline(metrics["dataset"]["normalized_mean"], label=f"data: {metrics['dataset']['name']}", **PAPER_STYLE)
        ax.legend(loc="lower right", fontsize=8, framealpha=0.9, frameon=True)
    ax.set_xticks(list(x), methods, rotation=30, ha="right")
    ax.set_ylabel("D4RL-normalized score" if normalized else "episode return")
    ax.set_title(f"{record['experiment']} ({record['scale']} scale)")
    ax2 = axes[0, 1] if hasattr(axes, "shape") and axes.ndim == 2 else axes[1]
    lat = [metrics[m].get("ms_per_action") or 0.0 for m in methods]
    ax2.bar(x, lat, color=[PALETTE[i % len(PALETTE)] for i in x])
    ax2.set_xticks(list(x), methods, rotation=30, ha="right")
    ax2.set_ylabel("ms per action")
    ax2.set_yscale("log")
    ax2.set_title("planning latency")
    fig.subplots_adjust(wspace=0.4)
    return save_figure(fig, out, source=path, caption=f"{record['experiment']} at {record['scale']} scale")


if __name__ == "__main__":
    for p in plot_all(*(Path(a) for a in sys.argv[1:3])):
        print(p)
