"""SIGReg against the exact Epps-Pulley formula, its null expectation, and its behaviour off the null."""

import math

import numpy as np
import pytest
import torch

from lejepa.sigreg import SIGReg, epps_pulley, null_expectation, quadrature, random_directions, sigreg


def exact_ep(x: np.ndarray) -> float:
    """Closed form of N * int_R |ECF(t) - exp(-t^2/2)|^2 exp(-t^2/2) dt for samples x (N,), float64:
    sqrt(2 pi)/N sum_jk exp(-(xj-xk)^2/2) - 2 sqrt(pi) sum_j exp(-xj^2/4) + N sqrt(2 pi / 3)."""
    n = len(x)
    diff = x[:, None] - x[None, :]
    return (math.sqrt(2 * math.pi) / n * np.exp(-diff**2 / 2).sum()
            - 2 * math.sqrt(math.pi) * np.exp(-x**2 / 4).sum() + n * math.sqrt(2 * math.pi / 3))


def fine_grid_ep(x: np.ndarray, t_max: float, knots: int) -> float:
    """The truncated integral on [-t_max, t_max] by a very fine float64 trapezoid rule (independent code path)."""
    t = np.linspace(-t_max, t_max, knots)
    ecf_re = np.cos(np.outer(t, x)).mean(1)
    ecf_im = np.sin(np.outer(t, x)).mean(1)
    integrand = ((ecf_re - np.exp(-t**2 / 2)) ** 2 + ecf_im**2) * np.exp(-t**2 / 2)
    return len(x) * float(np.sum((integrand[1:] + integrand[:-1]) / 2 * np.diff(t)))


def test_quadrature_integrates_the_window():
    t, q = quadrature(17, 3.0, dtype=torch.float64)
    # sum q = int_{-3}^{3} exp(-t^2/2) dt up to trapezoid error
    assert float(q.sum()) == pytest.approx(math.sqrt(2 * math.pi) * math.erf(3 / math.sqrt(2)), rel=1e-3)


@pytest.mark.parametrize("kind", ["gaussian", "shifted", "uniform"])
def test_epps_pulley_matches_closed_form(kind):
    rng = np.random.default_rng(0)
    x = {"gaussian": rng.normal(size=64), "shifted": rng.normal(0.7, 1.3, 64),
         "uniform": rng.uniform(-2, 2, 64)}[kind]
    ours = float(epps_pulley(torch.from_numpy(x)[:, None], knots=2001, t_max=12.0)[0])
    assert ours == pytest.approx(exact_ep(x), rel=1e-6, abs=1e-9)
    default = float(epps_pulley(torch.from_numpy(x)[:, None])[0])  # 17 knots on [0, 3]
    assert default == pytest.approx(fine_grid_ep(x, 3.0, 20001), rel=2e-2, abs=2e-3)


def test_null_expectation_closed_form_and_monte_carlo():
    t, q = quadrature(17, 3.0, dtype=torch.float64)
    # E|ECF - phi|^2 = (1 - phi(t)^2) / N for N iid N(0,1) samples, so E[EP] = sum_k q_k (1 - exp(-t_k^2))
    assert null_expectation() == pytest.approx(float((q * (1 - torch.exp(-t**2))).sum()))
    # the untruncated integral is sqrt(2 pi) - sqrt(2 pi / 3) ~ 1.06
    assert null_expectation(4001, 12.0) == pytest.approx(math.sqrt(2 * math.pi) - math.sqrt(2 * math.pi / 3),
                                                         rel=1e-6)
    gen = torch.Generator().manual_seed(0)
    for n in (16, 256):
        x = torch.randn(n, 4000, generator=gen, dtype=torch.float64)
        stats = epps_pulley(x)
        se = float(stats.std()) / math.sqrt(stats.numel())
        assert float(stats.mean()) == pytest.approx(null_expectation(), abs=4 * se)


def test_small_for_gaussian_large_for_degenerate():
    gen = torch.Generator().manual_seed(1)
    n, d = 512, 32
    dirs = random_directions(d, 256, gen)
    gauss = float(sigreg(torch.randn(n, d, generator=gen), dirs))
    collapsed = float(sigreg(torch.full((n, d), 0.3) + 1e-3 * torch.randn(n, d, generator=gen), dirs))
    low_rank = float(sigreg(torch.randn(n, 2, generator=gen) @ torch.randn(2, d, generator=gen) / math.sqrt(2),
                            dirs))
    # unit-variance uniform on a square: its projections are far from Gaussian (in high dimension the CLT makes
    # projections of a product-uniform nearly Gaussian, so the test uses d = 2 and more samples)
    uniform = float(sigreg((torch.rand(4 * n, 2, generator=gen) - 0.5) * math.sqrt(12),
                           random_directions(2, 256, gen)))
    null = null_expectation()
    assert gauss < 1.5 * null
    assert collapsed > 50 * null
    assert low_rank > 10 * null
    assert uniform > 8 * null
    assert collapsed > low_rank > gauss and uniform > gauss


def test_gradcheck_float64():
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(5, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    dirs = random_directions(3, 3, gen, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda v: sigreg(v, dirs, knots=5), (z,))


def test_rotation_invariance_for_isotropic_inputs():
    gen = torch.Generator().manual_seed(3)
    d = 16
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    scale = torch.linspace(0.5, 2.0, d, dtype=torch.float64)
    reg = SIGReg(num_directions=64)
    raw, rot = [], []
    for _ in range(20):  # fresh isotropic (but not standard: variance 2.25) samples each trial
        z = torch.randn(128, d, generator=gen, dtype=torch.float64) * 1.5
        raw.append(float(reg(z, gen)))
        rot.append(float(reg(z @ q.T, gen)))
    raw, rot = np.array(raw), np.array(rot)
    se = np.sqrt(raw.var() / len(raw) + rot.var() / len(rot))
    assert abs(raw.mean() - rot.mean()) < 4 * se
    # exact equivariance: rotating the data and the directions together leaves the statistic unchanged
    z = torch.randn(128, d, generator=gen, dtype=torch.float64) * scale
    dirs = random_directions(d, 256, gen, dtype=torch.float64)
    assert float(sigreg(z, dirs)) == pytest.approx(float(sigreg(z @ q.T, q @ dirs)), rel=1e-9)


def test_bf16_autocast_is_float32_and_close():
    gen = torch.Generator().manual_seed(4)
    z = torch.randn(128, 8, generator=gen)
    dirs = random_directions(8, 64, gen)
    ref = sigreg(z, dirs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = sigreg(z, dirs)
    assert out.dtype == torch.float32
    assert float(out) == pytest.approx(float(ref), rel=1e-5)
    batched = sigreg(torch.stack([z, 2 * z]), dirs)
    assert batched.shape == (2,) and float(batched[0]) == pytest.approx(float(ref), rel=1e-5)


def test_module_resamples_directions_and_is_reproducible():
    z = torch.randn(64, 8)
    reg = SIGReg(num_directions=16)
    a = reg(z, torch.Generator().manual_seed(0))
    b = reg(z, torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(0)
    c, d = reg(z, gen), reg(z, gen)
    assert float(a) == float(b) == float(c)
    assert float(c) != float(d)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="directions have D=4"):
        sigreg(torch.randn(5, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match="knots"):
        quadrature(1)


def test_per_time_step_sigreg_is_the_mean_of_per_step_statistics():
    """LeWM's regulariser (le-wm train.py: sigreg(emb.transpose(0, 1))): for latents (B, T, D), the Epps-Pulley
    statistic of each time step's batch, averaged over steps and directions; the same directions at every step."""
    from lejepa.models.encoder import EncoderConfig
    from lejepa.models.lewm import WorldModel, WorldModelConfig
    from lejepa.models.predictor import PredictorConfig

    enc = EncoderConfig(image_size=8, patch_size=4, width=8, depth=1, heads=2, projector_hidden=8, latent_dim=6)
    model = WorldModel(WorldModelConfig(encoder=enc, predictor=PredictorConfig(latent_dim=6, width=8, depth=1,
                                                                             heads=2), sigreg_directions=64))
    gen = torch.Generator().manual_seed(5)
    z = torch.randn(32, 4, 6, generator=gen, dtype=torch.float64)
    z[:, 2] *= 3.0  # one step far from N(0, I): the steps' statistics differ
    ours = float(model.sigreg_value(z, torch.Generator().manual_seed(9)))
    dirs = random_directions(6, 64, torch.Generator().manual_seed(9)).double()  # the draws SIGReg makes
    per_step = [float(epps_pulley(z[:, t] @ dirs).mean()) for t in range(4)]
    assert ours == pytest.approx(float(np.mean(per_step)), rel=1e-6)
    pooled = float(epps_pulley(z.reshape(-1, 6) @ dirs).mean())
    assert pooled != pytest.approx(ours, rel=0.01)  # pooling B x T rows is a different statistic
    model.cfg.sigreg_per_step = False
    assert float(model.sigreg_value(z, torch.Generator().manual_seed(9))) == pytest.approx(pooled, rel=1e-6)
