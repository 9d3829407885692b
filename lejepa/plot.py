"""Figures from results JSON only: `python -m lejepa.plot [--scale cpu]` -> experiments/lejepa/figures/*.png
(`<name>_<scale>.png` for a scale other than cpu).

- pretrain_collapse: probe accuracy and embedding std of LeJEPA embeddings, SIGReg vs lambda = 0.
- planning: success per env and world model (error bars over seeds, the paper's LeWM dashed) and time per plan
  (worldmodel_<scale>.json, written by `python -m lejepa.summarize`).
- surprise: LeWM's surprise trace of one episode per env with the event marked (teleport, colour change), AUROC.
- collapse: latent std, unit-variance rank, standardized effective rank, SIGReg and probe R^2 during training for
  each lambda of the sweep.
- probing: mean held-out R^2 of linear probes latents -> physical state, per env and model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common.paths import experiments_dir
from common.plotting import PALETTE, PAPER_STYLE, new_figure, save_figure
from common.results import read_result


def _figure(figures: Path, stem: str, scale: str) -> Path:
    """The figure's path: `<stem>.png` at the cpu scale (the names the README links), `<stem>_<scale>.png` otherwise."""
    return figures / (f"{stem}.png" if scale == "cpu" else f"{stem}_{scale}.png")


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
    return save_figure(fig, _figure(figures, "pretrain_collapse", scale), [str(r[2]) for r in runs],
                       caption="SIGReg alone prevents collapse; with lambda=0 the embeddings shrink to a point and the probe drops")


MODELS = (("lewm", "LeWM"), ("pldm", "PLDM"), ("pixel", "pixel recon."), ("lambda0", "lambda=0"),
          ("patch_wm", "patch-token WM"))
ENVS = (("two_room", "Two-Room"), ("push_t", "Push-T"), ("reacher", "Reacher"), ("cube", "Cube"))
DIAGNOSTICS = (("latent_std", "latent std (target 1)", True), ("unit_variance_rank", "unit-variance rank", False),
               ("standardized_effective_rank", "eff. rank, standardized", False), ("sigreg", "SIGReg", True),
               ("probe_r2_mean", "probe R^2 (mean)", False))


def plot_planning(results: Path, figures: Path, scale: str) -> Path | None:
    """Success bars (env x model, error bars over seeds, the paper's LeWM number dashed) and time per plan."""
    summary, path = _load(results, f"worldmodel_{scale}")
    if summary is None:
        return None
    m, paper = summary["metrics"], summary["paper"].get("success", {})
    envs = [(e, label) for e, label in ENVS if any(f"success_{e}_{k}" in m for k, _ in MODELS)]
    if not envs:
        return None
    fig, axes = new_figure(ncols=2, width=5.2)
    axes = axes.ravel()
    width = 0.8 / len(MODELS)
    for i, (key, label) in enumerate(MODELS):
        xs = [k + (i - (len(MODELS) - 1) / 2) * width for k in range(len(envs))]
        axes[0].bar(xs, [m.get(f"success_{e}_{key}", 0.0) for e, _ in envs], width,
                    yerr=[m.get(f"success_{e}_{key}_std", 0.0) for e, _ in envs], label=label, color=PALETTE[i])
        axes[1].bar(xs, [m.get(f"plan_time_s_{e}_{key}", 0.0) for e, _ in envs], width, label=label,
                    color=PALETTE[i])
    for k, (e, _) in enumerate(envs):
        if e in paper:
            axes[0].plot([k - 0.45, k + 0.45], [paper[e]] * 2, **PAPER_STYLE)
    axes[0].set_xticks(range(len(envs)), [label for _, label in envs])
    axes[0].set_ylim(0, 1.05)
    axes[0].set_ylabel("success rate (dashed: paper LeWM)")
    axes[0].set_title(f"latent CEM planning ({scale} scale)")
    axes[0].legend(fontsize=8)
    axes[1].set_xticks(range(len(envs)), [label for _, label in envs])
    axes[1].set_yscale("log")
    axes[1].set_ylabel("s per problem per planning call")
    axes[1].set_title("time per plan (same CEM budget)")
    return save_figure(fig, _figure(figures, "planning", scale), [str(path)])


def plot_surprise(results: Path, figures: Path, scale: str) -> Path | None:
    """Per env: LeWM's prediction-error trace of one episode with the event marked, for teleport and colour change,
    with the same episode without the event; the AUROC in the title."""
    runs = [(e, label, *_load(results, f"surprise_{e}_lewm_s0_{scale}")) for e, label in ENVS]
    runs = [r for r in runs if r[2] is not None]
    if not runs:
        return None
    fig, axes = new_figure(ncols=len(runs), nrows=2, width=3.6, height=2.6)
    for col, (_, label, rec, _) in enumerate(runs):
        met = rec["metrics"]
        for row, event in enumerate(("teleport", "color")):
            ax = axes[row][col]
            ax.plot(met[f"trace_normal_{event}"], color=PALETTE[0], marker="o", label="no event")
            ax.plot(met[f"trace_{event}"], color=PALETTE[1], marker="o", label=event)
            ax.axvline(met[f"trace_event_step_{event}"], **PAPER_STYLE)
            ax.set_title(f"{label}: {event} (AUROC {met[f'auroc_{event}']:.2f})", fontsize=9)
            ax.set_xlabel("model step (dashed: event)")
            if col == 0:
                ax.set_ylabel("surprise")
            ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, _figure(figures, "surprise", scale), [str(r[3]) for r in runs])


def plot_collapse(results: Path, figures: Path, scale: str) -> Path | None:
    """Collapse diagnostics logged during training, one line per sigreg_lambda, for each env that has a sweep."""
    summary, path = _load(results, f"worldmodel_{scale}")
    if summary is None:
        return None
    sweeps = [(e, label, summary["metrics"][f"collapse_{e}"]) for e, label in ENVS
              if summary["metrics"].get(f"collapse_{e}")]
    if not sweeps:
        return None
    fig, axes = new_figure(ncols=len(DIAGNOSTICS), nrows=len(sweeps), width=3.0, height=2.5)
    for row, (_, label, curves) in enumerate(sweeps):
        for col, (key, title, log) in enumerate(DIAGNOSTICS):
            ax = axes[row][col]
            for i, curve in enumerate(sorted(curves.values(), key=lambda c: c["sigreg_lambda"])):
                points = curve["points"]
                ax.plot([p["step"] for p in points], [p[key] for p in points], color=PALETTE[i % len(PALETTE)],
                        label=f"lambda={curve['sigreg_lambda']:g}")
            if log:
                ax.set_yscale("log")
            ax.set_title(f"{label}: {title}", fontsize=9)
            ax.set_xlabel("step")
            if col == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, _figure(figures, "collapse", scale), [str(path)])


def plot_probing(results: Path, figures: Path, scale: str) -> Path | None:
    summary, path = _load(results, f"worldmodel_{scale}")
    if summary is None:
        return None
    m = summary["metrics"]
    envs = [(e, label) for e, label in ENVS if any(f"probe_r2_{e}_{k}" in m for k, _ in MODELS)]
    if not envs:
        return None
    fig, ax = new_figure(width=6.0)
    width = 0.8 / len(MODELS)
    for i, (key, label) in enumerate(MODELS):
        xs = [k + (i - (len(MODELS) - 1) / 2) * width for k in range(len(envs))]
        ax.bar(xs, [max(m.get(f"probe_r2_{e}_{key}", 0.0), -0.05) for e, _ in envs], width, label=label,
               color=PALETTE[i])
    ax.set_xticks(range(len(envs)), [label for _, label in envs])
    ax.set_ylim(-0.05, 1.0)
    ax.set_ylabel("held-out R^2 (mean over quantities)")
    ax.set_title(f"linear probes latents -> state ({scale} scale)")
    ax.legend(fontsize=8)
    return save_figure(fig, _figure(figures, "probing", scale), [str(path)])


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="cpu")
    parser.add_argument("--only", default="",
                        help="comma-separated subset: pretrain,planning,surprise,probing,collapse")
    args = parser.parse_args(argv)
    results, figures = experiments_dir("lejepa") / "results", experiments_dir("lejepa") / "figures"
    plots = {"pretrain": plot_pretrain, "planning": plot_planning, "surprise": plot_surprise,
             "probing": plot_probing, "collapse": plot_collapse}
    chosen = args.only.split(",") if args.only else list(plots)
    written = [p for name in chosen if (p := plots[name](results, figures, args.scale)) is not None]
    for path in written:
        print(f"wrote {path}")
    return written


if __name__ == "__main__":
    main()
