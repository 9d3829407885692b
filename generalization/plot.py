"""Draw every figure from results JSON only: `python -m generalization.plot [--scale cpu|gpu] [--only NAME]`.

Reads experiments/generalization/results/<experiment>[_<tag>]_<scale>.json, writes
experiments/generalization/figures/<same stem>.png (+ a sidecar naming the JSON it came from); a tag (e.g. `resnet`
for the conv-ResNet cpu variants) is drawn with the same function as its experiment.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from common.paths import experiments_dir
from common.plotting import PALETTE, PAPER_STYLE, new_figure, save_figure
from common.results import read_result

EXPERIMENTS = ("polynomial", "benign", "double_descent", "bound", "flatness")


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default=None, help="cpu or gpu (default: every scale found)")
    parser.add_argument("--only", default=None, choices=EXPERIMENTS)
    parser.add_argument("--root", default=None, help="folder holding results/ and figures/")
    args = parser.parse_args(argv)
    base = Path(args.root) if args.root else experiments_dir("generalization")
    written = []
    for name in [args.only] if args.only else EXPERIMENTS:
        for path in sorted((base / "results").glob(f"{name}_*.json")):
            scale = path.stem.rsplit("_", 1)[-1]
            if args.scale and scale != args.scale:
                continue
            record = read_result(path)
            fig = DRAW[name](record)
            written.append(save_figure(fig, base / "figures" / f"{path.stem}.png", source=str(path),
                                       caption=record["paper"].get("claim", "")))
            print(f"wrote {written[-1]}")
    return written


def _net_name(record: dict, section: str) -> str:
    """Which network family a benign / double-descent record trained (older records: the cpu defaults)."""
    net = record.get("config", {}).get(section, {}).get("net", {})
    names = {"resnet": "conv ResNet (width k)", "resmlp": "residual MLP", "mlp": "MLP"}
    return names.get(net.get("model"), "residual net" if section == "benign" else "neural nets")


def draw_polynomial(record: dict):
    m = record["metrics"]
    fig, axes = new_figure(4, 1, width=3.6)
    axes = axes.ravel()
    titles = {"simple": "(a) simple structure", "complex": "(b) complex structure", "noise": "(c) pure noise"}
    for ax, (kind, panel) in zip(axes, m["panels"].items(), strict=False):
        d, fits = panel["data"], panel["fits"]
        ax.scatter(d["x"], d["y"], s=10, color="k", zorder=3, label="data")
        if d["truth"] is not None:
            ax.plot(d["grid"], d["truth"], **PAPER_STYLE, label="truth")
        show = "penalised" if kind != "noise" else "penalised_interpolate"
        tag = "penalised" if kind != "noise" else "penalised, asked to interpolate"
        ax.plot(d["grid"], fits[show]["curve"], color=PALETTE[0],
                label=f"order 150, {tag} (test {fits[show]['test_mse_mean']:.3g})")
        ax.plot(d["grid"], fits["unpenalised"]["curve"], color=PALETTE[1], alpha=0.6,
                label=f"order 150, unpenalised ({fits['unpenalised']['test_mse_mean']:.3g})")
        ax.plot(d["grid"], fits["order_3"]["curve"], color=PALETTE[2], label=f"order 3 ({fits['order_3']['test_mse_mean']:.3g})")
        lim = 1.5 * np.max(np.abs(d["y"]))
        ax.set_ylim(-lim, lim)
        ax.set_title(titles[kind])
        ax.set_xlabel("x")
        ax.legend(fontsize=6, loc="lower left")
    sweep = m["gamma_sweep"]
    ax = axes[3]
    for i, kind in enumerate(("simple", "complex")):
        ax.semilogy(sweep["gamma"], sweep[kind]["test_mse"], "o-", color=PALETTE[i], label=f"{kind}: held-out MSE")
    ax.semilogy(sweep["gamma"], sweep["noise"]["train_mse"], "s--", color=PALETTE[3], label="noise: train MSE")
    ax.set_xlabel("penalty growth gamma ((k+1)^gamma)")
    ax.set_title("gamma sweep")
    ax.legend(fontsize=7)
    return fig


def draw_benign(record: dict):
    m = record["metrics"]
    fig, axes = new_figure(2, 1, width=5.4)
    axes = axes.ravel()
    for ax, key, title, ml_keys in (
            (axes[0], "gp", "(d) exact GP (RBF), Fashion-MNIST", [("lml_per_point", "log marginal lik. / n")]),
            (axes[1], "net", f"(e) {_net_name(record, 'benign')}, Fashion-MNIST",
             [("laplace_log_evidence_per_point", "Laplace log evidence / n"),
              ("training_speed_per_epoch", "training-speed log ML est. / epochs")])):
        r = dict(m[key])
        if key == "net":
            epochs = record["config"]["benign"]["speed_epochs"]
            r["training_speed_per_epoch"] = [v / epochs for v in r["training_speed_log_ml_per_point"]]
        ax.plot(r["fraction"], r["train_acc"], "o-", color=PALETTE[0], label="train acc")
        ax.plot(r["fraction"], r["test_acc"], "s-", color=PALETTE[1], label="test acc")
        ax.set_xlabel("fraction of altered labels")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.05)
        ax.set_title(title)
        twin = ax.twinx()
        for i, (k, label) in enumerate(ml_keys):
            twin.plot(r["fraction"], r[k], "^--", color=PALETTE[2 + i], label=label)
        twin.set_ylabel("marginal likelihood proxy")
        _joint_legend(ax, twin, "center left")
    fig.tight_layout()
    return fig


def draw_double_descent(record: dict):
    m = record["metrics"]
    fig, axes = new_figure(2, 1, width=5.4)
    axes = axes.ravel()
    rf, net = m["random_features"], m["net"]
    panels = ((axes[0], net["parameters"], net, f"(f) {_net_name(record, 'double_descent')}: parameters", "net"),
              (axes[1], rf["width"], rf, "(g) linear random features: features p", "rf"))
    for ax, xs, r, title, kind in panels:
        ax.semilogx(xs, r["test_error"], "o-", color=PALETTE[0], label="test error")
        ax.semilogx(xs, r["train_error"], "s-", color=PALETTE[1], alpha=0.7, label="train error")
        ax.set_ylabel("error")
        ax.set_xlabel("parameters" if kind == "net" else "random features p (n_train dashed)")
        ax.set_title(title)
        if kind == "rf":
            ax.axvline(rf["n_train"], **PAPER_STYLE)
        twin = ax.twinx()
        twin.semilogx(xs, r["effective_dim"], "^--", color=PALETTE[2], label="effective dim.")
        twin.set_ylabel("effective dimensionality")
        _joint_legend(ax, twin, "upper left")
    fig.tight_layout()
    return fig


def draw_bound(record: dict):
    m = record["metrics"]
    fig, axes = new_figure(2, 1, width=4.4)
    axes = axes.ravel()
    for ax, key, xkey, xlabel in ((axes[0], "vs_dim", "d", "subspace dimension d"),
                                  (axes[1], "vs_width", "width", "hidden width")):
        rows = m[key]
        xs = [r[xkey] for r in rows]
        ax.semilogx(xs, [100 * r["kl_bound"] for r in rows], "o-", color=PALETTE[0], label="kl-inverse bound")
        ax.semilogx(xs, [100 * r["catoni_bound"] for r in rows], "x--", color=PALETTE[4], label="Catoni bound")
        ax.semilogx(xs, [100 * r["train_error"] for r in rows], "s-", color=PALETTE[1], label="train error (quant.)")
        ax.semilogx(xs, [100 * r["test_error"] for r in rows], "^-", color=PALETTE[2], label="test error (quant.)")
        ax.axhline(100, **PAPER_STYLE)
        ax.set_xticks(xs, [str(v) for v in xs])
        ax.minorticks_off()
        ax.set_ylim(0, 105)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("error (%)")
        ax.legend(fontsize=7)
    axes[0].set_title(f"bound vs d (width {m['vs_dim'][0]['width']})")
    axes[1].set_title(f"bound vs width (d = {m['vs_width'][0]['d']})")
    return fig


def draw_flatness(record: dict):
    m = record["metrics"]
    fig, axes = new_figure(2, 1, width=4.2)
    axes = axes.ravel()
    axes[0].semilogx(m["parameters"], m["radius_geometric_mean"], "o-", color=PALETTE[0])
    axes[0].set_xlabel("parameters")
    axes[0].set_ylabel("flat radius (filter-normalised)")
    axes[0].set_title("loss within epsilon along random directions")
    axes[1].semilogx(m["parameters"], m["effective_dim"], "o-", color=PALETTE[1])
    axes[1].set_xlabel("parameters")
    axes[1].set_ylabel("N_eff of the Hessian (SLQ)")
    axes[1].set_title("Hessian effective dimensionality")
    fig.tight_layout()
    return fig


def _joint_legend(ax, twin, loc: str) -> None:
    """One legend on `ax` for the lines of `ax` and of its twin axis."""
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = twin.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc=loc)


DRAW = {"polynomial": draw_polynomial, "benign": draw_benign, "double_descent": draw_double_descent,
        "bound": draw_bound, "flatness": draw_flatness}

if __name__ == "__main__":
    main()
