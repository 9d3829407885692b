"""Figures from results JSON only: `python -m data_constrained.plot [--scale cpu]`.

- `asymptote_<scale>.png`: held-out loss vs parameters for the default and tuned recipes and K-member ensembles,
  with the fitted power laws and their asymptotes (the paper's figure 1 / 3 analog).
- `data_law_<scale>.png`: the default recipe's loss vs unique tokens with its fit, and where each asymptote
  would need the default recipe to be (the data-efficiency multiplier).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from common.paths import experiments_dir
from common.plotting import PALETTE, PAPER_STYLE, new_figure, save_figure
from common.results import read_result, result_path
from data_constrained.scaling import PowerLaw


def plot_asymptote(record: dict, out: Path, source: Path) -> Path:
    m = record["metrics"]
    fig, ax = new_figure()
    n_all = [x for key in ("default", "tuned") for x in m[key]["x"]]
    grid = np.geomspace(min(n_all) / 1.5, max(n_all) * 20, 100)
    for color, key, label in ((PALETTE[1], "default", "default (wd 0.1)"), (PALETTE[0], "tuned", "tuned wd")):
        ax.plot(m[key]["x"], m[key]["loss"], "o", color=color, label=label)
        if "fit" in m[key]:
            law = PowerLaw(**m[key]["fit"])
            ax.plot(grid, law(grid), "-", color=color, alpha=0.6)
            ax.axhline(law.E, color=color, linestyle=":", linewidth=1, label=f"{key} asymptote {law.E:.3f}")
    points = m["ensembles"]["points"]
    k_max = max((p[1] for p in points), default=1)
    top = sorted((p for p in points if p[1] == k_max), key=lambda p: p[0])
    if k_max > 1:
        ax.plot([p[0] for p in top], [p[2] for p in top], "s", color=PALETTE[2], label=f"ensemble K={k_max}")
        if "asymptote" in m["ensembles"]:
            ax.axhline(m["ensembles"]["asymptote"], color=PALETTE[2], linestyle=":", linewidth=1,
                       label=f"joint (N,K) asymptote {m['ensembles']['asymptote']:.3f}")
    ax.set_xscale("log")
    ax.set_xlabel("non-embedding parameters N")
    ax.set_ylabel("held-out loss (nats/token)")
    ax.set_title(f"{m['token_budget']} unique tokens, {record['scale']} scale (paper: 200M; E_ens 3.17)")
    ax.legend(fontsize=7)
    return save_figure(fig, out, source=str(source), caption="loss vs N per recipe, with fitted asymptotes")


def plot_data_law(record: dict, out: Path, source: Path) -> Path:
    m = record["metrics"]
    law_rec = m["default_data_law"]
    fig, ax = new_figure()
    ax.plot(law_rec["x"], law_rec["loss"], "o", color=PALETTE[1], label="default recipe (best N)")
    d0 = m["token_budget"]
    if "fit" in law_rec:
        law = PowerLaw(**law_rec["fit"])
        top = max(law_rec["x"]) * 8
        for key, color in (("tuned", PALETTE[0]), ("ensemble", PALETTE[2])):
            mult = m.get(f"data_efficiency_{key}")
            if mult is not None and np.isfinite(mult):
                top = max(top, d0 * mult * 1.5)
                ax.plot([d0 * mult], [law(d0 * mult)], "*", markersize=10, color=color,
                        label=f"{key} asymptote = default at {mult:.2f}x data")
        grid = np.geomspace(min(law_rec["x"]) / 1.2, top, 100)
        ax.plot(grid, law(grid), "-", color=PALETTE[1], alpha=0.6, label=f"fit, E_D={law.E:.3f}")
    ax.axvline(d0, **PAPER_STYLE, label="our budget D0")
    ax.set_xscale("log")
    ax.set_xlabel("unique training tokens D")
    ax.set_ylabel("held-out loss (nats/token)")
    ax.set_title("default recipe data law (paper: ensemble = 5.17x data)")
    ax.legend(fontsize=7)
    return save_figure(fig, out, source=str(source), caption="default recipe's data-scaling law and multipliers")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="cpu", choices=("cpu", "gpu"))
    parser.add_argument("--results-root", type=Path, default=None)
    args = parser.parse_args(argv)
    source = result_path("data_constrained", f"asymptote_{args.scale}", args.results_root)
    record = read_result(source)
    figures = (args.results_root / "experiments" / "data_constrained" if args.results_root
               else experiments_dir("data_constrained")) / "figures"
    for path in (plot_asymptote(record, figures / f"asymptote_{args.scale}.png", source),
                 plot_data_law(record, figures / f"data_law_{args.scale}.png", source)):
        print(path)


if __name__ == "__main__":
    main()
