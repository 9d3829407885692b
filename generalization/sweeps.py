"""One function per figure: load data, run the sweep, return (metrics, paper) for the results JSON.

Each takes the composed config (generalization.run.Schema) and a RunLogger; nothing here writes files.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch.nn.utils import parameters_to_vector

from generalization import data as datasets
from generalization.effective_dim import effective_dimension_slq, effective_dimension_topk
from generalization.flatness import flat_radius
from generalization.gp import altered_label_sweep, median_lengthscale
from generalization.laplace import last_layer_log_evidence
from generalization.models import build_model, count_parameters
from generalization.pac_bayes.compress import CompressionSettings, compress_and_bound
from generalization.pac_bayes.gaussian import gaussian_pac_bayes, sigma_grid
from generalization.polynomial import run_panels
from generalization.random_features import ce_width_sweep, width_sweep
from generalization.train import evaluate, fit

PAPER = {
    "polynomial": {"claim": "A 150th-order polynomial with order-dependent regularisation describes simple and "
                            "complex structured data well and fits pure noise perfectly (Wilson 2025, Fig. 1a-c)."},
    "benign": {"claim": "A GP and a ResNet both fit altered labels (train accuracy ~100%), test accuracy degrades "
                        "gracefully, and the (log) marginal likelihood - for the net a PAC-Bayes/Laplace proxy - "
                        "decreases as more labels are altered (Wilson 2025, Fig. 1d-e; CIFAR-10 in the paper)."},
    "double_descent": {"claim": "A ResNet and a linear random-feature model both show double descent (test error "
                                "peaks at the interpolation threshold), with effective dimensionality tracking "
                                "the second descent (Wilson 2025, Fig. 1f-g; Maddox et al. 2020)."},
    "bound": {"claim": "Training in a random subspace, quantizing and arithmetic-coding the weights gives "
                       "non-vacuous PAC-Bayes bounds; bigger models compress better (Lotfi et al. 2022).",
              "reference_case": {"train_error": 0.05, "code_bits": 20000, "n": 60000, "bound": 0.325},
              "kl_vs_catoni_agreement_points": 0.1},
    "flatness": {"claim": "Flat solutions occupy a larger volume of parameter space, and the flat region grows "
                          "with the parameter count (Wilson 2025, sec. on flat minima; Huang et al. 2020)."},
}


def _images(cfg, n_train: int, n_test: int, rng: np.random.Generator, pca: int = 0):
    x, y = datasets.load_images(cfg.data.name, "train", cfg.data.dir)
    xt, yt = datasets.load_images(cfg.data.name, "test", cfg.data.dir)
    x, y = datasets.subset(x, y, n_train, rng)
    xt, yt = datasets.subset(xt, yt, n_test, rng)
    if pca:
        x, xt = datasets.pca_project(x, xt, pca)
    elif cfg.data.downsample > 1 and cfg.data.name == "fashion_mnist":
        x, xt = datasets.downsample(x, cfg.data.downsample), datasets.downsample(xt, cfg.data.downsample)
    return x, y, xt, yt


def _tensors(device: str, *arrays):
    return [torch.as_tensor(a, device=device) for a in arrays]


def _train_net(net_cfg, in_features: int, x, y, seed: int, width: int | None = None):
    torch.manual_seed(seed)
    model = build_model(net_cfg.model, in_features, width or net_cfg.width, depth=net_cfg.depth).to(x.device)
    history: dict[str, list[float]] = {"loss": [], "error": []}
    chunk = max(1, min(net_cfg.epochs, 50))
    while len(history["loss"]) < net_cfg.epochs:
        part = fit(model, x, y, min(chunk, net_cfg.epochs - len(history["loss"])), net_cfg.batch_size,
                   net_cfg.lr, loss=net_cfg.loss, seed=seed + len(history["loss"]))
        for key in history:
            history[key] += part[key]
        if 1.0 - evaluate(model, x, y, net_cfg.loss)["error"] >= net_cfg.target_train_acc:
            break
    return model, history


def polynomial(cfg, log) -> tuple[dict, dict]:
    p = cfg.polynomial
    out = run_panels(p.order, p.n_train, p.n_test, p.noise, p.lam, p.gamma, list(p.low_orders),
                     list(p.gammas), p.n_grid, p.seeds, cfg.seed, p.lam_interpolate)
    for kind, panel in out["panels"].items():
        log.log({f"{kind}/{m}/test_mse": f["test_mse_mean"] for m, f in panel["fits"].items()})
    return out, PAPER["polynomial"]


def benign(cfg, log) -> tuple[dict, dict]:
    b = cfg.benign
    rng = np.random.default_rng(cfg.seed)
    x, y, xt, yt = _images(cfg, b.n_train, b.n_test, rng)
    lengthscale = b.lengthscale or median_lengthscale(x)
    gp = altered_label_sweep(x, y, xt, yt, list(b.fractions), b.kernel, lengthscale, b.noise_var,
                             np.random.default_rng(cfg.seed + 1))
    gp["lengthscale"] = lengthscale
    log.log({"gp_test_acc_clean": gp["test_acc"][0]})
    pb_keys = ("kl", "complexity", "sigma", "q_train_error", "q_train_error_se", "bound", "log_evidence_proxy",
               "distance_from_init", "tolerance_met", "wall_s")
    net = {k: [] for k in ("train_acc", "test_acc", "epochs", "laplace_log_evidence_per_point",
                           "training_speed_log_ml_per_point", *(f"pac_bayes_{k}" for k in pb_keys))}
    scans = []
    n_net = min(b.net_n_train, len(x))
    xn, yn, xtn, ytn = _tensors(cfg.device, x[:n_net], y[:n_net], xt, yt)
    pb = b.pac_bayes
    sigmas = sigma_grid(pb.sigma_min, pb.sigma_max, pb.grid)
    theta0 = _initial_weights(b.net, xn.shape[1], cfg.seed)  # the prior's mean: the init, before any training
    for frac in log.progress(list(b.fractions), desc="benign net"):
        y_alt = torch.as_tensor(datasets.alter_labels(y[:n_net], frac, 10, np.random.default_rng(cfg.seed + 2)))
        model, hist = _train_net(b.net, xn.shape[1], xn, y_alt.to(xn.device), cfg.seed)
        gauss = gaussian_pac_bayes(model, theta0, xn, y_alt.to(xn.device), sigmas, pb.samples, pb.tolerance,
                                   pb.delta, cfg.seed + 3)
        scans.append(gauss["scanned"])
        model = model.cpu()
        evidence = last_layer_log_evidence(model, xn.cpu(), y_alt, b.prior_precision)
        net["train_acc"].append(1 - evaluate(model, xn.cpu(), y_alt)["error"])
        net["test_acc"].append(1 - evaluate(model, xtn.cpu(), ytn.cpu())["error"])
        net["epochs"].append(len(hist["loss"]))
        net["laplace_log_evidence_per_point"].append(evidence["log_evidence_per_point"])
        net["training_speed_log_ml_per_point"].append(-float(np.sum(hist["loss"][: b.speed_epochs])))
        for k in pb_keys:
            net[f"pac_bayes_{k}"].append(gauss[k])
        log.log({"fraction": frac, **{k: v[-1] for k, v in net.items()}})
    net["fraction"] = list(b.fractions)
    net["parameters"] = count_parameters(model)
    net["pac_bayes_settings"] = {"sigma_grid": sigmas.tolist(), "samples": pb.samples, "tolerance": pb.tolerance,
                                 "delta": pb.delta, "n": n_net, "scanned": scans}
    return {"gp": gp, "net": net, "n_train_gp": len(x), "n_train_net": n_net, "n_test": len(xt)}, PAPER["benign"]


def _initial_weights(net_cfg, in_features: int, seed: int) -> torch.Tensor:
    """theta0 (P,) of `_train_net(net_cfg, in_features, ..., seed)`: the same seeded build, before training."""
    torch.manual_seed(seed)
    model = build_model(net_cfg.model, in_features, net_cfg.width, depth=net_cfg.depth)
    return parameters_to_vector(model.parameters()).detach()


def double_descent(cfg, log) -> tuple[dict, dict]:
    dd = cfg.double_descent
    rng = np.random.default_rng(cfg.seed)
    x, y, xt, yt = _images(cfg, max(dd.rf_n_train, dd.net_n_train), dd.n_test, rng)
    y_noisy = datasets.alter_labels(y, dd.label_noise, 10, np.random.default_rng(cfg.seed + 1))
    with threadpool_limits(limits=dd.blas_threads or None, user_api="blas"):
        rf = width_sweep(x[:dd.rf_n_train], y_noisy[:dd.rf_n_train], xt, yt, list(dd.rf_widths), dd.rf_alpha,
                         dd.rf_seeds, cfg.seed)
        rf["n_train"] = dd.rf_n_train
        rf_ce = None
        if dd.ce:  # the same features, a linear softmax head (CE): its Hessian depends on the fitted solution
            rf_ce = ce_width_sweep(x[:dd.rf_n_train], y_noisy[:dd.rf_n_train], xt, yt, list(dd.rf_widths),
                                   dd.ce_ridge, dd.ce_seeds, cfg.seed, extra_alpha=dd.rf_alpha)
            rf_ce.update(n_train=dd.rf_n_train, ridge_rel=dd.ce_ridge, alpha="ridge",
                         extra_alpha=dd.rf_alpha)
    xp, xtp = datasets.pca_project(x[:dd.net_n_train], xt, dd.pca_dim) if dd.pca_dim else (x[:dd.net_n_train], xt)
    xn, yn, xtn, ytn = _tensors(cfg.device, xp, y_noisy[:dd.net_n_train], xtp, yt)
    net: dict[str, list] = {}
    for width in log.progress(list(dd.net_widths), desc="double descent nets"):
        model, _ = _train_net(dd.net, xn.shape[1], xn, yn, cfg.seed, width)
        test = evaluate(model, xtn, ytn, dd.net.loss)
        row = {"width": width, "parameters": count_parameters(model),
               "train_error": evaluate(model, xn, yn)["error"], "test_error": test["error"],
               "test_loss": test["loss"],
               **_net_effective_dim(dd, model, xn, yn, cfg.seed)}
        for k, v in row.items():
            net.setdefault(k, []).append(v)
        log.log(row)
    net["n_train"] = dd.net_n_train
    net["effective_dim_method"] = dd.net_neff
    out = {"random_features": rf, "net": net, "label_noise": dd.label_noise}
    if rf_ce is not None:
        out["random_features_ce"] = rf_ce
    return out, PAPER["double_descent"]


def _net_effective_dim(dd, model, x, y, seed: int) -> dict[str, float]:
    """N_eff of the trained net's Hessian (mean loss over the first `hessian_samples` points) by SLQ or top-k."""
    n = dd.hessian_samples or len(x)
    if dd.net_neff == "topk":
        return effective_dimension_topk(model, x[:n], y[:n], dd.net_alpha, dd.net.loss, dd.neff_top_k, seed=seed)
    return {"effective_dim": effective_dimension_slq(model, x[:n], y[:n], dd.net_alpha, dd.net.loss,
                                                     dd.slq_probes, dd.slq_steps, seed)}


def bound(cfg, log) -> tuple[dict, dict]:
    bc = cfg.bound
    rng = np.random.default_rng(cfg.seed)
    x, y, xt, yt = _images(cfg, 10**9, 10**9, rng)
    xs, ys, xts, yts = _tensors(cfg.device, x, y, xt, yt)
    runs = [("width", w, bc.base_dim) for w in bc.widths] + [("dim", bc.base_width, d) for d in bc.dims]
    n_hypers = len(set(bc.widths) | {bc.base_width}) * len(set(bc.dims) | {bc.base_dim}) * bc.levels_grid_size
    results: dict[tuple[int, int], dict] = {}
    for _, width, d in log.progress(runs, desc="compression bounds"):
        if (width, d) in results:
            continue
        # Every lr gives a hypothesis of the same prior (the code does not depend on how z was found), so keeping
        # the tightest bound among them needs no extra union-bound term.
        candidates = []
        for lr in bc.lrs:
            settings = CompressionSettings(d=d, projection=bc.projection, levels=bc.levels, epochs=bc.epochs,
                                           batch_size=bc.batch_size, lr=lr, schedule=bc.schedule,
                                           qat_epochs=bc.qat_epochs, qat_lr=bc.qat_lr, fit_samples=bc.fit_samples,
                                           delta=bc.delta, n_hypers=n_hypers, seed=cfg.seed)
            torch.manual_seed(cfg.seed)
            model = build_model(bc.model, xs.shape[1], width, depth=bc.depth)
            candidates.append({**compress_and_bound(model, xs, ys, xts, yts, settings), "width": width, "lr": lr})
        out = min(candidates, key=lambda r: r["kl_bound"])
        out["kl_bound_per_lr"] = [r["kl_bound"] for r in candidates]
        results[(width, d)] = out
        log.log({k: v for k, v in out.items() if isinstance(v, int | float)})
    vs_width = [results[(w, bc.base_dim)] for w in bc.widths]
    vs_dim = [results[(bc.base_width, d)] for d in bc.dims]
    best = min(results.values(), key=lambda r: r["kl_bound"])
    metrics = {"n_train": len(x), "n_hypers": n_hypers, "vs_width": vs_width, "vs_dim": vs_dim,
               "best": best, "reference_case": _reference_case(bc.delta)}
    return metrics, PAPER["bound"]


def _reference_case(delta: float) -> dict:
    from generalization.pac_bayes.bounds import bound_from_code

    return bound_from_code(0.05, 20000, 60000, delta)


def flatness(cfg, log) -> tuple[dict, dict]:
    fc = cfg.flatness
    rng = np.random.default_rng(cfg.seed)
    x, y, xt, yt = _images(cfg, fc.n_train, fc.n_test, rng)
    if fc.pca_dim:
        x, xt = datasets.pca_project(x, xt, fc.pca_dim)
    xs, ys, xts, yts = _tensors(cfg.device, x, y, xt, yt)
    out = {k: [] for k in ("width", "parameters", "train_loss", "test_error", "mean_log_radius",
                           "log_volume_proxy", "effective_dim")}
    for width in log.progress(list(fc.widths), desc="flatness"):
        model, _ = _train_net(fc.net, xs.shape[1], xs, ys, cfg.seed, width)
        radii = flat_radius(model, xs, ys, fc.epsilon, fc.directions, cfg.seed, fc.net.loss)
        P = count_parameters(model)
        row = {"width": width, "parameters": P, "train_loss": evaluate(model, xs, ys, fc.net.loss)["loss"],
               "test_error": evaluate(model, xts, yts)["error"], "mean_log_radius": float(np.log(radii).mean()),
               "log_volume_proxy": float(P * np.log(radii).mean()),
               "effective_dim": effective_dimension_slq(model, xs, ys, fc.alpha, fc.net.loss, fc.slq_probes,
                                                        fc.slq_steps, cfg.seed)}
        for k, v in row.items():
            out[k].append(v)
        log.log(row)
    out["radius_geometric_mean"] = [math.exp(v) for v in out["mean_log_radius"]]
    return out, PAPER["flatness"]


SWEEPS = {"polynomial": polynomial, "benign": benign, "double_descent": double_descent, "bound": bound,
          "flatness": flatness}
