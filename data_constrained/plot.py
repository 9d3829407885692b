"""Figures from results JSON only: `python -m data_constrained.plot [--scale cpu]`; the campaign's figures with
`python -m data_constrained.campaign plot` (`plot_campaign`).

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
from data_constrained.scaling import JointLaw, PowerLaw


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


def plot_campaign(scale: str, results_root: Path | None = None) -> list[Path]:
    """The campaign's four figures from `results/campaign_<scale>.json`: loss vs N per recipe with the fits, loss vs
    K per size, the data law with each recipe's equivalent data, distillation."""
    source = result_path("data_constrained", f"campaign_{scale}", results_root)
    m = read_result(source)["metrics"]
    figures = (results_root / "experiments" / "data_constrained" if results_root
               else experiments_dir("data_constrained")) / "figures"
    return [fn(m, figures / f"campaign_{scale}_{name}.png", source) for name, fn in (
        ("loss_vs_n", _campaign_loss_vs_n), ("loss_vs_k", _campaign_loss_vs_k), ("data_law", _campaign_data_law),
        ("distill", _campaign_distill))]


def _campaign_loss_vs_n(m: dict, out: Path, source: Path) -> Path:
    curves, fits = m["curves"], m["fits"]
    fig, ax = new_figure()
    default = sorted(curves["default_d0"].values(), key=lambda p: p["n_params"])
    ax.plot([p["n_params"] for p in default], [p["test_loss"] for p in default], "o-", color=PALETTE[1],
            label="default recipe (wd 0.1, best epochs/lr)")
    tuned = sorted(curves["tuned"].values(), key=lambda p: p["n_params"])
    for p in tuned:
        ax.plot([p["n_params"]] * len(p["seeds"]), p["seeds"], ".", color=PALETTE[0], alpha=0.3)
    ax.plot([p["n_params"] for p in tuned], [p["test_loss"] for p in tuned], "s", color=PALETTE[0],
            label="tuned recipe (seed mean)")
    n_all = [p["n_params"] for p in default + tuned] or [1.0]
    grid = np.geomspace(min(n_all) / 1.5, max(n_all) * 30, 100)
    if fits.get("tuned"):
        law = PowerLaw(**fits["tuned"])
        ax.plot(grid, law(grid), "-", color=PALETTE[0], alpha=0.6)
        ax.axhline(law.E, color=PALETTE[0], linestyle=":", linewidth=1, label=f"tuned asymptote {law.E:.3f}")
    ensembles = curves["ensembles"]
    k_max = max((p["k"] for p in ensembles), default=1)
    top = sorted((p for p in ensembles if p["k"] == k_max), key=lambda p: p["n_params"])
    if k_max > 1:
        ax.plot([p["n_params"] for p in top], [p["test_loss"] for p in top], "^", color=PALETTE[2],
                label=f"ensemble K={k_max}")
    if fits.get("joint"):
        joint = JointLaw(**fits["joint"])
        ax.axhline(joint.E, color=PALETTE[2], linestyle=":", linewidth=1, label=f"joint (N,K) asymptote {joint.E:.3f}")
    ax.set_xscale("log")
    ax.set_xlabel("non-embedding parameters N")
    ax.set_ylabel("test loss (nats/token)")
    ax.set_title(f"{m['token_budget']} unique tokens (paper: 200M; E_ens 3.17)")
    ax.legend(fontsize=7)
    return save_figure(fig, out, source=str(source), caption="test loss vs N per recipe, fitted asymptotes")


def _campaign_loss_vs_k(m: dict, out: Path, source: Path) -> Path:
    fig, ax = new_figure()
    by_n: dict[float, list] = {}
    for p in m["curves"]["ensembles"]:
        by_n.setdefault(p["n_params"], []).append((p["k"], p["test_loss"]))
    joint = JointLaw(**m["fits"]["joint"]) if m["fits"].get("joint") else None
    for color, (n, points) in zip(PALETTE, sorted(by_n.items()), strict=False):
        points.sort()
        ax.plot([k for k, _ in points], [v for _, v in points], "o", color=color, label=f"N = {n / 1e6:.1f}M")
        if joint is not None:
            ks = np.linspace(1, max(k for k, _ in points) * 2, 50)
            ax.plot(ks, joint(np.full_like(ks, n), ks), "-", color=color, alpha=0.5)
    ax.set_xlabel("ensemble members K")
    ax.set_ylabel("test loss of the averaged distribution")
    ax.set_title("ensembles of tuned members (lines: joint N, K law)")
    ax.legend(fontsize=7)
    return save_figure(fig, out, source=str(source), caption="ensemble loss vs K per size with the joint law")


def _campaign_data_law(m: dict, out: Path, source: Path) -> Path:
    fig, ax = new_figure()
    points = sorted((float(d), p["test_loss"]) for d, p in m["curves"]["default_data_law"].items())
    ax.plot([d for d, _ in points], [v for _, v in points], "o", color=PALETTE[1], label="default recipe (best N)")
    d0 = m["token_budget"]
    if m["fits"].get("default_data") and points:
        law = PowerLaw(**m["fits"]["default_data"])
        top = max(d for d, _ in points) * 4
        for key, color in (("tuned", PALETTE[0]), ("ensemble", PALETTE[2])):
            mult = m.get(f"data_efficiency_{key}")
            if mult is not None and np.isfinite(mult):
                top = max(top, d0 * mult * 1.5)
                ax.plot([d0 * mult], [law(d0 * mult)], "*", markersize=10, color=color,
                        label=f"{key} asymptote = default at {mult:.2f}x data")
        grid = np.geomspace(min(d for d, _ in points) / 1.2, top, 100)
        ax.plot(grid, law(grid), "-", color=PALETTE[1], alpha=0.6, label=f"fit, E_D={law.E:.3f}")
    ax.axvline(d0, **PAPER_STYLE, label="D0")
    ax.set_xscale("log")
    ax.set_xlabel("unique training tokens D")
    ax.set_ylabel("test loss (nats/token)")
    ax.set_title("default recipe data law and equivalent data")
    ax.legend(fontsize=7)
    return save_figure(fig, out, source=str(source), caption="default data law; each recipe's equivalent data")


def _campaign_distill(m: dict, out: Path, source: Path) -> Path:
    fig, ax = new_figure()
    labels, values, colors = [], [], []
    for size, d in (m.get("distill") or {}).items():
        for name, key, color in (("plain", "plain_student_loss", PALETTE[1]), ("distilled", "student_loss",
                                                                              PALETTE[0]),
                                 ("teacher", "teacher_loss", PALETTE[2])):
            labels.append(f"{size}\n{name}")
            values.append(d[key])
            colors.append(color)
    selfd = m.get("self_distill")
    if selfd:
        labels += ["self\nplain", "self\nstudent"]
        values += [selfd["plain_loss"], selfd["student_loss"]]
        colors += [PALETTE[1], PALETTE[3]]
    if values:
        ax.bar(range(len(values)), values, color=colors)
        ax.set_xticks(range(len(values)), labels, fontsize=6)
        ax.set_ylim(min(values) - 0.05, max(values) + 0.05)
    ax.set_ylabel("test loss (nats/token)")
    ax.set_title("distillation of the ensemble, self-distillation")
    return save_figure(fig, out, source=str(source), caption="plain vs distilled students vs teacher")


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
