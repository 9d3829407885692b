"""Gaussian-posterior PAC-Bayes bound: KL closed form, the sigma search against brute force, the kl-inverse
bound against an independent root-finder, config errors, the prior's mean = the net's init, benign end to end."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from scipy.stats import multivariate_normal

from common.config import ConfigError, compose
from generalization.models import build_model
from generalization.pac_bayes.gaussian import (
    gaussian_bound,
    gaussian_kl,
    gaussian_pac_bayes,
    largest_within_tolerance,
    perturbed_error,
    sigma_grid,
)
from generalization.run import NetConfig, Schema, execute
from generalization.sweeps import _initial_weights, _train_net


def _general_gaussian_kl(mu_q, cov_q, mu_p, cov_p):
    """KL(N(mu_q, cov_q) || N(mu_p, cov_p)) for full covariances, float64."""
    k = len(mu_q)
    inv_p = np.linalg.inv(cov_p)
    d = mu_p - mu_q
    return 0.5 * (np.trace(inv_p @ cov_q) + d @ inv_p @ d - k
                  + np.linalg.slogdet(cov_p)[1] - np.linalg.slogdet(cov_q)[1])


def test_kl_equals_general_closed_form_and_monte_carlo():
    rng = np.random.default_rng(0)
    theta, theta0, sigma = rng.normal(size=5), rng.normal(size=5), 0.7
    kl = gaussian_kl(torch.as_tensor(theta), torch.as_tensor(theta0), sigma)
    cov = sigma**2 * np.eye(5)
    assert kl == pytest.approx(_general_gaussian_kl(theta, cov, theta0, cov), rel=1e-12)
    z = rng.multivariate_normal(theta, cov, size=200_000)
    log_ratio = multivariate_normal(theta, cov).logpdf(z) - multivariate_normal(theta0, cov).logpdf(z)
    assert abs(log_ratio.mean() - kl) < 4 * log_ratio.std() / math.sqrt(len(z))


def test_kl_accumulates_float32_weights_in_float64():
    gen = torch.Generator().manual_seed(1)
    theta0 = torch.randn(1_000_000, generator=gen)
    theta = theta0 + 1e-3 * torch.randn(1_000_000, generator=gen) + 10.0
    ref = float(np.sum((theta.numpy().astype(np.float64) - theta0.numpy().astype(np.float64)) ** 2)) / (2 * 0.01**2)
    assert gaussian_kl(theta, theta0, 0.01) == pytest.approx(ref, rel=1e-12)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        gaussian_kl(theta, theta0, 0.0)


def test_largest_within_tolerance_is_largest_passing_not_first_failure():
    sigmas = np.array([0.1, 0.2, 0.4, 0.8])
    errors = dict(zip(sigmas.tolist(), [0.00, 0.30, 0.05, 0.60], strict=True))  # not monotone in sigma
    assert largest_within_tolerance(errors.__getitem__, sigmas, 0.0, 0.1) == 2
    assert largest_within_tolerance(errors.__getitem__, sigmas, 0.5, 0.1) == 3
    assert largest_within_tolerance(lambda s: 1.0, sigmas, 0.0, 0.1) is None
    np.testing.assert_allclose(sigma_grid(1e-4, 1.0, 5), [1e-4, 1e-3, 1e-2, 1e-1, 1.0])


@pytest.fixture(scope="module")
def tiny_net():
    """A net that fits its labels (they are its own predictions) and an init 0.1-away per weight."""
    torch.manual_seed(0)
    model = build_model("mlp", 6, 16, classes=3, depth=1)
    x = torch.randn(80, 6)
    with torch.no_grad():
        y = model(x).argmax(1)
    theta = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    return model, theta + 0.1 * torch.randn(theta.shape), x, y


def test_sigma_search_matches_brute_force(tiny_net):
    model, theta0, x, y = tiny_net
    sigmas, samples, tol, seed = sigma_grid(1e-3, 3.0, 9), 4, 0.1, 7
    out = gaussian_pac_bayes(model, theta0, x, y, sigmas, samples, tol, 0.05, seed)
    ref = out["train_error"]
    brute = [perturbed_error(model, torch.nn.utils.parameters_to_vector(model.parameters()).detach(), x, y,
                             float(s), samples, seed)[0] for s in sigmas]
    passing = [i for i, e in enumerate(brute) if e <= ref + tol]
    assert 0 < max(passing) < len(sigmas) - 1  # the search is not trivially at an end of the grid
    assert out["sigma_index"] == max(passing) and out["sigma"] == sigmas[max(passing)]
    assert out["tolerance_met"]
    assert out["q_train_error"] == pytest.approx(brute[max(passing)], abs=1e-12)
    scan = out["scanned"]  # larger sigmas stop early once they provably fail; the decision is unchanged
    assert min(scan["samples_used"]) < samples and scan["samples_used"][-1] == samples
    assert all(e > ref + tol for e in scan["q_train_error"][:-1])
    assert out["kl"] == pytest.approx(gaussian_kl(
        torch.nn.utils.parameters_to_vector(model.parameters()), theta0, out["sigma"]), rel=1e-12)
    assert out["complexity"] == pytest.approx(out["kl"] / 80) and out["log_evidence_proxy"] == -out["complexity"]


def test_nothing_within_tolerance_falls_back_to_the_smallest_sigma_with_all_draws(tiny_net):
    model, theta0, x, y = tiny_net
    out = gaussian_pac_bayes(model, theta0, x, y, sigma_grid(1.0, 3.0, 3), 3, 0.0, 0.05, 7)
    assert not out["tolerance_met"] and out["sigma"] == 1.0
    theta = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    assert out["q_train_error"] == perturbed_error(model, theta, x, y, 1.0, 3, 7)[0]
    assert out["bound"] >= out["q_train_error"]


def test_bound_is_kl_inverse_reference_and_above_q_error(tiny_net):
    model, theta0, x, y = tiny_net
    out = gaussian_pac_bayes(model, theta0, x, y, sigma_grid(1e-3, 3.0, 9), 4, 0.1, 0.05, 7)
    q, n = out["q_train_error"], out["n"]
    budget = (out["kl"] + math.log(2 * math.sqrt(n) / 0.05) + math.log(9)) / n

    def kl_gap(p):
        return q * math.log(q / p) + (1 - q) * math.log((1 - q) / (1 - p)) - budget if q > 0 else \
            -math.log(1 - p) - budget

    reference = brentq(kl_gap, q + 1e-15, 1 - 1e-15, xtol=1e-14) if kl_gap(1 - 1e-15) > 0 else 1.0
    assert out["bound"] == pytest.approx(reference, abs=1e-9)
    assert out["bound"] >= q
    for e, kl in ((0.0, 10.0), (0.1, 3.0), (0.4, 200.0)):
        assert gaussian_bound(e, kl, 1000, 0.05, 33) >= e
    assert gaussian_bound(0.1, 3.0, 1000, 0.05, 33) > gaussian_bound(0.1, 3.0, 1000, 0.05, 1)  # pays ln G
    with pytest.raises(ValueError, match="0 < delta < 1"):
        gaussian_bound(0.1, 3.0, 1000, 1.5)


@pytest.mark.parametrize("override,key", [
    ("benign.pac_bayes.tolerance=1.5", "benign.pac_bayes.tolerance"),
    ("benign.pac_bayes.samples=1", "benign.pac_bayes.samples"),
    ("benign.pac_bayes.delta=0", "benign.pac_bayes.delta"),
    ("benign.pac_bayes.sigma_min=0", "benign.pac_bayes.sigma_min"),
    ("benign.pac_bayes.sigma_max=1e-5", "benign.pac_bayes.sigma_max"),
    ("benign.pac_bayes.grid=0", "benign.pac_bayes.grid"),
])
def test_bad_pac_bayes_config_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        compose("generalization", "run", Schema, ["experiment=benign", "logger=jsonl", override])


@pytest.mark.parametrize("model,width,depth", [("resmlp", 8, 1), ("resnet", 2, 2)])
def test_prior_mean_is_the_trained_nets_init(model, width, depth):
    net_cfg = NetConfig(model=model, width=width, depth=depth, epochs=0)
    x, y = torch.rand(4, 64), torch.zeros(4, dtype=torch.int64)
    init, _ = _train_net(net_cfg, 64, x, y, seed=3)
    expected = torch.nn.utils.parameters_to_vector(init.parameters())
    assert torch.equal(_initial_weights(net_cfg, 64, seed=3), expected)


def test_benign_end_to_end_writes_the_gaussian_bound_and_plots(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = compose("generalization", "run", Schema, [
        "experiment=benign", "logger=jsonl", "logger.progress=false", "data.name=digits", "benign.n_train=60",
        "benign.n_test=60", "benign.net_n_train=40", "benign.fractions=[0.0,1.0]", "benign.net.width=16",
        "benign.net.epochs=5", "benign.pac_bayes.grid=5", "benign.pac_bayes.samples=2"])
    record = execute(cfg, results_root=tmp_path)
    net = json.loads(Path(record["path"]).read_text())["metrics"]["net"]
    assert len(net["pac_bayes_bound"]) == 2 and net["pac_bayes_settings"]["n"] == 40
    for q, b, kl in zip(net["pac_bayes_q_train_error"], net["pac_bayes_bound"], net["pac_bayes_kl"], strict=True):
        assert q <= b <= 1 and kl > 0
    from generalization.plot import main as plot_main

    written = plot_main(["--root", str(tmp_path / "experiments" / "generalization"), "--only", "benign"])
    assert written and written[0].exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_same_search_on_cuda(tiny_net):
    model, theta0, x, y = tiny_net
    args = (sigma_grid(1e-3, 3.0, 9), 4, 0.1, 0.05, 7)
    cpu = gaussian_pac_bayes(model, theta0, x, y, *args)
    gpu_model = build_model("mlp", 6, 16, classes=3, depth=1).cuda()
    gpu_model.load_state_dict(model.state_dict())
    gpu = gaussian_pac_bayes(gpu_model, theta0.cuda(), x.cuda(), y.cuda(), *args)
    assert gpu["sigma_index"] == cpu["sigma_index"]
    assert gpu["kl"] == pytest.approx(cpu["kl"], rel=1e-9)
    assert gpu["q_train_error"] == pytest.approx(cpu["q_train_error"], abs=0.02)
