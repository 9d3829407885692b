"""Figures from results JSON only: `python -m lejepa.plot [--scale cpu]` -> experiments/lejepa/figures/*.png.

- pretrain_collapse: probe accuracy and effective rank of LeJEPA embeddings, SIGReg vs lambda = 0.
- planning: latent-CEM success rate per world model, with the paper's Two-Room number.
- surprise: prediction error around an injected event (teleport, colour change) vs normal episodes + AUROC.
- probing: R^2 of linear probes from latents to the agent's position.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common.paths import experiments_dir
from common.plotting import PALETTE, PAPER_STYLE, new_figure, save_figure
from common.results import read_result

MODELS = (("lewm", "LeWM (SIGReg)"), ("lewm_lambda0", "LeWM lambda=0"), ("pldm", "PLDM (VICReg)"),
          ("pixel", "pixel recon."))


def _load(results: Path, name: str) -> tuple[dict | None, Path]:
    path = results / f"{name}.json"
    return (read_result(path) if path.exists() else None), path


def plot_pretrain(results: Path, figures: Path, scale: str) -> Path | None:
    runs = [(label, *_load(results, f"pretrain_{key}_{scale}")) for key, label in
            (("sigreg", "SIGReg"), ("lambda0", "lambda=0"))]
    runs = [r for r in runs if r[1] is not None]
    if not runs:
        return None
    fig, axes = new_figure(ncols=3)
    axes = axes.ravel()
    labels = [r[0] for r in runs]
    axes[0].bar(labels, [r[1]["metrics"]["probe_accuracy"] for r in runs], color=PALETTE[: len(runs)])
    axes[0].axhline(0.1, **PAPER_STYLE, label="chance")
    axes[0].set_title("linear probe accuracy (test)")
    axes[0].legend()
    axes[1].bar(labels, [r[1]["metrics"]["embedding_std_mean"] for r in runs], color=PALETTE[: len(runs)])
    axes[1].axhline(1.0, **PAPER_STYLE, label="N(0, I) target")
    axes[1].set_yscale("log")
    axes[1].set_title("embedding std (test, mean over dims)")
    axes[1].legend()
    for (label, rec, _), color in zip(runs, PALETTE, strict=False):
        hist = rec["metrics"]["history"]
        axes[2].plot([h["step"] for h in hist], [h["inv"] for h in hist], color=color, label=f"{label} invariance")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("step")
    axes[2].set_title("invariance loss")
    axes[2].legend()
    fig.suptitle(f"LeJEPA on Fashion-MNIST ({scale} scale)", y=1.04)
    return save_figure(fig, figures / "pretrain_collapse.png", [str(r[2]) for r in runs],
                       caption="SIGReg alone prevents collapse; with lambda=0 the embeddings shrink to a point and the probe drops")


def plot_planning(results: Path, figures: Path, scale: str) -> Path | None:
    runs = [(label, *_load(results, f"plan_{key}_{scale}")) for key, label in MODELS]
    runs = [r for r in runs if r[1] is not None]
    if not runs:
        return None
    fig, ax = new_figure(width=5.0)
    ax.bar([r[0] for r in runs], [r[1]["metrics"]["success_rate"] for r in runs], color=PALETTE[: len(runs)])
    paper = runs[0][1]["paper"].get("success_rate")
    if paper is not None:
        ax.axhline(paper, **PAPER_STYLE, label=f"paper LeWM ({paper:.2f}, full scale)")
        ax.legend()
    ax.set_ylim(0, 1)
    ax.set_ylabel("success rate")
    ax.set_title(f"Two-Room latent CEM planning ({scale} scale)")
    ax.tick_params(axis="x", rotation=15)
    return save_figure(fig, figures / "planning.png", [str(r[2]) for r in runs])


def plot_surprise(results: Path, figures: Path, scale: str) -> Path | None:
    runs = [(label, *_load(results, f"surprise_{key}_{scale}")) for key, label in MODELS]
    runs = [r for r in runs if r[1] is not None]
    if not runs:
        return None
    fig, axes = new_figure(ncols=3)
    axes = axes.ravel()
    main = runs[0][1]["metrics"]
    for ax, event in zip(axes[:2], ("teleport", "color"), strict=True):
        curve, normal = main.get(f"curve_{event}", []), main.get(f"curve_normal_{event}", [])
        offsets = list(range(-(len(curve) // 2), len(curve) - len(curve) // 2))
        ax.plot(offsets, curve, color=PALETTE[1], marker="o", label=event)
        ax.plot(offsets, normal, color=PALETTE[0], marker="o", label="normal")
        ax.axvline(0, **PAPER_STYLE)
        ax.set_xlabel("step relative to event")
        ax.set_title(f"{runs[0][0]}: surprise, {event}")
        ax.legend()
    width = 0.38
    for i, event in enumerate(("teleport", "color")):
        xs = [k + (i - 0.5) * width for k in range(len(runs))]
        axes[2].bar(xs, [r[1]["metrics"].get(f"auroc_{event}", 0) for r in runs], width, label=event,
                    color=PALETTE[i + 1])
    axes[2].set_xticks(range(len(runs)), [r[0] for r in runs], rotation=15)
    axes[2].axhline(0.5, **PAPER_STYLE, label="chance")
    axes[2].set_ylim(0, 1.05)
    axes[2].set_title("event detection AUROC")
    axes[2].legend()
    return save_figure(fig, figures / "surprise.png", [str(r[2]) for r in runs])


def plot_probing(results: Path, figures: Path, scale: str) -> Path | None:
    runs = [(label, *_load(results, f"surprise_{key}_{scale}")) for key, label in MODELS]
    runs = [r for r in runs if r[1] is not None]
    if not runs:
        return None
    fig, ax = new_figure(width=5.0)
    names = list(runs[0][1]["metrics"]["probe_r2"])
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        xs = [k + (i - (len(names) - 1) / 2) * width for k in range(len(runs))]
        ax.bar(xs, [max(r[1]["metrics"]["probe_r2"][name], -0.05) for r in runs], width, label=name,
               color=PALETTE[i])
    ax.set_xticks(range(len(runs)), [r[0] for r in runs], rotation=15)
    ax.set_ylim(-0.05, 1.0)
    ax.set_ylabel("held-out R^2")
    ax.set_title(f"linear probes latents -> state ({scale} scale)")
    ax.legend()
    return save_figure(fig, figures / "probing.png", [str(r[2]) for r in runs])


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="cpu")
    parser.add_argument("--only", default="", help="comma-separated subset: pretrain,planning,surprise,probing")
    args = parser.parse_args(argv)
    results, figures = experiments_dir("lejepa") / "results", experiments_dir("lejepa") / "figures"
    plots = {"pretrain": plot_pretrain, "planning": plot_planning, "surprise": plot_surprise,
             "probing": plot_probing}
    chosen = args.only.split(",") if args.only else list(plots)
    written = [p for name in chosen if (p := plots[name](results, figures, args.scale)) is not None]
    for path in written:
        print(f"wrote {path}")
    return written


if __name__ == "__main__":
    main()
