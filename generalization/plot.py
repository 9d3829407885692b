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
    gaussian = "pac_bayes_log_evidence_proxy" in m["net"]  # older records have no Gaussian PAC-Bayes bound
    fig, axes = new_figure(2, 2 if gaussian else 1, width=5.4)
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
    if gaussian:
        _draw_benign_proxies(axes[2], record)
        _draw_benign_gaussian_bound(axes[3], record)
    fig.tight_layout()
    return fig


def _draw_benign_proxies(ax, record: dict) -> None:
    """Every marginal-likelihood proxy min-max normalised to [0, 1] (1 = its highest value), raw range in the label."""
    gp, net = record["metrics"]["gp"], record["metrics"]["net"]
    series = (("GP log marginal lik. / n", gp, "lml_per_point", PAPER_STYLE["color"], "x:"),
              ("net: Laplace log evidence / n", net, "laplace_log_evidence_per_point", PALETTE[2], "^--"),
              ("net: training-speed log ML est.", net, "training_speed_log_ml_per_point", PALETTE[3], "v--"),
              ("net: Gaussian PAC-Bayes -KL / n", net, "pac_bayes_log_evidence_proxy", PALETTE[4], "D-"))
    for label, r, key, color, style in series:
        v = np.asarray(r[key], dtype=float)
        span = v.max() - v.min()
        ax.plot(r["fraction"], (v - v.min()) / span if span > 0 else np.ones_like(v), style, color=color,
                label=f"{label} [{v.min():.3g}, {v.max():.3g}]")
    ax.set_xlabel("fraction of altered labels")
    ax.set_ylabel("proxy, min-max normalised")
    ax.set_ylim(-0.05, 1.3)
    ax.set_title("(e) marginal-likelihood proxies (higher = simpler)")
    ax.legend(fontsize=7, loc="upper right")


def _draw_benign_gaussian_bound(ax, record: dict) -> None:
    """The Gaussian PAC-Bayes bound on Q's test error (%), Q's train error and the net's test error; sigma twin."""
    net = record["metrics"]["net"]
    settings = net["pac_bayes_settings"]
    fr = net["fraction"]
    ax.plot(fr, [100 * v for v in net["pac_bayes_bound"]], "D-", color=PALETTE[4], zorder=3,
            label=f"PAC-Bayes bound on Q's error (delta={settings['delta']}; 100 = vacuous)")
    ax.plot(fr, [100 * v for v in net["pac_bayes_q_train_error"]], "o-", color=PALETTE[0],
            label=f"Q's train error (MC, K={settings['samples']})")
    ax.plot(fr, [100 * (1 - v) for v in net["test_acc"]], "s-", color=PALETTE[1], label="net's test error")
    ax.axhline(100, **PAPER_STYLE)
    ax.set_ylim(0, 110)
    ax.set_xlabel("fraction of altered labels")
    ax.set_ylabel("error (%)")
    ax.set_title(f"(e) Gaussian PAC-Bayes bound, prior at init (n={settings['n']})")
    twin = ax.twinx()
    twin.plot(fr, net["pac_bayes_sigma"], "x:", color=PALETTE[5], label="chosen sigma (right)")
    twin.set_ylim(0, 3 * max(net["pac_bayes_sigma"]))  # keeps sigma in the lower third, under the legend
    twin.set_ylabel("posterior / prior std sigma")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = twin.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper left", bbox_to_anchor=(0.0, 0.9))


def draw_double_descent(record: dict):
    m = record["metrics"]
    ce = m.get("random_features_ce")  # softmax (CE) head on the same features; absent in older records
    fig, axes = new_figure(2, 2 if ce else 1, width=5.4)
    axes = axes.ravel()
    rf, net = m["random_features"], m["net"]
    panels = ((axes[0], net["parameters"], net, f"(f) {_net_name(record, 'double_descent')}: parameters", "net"),
              (axes[1], rf["width"], rf, "(g) random features, min-norm least squares", "rf"))
    if ce:
        _draw_rf_ce(axes[2], axes[3], ce)
    for ax, xs, r, title, kind in panels:
        ax.semilogx(xs, r["test_error"], "o-", color=PALETTE[0], label="test error")
        ax.semilogx(xs, r["train_error"], "s-", color=PALETTE[1], alpha=0.7, label="train error")
        ax.set_ylabel("error")
        ax.set_xlabel("parameters" if kind == "net" else "random features p (n_train dashed)")
        ax.set_title(title)
        if kind == "rf":
            ax.axvline(rf["n_train"], **PAPER_STYLE)
        twin = ax.twinx()
        twin.semilogx(xs, r["effective_dim"], "^--", color=PALETTE[2], label=_neff_label(record, kind))
        twin.set_ylabel("effective dimensionality")
        _joint_legend(ax, twin, "upper right" if kind == "net" else "upper left")
    fig.tight_layout()
    return fig


def _neff_label(record: dict, kind: str) -> str:
    """How a double-descent panel's N_eff was computed (older records: SLQ for the nets)."""
    dd = record.get("config", {}).get("double_descent", {})
    if kind == "rf":
        return f"N_eff, exact (alpha={dd.get('rf_alpha', 0.01):g})"
    if record["metrics"]["net"].get("effective_dim_method") == "topk":
        return f"N_eff, top-{dd.get('neff_top_k')} Lanczos (alpha={dd.get('net_alpha'):g})"
    return f"N_eff, SLQ (alpha={dd.get('net_alpha', 0.1):g})"


def _draw_rf_ce(ax_err, ax_nll, ce: dict) -> None:
    """Panel g with a softmax (cross-entropy) head on the same features: errors with N_eff of the CE Hessian at the
    solution for alpha = ridge (the prior precision), and test NLL with N_eff for the least-squares panel's alpha."""
    xs = ce["width"]
    tag = f"(g) random features, softmax CE, ridge {ce['ridge_rel']:g} x mean|phi|^2"
    ax_err.semilogx(xs, ce["test_error"], "o-", color=PALETTE[0], label="test error")
    ax_err.semilogx(xs, ce["train_error"], "s-", color=PALETTE[1], alpha=0.7, label="train error")
    ax_err.set_ylim(0, 1)
    ax_err.set_ylabel("error")
    ax_err.set_title(tag)
    ax_nll.semilogx(xs, ce["test_nll"], "d-", color=PALETTE[4], label="test NLL")
    ax_nll.set_ylabel("test NLL (nats per point)")
    ax_nll.set_title(tag.replace("(g)", "(g, NLL)"))
    series = [(ax_err, "effective_dim", "N_eff, alpha = ridge", "upper left")]
    if "effective_dim_extra_alpha" in ce:
        series.append((ax_nll, "effective_dim_extra_alpha", f"N_eff, alpha = {ce['extra_alpha']:g}", "upper right"))
    for ax, key, label, loc in series:
        ax.axvline(ce["n_train"], **PAPER_STYLE)
        ax.set_xlabel("random features p (n_train dashed)")
        twin = ax.twinx()
        twin.semilogx(xs, ce[key], "^--", color=PALETTE[2], label=label)
        twin.set_ylabel("effective dimensionality")
        _joint_legend(ax, twin, loc)


def draw_bound(record: dict):
    m = record["metrics"]
    family = {"resnet": "conv ResNet", "mlp": "MLP", "resmlp": "residual MLP"}.get(
        record.get("config", {}).get("bound", {}).get("model", "mlp"), "net")
    fig, axes = new_figure(2, 1, width=4.4)
    axes = axes.ravel()
    for ax, key, xkey, xlabel in ((axes[0], "vs_dim", "d", "subspace dimension d"),
                                  (axes[1], "vs_width", "width", f"{family} width (parameters D)")):
        rows = m[key]
        xs = [r[xkey] for r in rows]
        labels = [str(v) for v in xs] if key == "vs_dim" else [f"{r['width']}\n{_count(r['D'])}" for r in rows]
        ax.semilogx(xs, [100 * r["kl_bound"] for r in rows], "o-", color=PALETTE[0], label="kl-inverse bound")
        ax.semilogx(xs, [100 * r["catoni_bound"] for r in rows], "x--", color=PALETTE[4], label="Catoni bound")
        ax.semilogx(xs, [100 * r["train_error"] for r in rows], "s-", color=PALETTE[1], label="train error (quant.)")
        ax.semilogx(xs, [100 * r["test_error"] for r in rows], "^-", color=PALETTE[2], label="test error (quant.)")
        top = max(100 * r["kl_bound"] for r in rows)
        if top < 45:  # zoom in (the 100% "vacuous" line is off the axis then; the label says so)
            ax.set_ylim(0, 50)
        else:
            ax.axhline(100, **PAPER_STYLE)
            ax.set_ylim(0, 105)
        ax.set_xticks(xs, labels)
        ax.minorticks_off()
        ax.set_xlabel(xlabel)
        ax.set_ylabel("error (%; bound of 100 = vacuous)")
        if key == "vs_dim":
            ax.legend(fontsize=7)
            continue
        twin = ax.twinx()
        twin.plot(xs, [32 * r["D"] / r["total_bits"] for r in rows], "d:", color=PALETTE[3],
                  label="compression ratio 32D / code bits")
        twin.set_yscale("log")
        twin.set_ylabel("compression ratio (float32 size / code)")
        _joint_legend(ax, twin, "upper left")
    axes[0].set_title(f"bound vs d ({family} width {m['vs_dim'][0]['width']})")
    axes[1].set_title(f"bound vs model size (d = {m['vs_width'][0]['d']})")
    return fig


def _count(n: int) -> str:
    """1234 -> '1k', 1234567 -> '1.2M'."""
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k" if n >= 1e3 else str(n)


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
