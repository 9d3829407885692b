"""One figure style for every package: PNG plus the JSON it was drawn from.

    fig, ax = new_figure()
    ax.plot(x, y, label="ours")
    save_figure(fig, "experiments/ssd/figures/speedup.png", source="experiments/ssd/results/speedup_gpu.json")

Figures are drawn from results JSON only; `save_figure` records which file(s) in a sidecar `<name>.json`, as paths
relative to the repository root (so the sidecar is the same in every checkout).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.paths import repo_root

# Colour-blind-safe palette (Okabe-Ito), in the order series are usually drawn: ours first, baselines after.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
PAPER_STYLE = {"color": "#555555", "linestyle": "--", "linewidth": 1.2}

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 160,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
    "lines.linewidth": 1.8,
    "lines.markersize": 5,
}


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.2, **kwargs: Any):
    """(figure, axes) in the house style, with the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from cycler import cycler

    plt.rcParams.update(STYLE)
    plt.rcParams["axes.prop_cycle"] = cycler(color=PALETTE)
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=nrows * ncols == 1,
                        **kwargs)


def save_figure(fig, path: str | Path, source: str | Path | Sequence[str | Path], caption: str = "") -> Path:
    """Save `fig` as PNG at `path` and a sidecar JSON naming the results file(s) it was drawn from.

    Sources inside the repository are written relative to its root (`experiments/ssd/results/x.json`), whether
    they were passed as absolute paths or relative to the working directory; others are kept as given.
    """
    import matplotlib.pyplot as plt

    path = Path(path).with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    sources = [_repo_relative(source)] if isinstance(source, str | Path) else [_repo_relative(s) for s in source]
    path.with_suffix(".json").write_text(json.dumps({"figure": path.name, "sources": sources,
                                                     "caption": caption}, indent=2) + "\n")
    return path


def _repo_relative(source: str | Path) -> str:
    """`source` as a POSIX path relative to the repository root when it lies inside it, else as given."""
    path = Path(source)
    try:
        return (path if path.is_absolute() else Path.cwd() / path).resolve().relative_to(repo_root()).as_posix()
    except ValueError:
        return str(source)
