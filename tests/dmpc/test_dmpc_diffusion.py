"""Diffusion math: closed forms, an exact-score DDIM check, and a trained 1-D toy matching its distribution."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmpc import diffusion
from dmpc.models.conditional_diffusion import ConditionalDiffusion, DiffusionSpec
from dmpc.training import fit


def test_schedules_are_decreasing_in_0_1():
    for name in ("cosine", "linear"):
        a = diffusion.alpha_bars(name, 100)
        assert a.shape == (100,) and np.all(np.diff(a) < 0) and 0 < a[-1] < a[0] < 1
    assert diffusion.alpha_bars("cosine", 100)[-1] < 1e-3
    with pytest.raises(ValueError, match="unknown noise schedule"):
        diffusion.alpha_bars("sigmoid", 10)


def test_q_sample_closed_form():
    abars = jnp.asarray(diffusion.cosine_alpha_bars(50))
    x0, noise = jnp.ones((3, 2, 1)), jnp.full((3, 2, 1), 2.0)
    t = jnp.array([0, 10, 49])
    out = diffusion.q_sample(x0, t, noise, abars)
    a = np.asarray(abars)[[0, 10, 49]]
    np.testing.assert_allclose(out[:, 0, 0], np.sqrt(a) + 2 * np.sqrt(1 - a), rtol=1e-6)


def test_ddim_timesteps():
    ts = diffusion.ddim_timesteps(100, 5)
    assert ts[0] == 99 and ts[-1] == 0 and np.all(np.diff(ts) < 0)
    with pytest.raises(ValueError, match="sampling steps"):
        diffusion.ddim_timesteps(10, 11)


@pytest.mark.parametrize("prediction", ["eps", "x0"])
def test_ddim_with_exact_denoiser_recovers_gaussian(prediction):
    """For x0 ~ N(mu, s^2) the optimal eps and E[x0 | x_t] are closed forms; DDIM must return N(mu, s^2)."""
    mu, s = 1.5, 0.4
    abars = jnp.asarray(diffusion.cosine_alpha_bars(200))

    def exact(x, t, cond):
        a = abars[t][:, None, None]
        eps = jnp.sqrt(1 - a) * (x - jnp.sqrt(a) * mu) / (a * s**2 + 1 - a)
        return eps if prediction == "eps" else (x - jnp.sqrt(1 - a) * eps) / jnp.sqrt(a)

    samples = diffusion.ddim_sample(exact, jnp.zeros((20_000, 1)), jax.random.key(0), (20_000, 1, 1), abars,
                                    diffusion.ddim_timesteps(200, 50), prediction=prediction)
    assert float(samples.mean()) == pytest.approx(mu, abs=0.02)
    assert float(samples.std()) == pytest.approx(s, abs=0.02)


def test_trained_toy_reduces_loss_and_matches_mean_and_variance():
    """x | c ~ N(2c, 0.5^2) for c in {-1, +1}: a small MLP denoiser trained 1500 steps, 50-step DDIM."""
    rng = np.random.default_rng(0)
    c = rng.choice([-1.0, 1.0], 4096)
    x = (2 * c + 0.5 * rng.standard_normal(4096)).astype(np.float32)
    model = ConditionalDiffusion(1, 1, 1, DiffusionSpec(hidden=64, layers=2, train_steps=50, sample_steps=50,
                                                        clip=5.0))
    params = model.init(jax.random.key(0))
    arrays = {"x": x[:, None, None], "c": c[:, None].astype(np.float32)}
    eval_loss = jax.jit(lambda p: model.loss(p, arrays["x"], arrays["c"], jax.random.key(9)))
    before = float(eval_loss(params))
    params, _ = fit(lambda p, b, k: model.loss(p, b["x"], b["c"], k), params, arrays, steps=1500,
                    batch_size=256, lr=3e-3, key=jax.random.key(1), chunk=500)
    assert float(eval_loss(params)) < 0.6 * before
    for cond in (-1.0, 1.0):
        out = np.asarray(model.sample(params, jnp.full((4000, 1), cond), jax.random.key(2)))[:, 0, 0]
        assert out.mean() == pytest.approx(2 * cond, abs=0.15)
        assert out.var() == pytest.approx(0.25, rel=0.25)


def test_transformer_denoiser_trains_and_samples():
    """The GPU-scale denoiser: finite loss that drops in a few steps, samples of the right shape."""
    spec = DiffusionSpec(denoiser="transformer", hidden=32, layers=1, heads=2, train_steps=10, sample_steps=3,
                         prediction="x0")
    model = ConditionalDiffusion(4, 3, 5, spec)
    params = model.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    arrays = {"x": rng.standard_normal((256, 4, 3)).astype(np.float32) * 0.1 + 1.0,
              "c": rng.standard_normal((256, 5)).astype(np.float32)}
    eval_loss = jax.jit(lambda p: model.loss(p, arrays["x"], arrays["c"], jax.random.key(5)))
    before = float(eval_loss(params))
    params, _ = fit(lambda p, b, k: model.loss(p, b["x"], b["c"], k), params, arrays, steps=100, batch_size=64,
                    lr=3e-3, key=jax.random.key(1), chunk=100)
    assert np.isfinite(before) and float(eval_loss(params)) < 0.5 * before
    out = model.sample(params, jnp.asarray(arrays["c"][:7]), jax.random.key(2))
    assert out.shape == (7, 4, 3) and np.all(np.isfinite(np.asarray(out)))
