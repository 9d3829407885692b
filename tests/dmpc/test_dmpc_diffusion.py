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


@pytest.mark.parametrize("prediction, eta, steps", [("eps", 0.0, 50), ("x0", 0.0, 50), ("x0", 1.0, 200)])
def test_ddim_with_exact_denoiser_recovers_gaussian(prediction, eta, steps):
    """For x0 ~ N(mu, s^2) the optimal eps and E[x0 | x_t] are closed forms; DDIM must return N(mu, s^2), both
    deterministic (eta 0) and ancestral (eta 1: it needs the full chain, see the next test)."""
    mu, s = 1.5, 0.4
    abars = jnp.asarray(diffusion.cosine_alpha_bars(200))

    def exact(x, t, cond):
        a = abars[t][:, None, None]
        eps = jnp.sqrt(1 - a) * (x - jnp.sqrt(a) * mu) / (a * s**2 + 1 - a)
        return eps if prediction == "eps" else (x - jnp.sqrt(1 - a) * eps) / jnp.sqrt(a)

    samples = diffusion.ddim_sample(exact, jnp.zeros((20_000, 1)), jax.random.key(0), (20_000, 1, 1), abars,
                                    diffusion.ddim_timesteps(200, steps), eta=eta, prediction=prediction)
    assert float(samples.mean()) == pytest.approx(mu, abs=0.02)
    assert float(samples.std()) == pytest.approx(s, abs=0.02)


def test_few_ddim_steps_under_disperse_even_with_the_exact_denoiser():
    """Why the proposal samples the full chain with eta 0 (configs/dmpc/train.yaml): for x0 ~ N(0, 0.3^2) and T=50,
    5 steps give ~0.62 of the std and 50 give ~0.96; ancestral sampling (eta 1) gives less at either count."""
    s, abars = 0.3, jnp.asarray(diffusion.cosine_alpha_bars(50))

    def exact(x, t, cond):
        a = abars[t][:, None, None]
        return jnp.sqrt(a) * s**2 * x / (a * s**2 + 1 - a)  # E[x0 | x_t]

    def std(steps, eta):
        out = diffusion.ddim_sample(exact, jnp.zeros((20_000, 1)), jax.random.key(0), (20_000, 1, 1), abars,
                                    diffusion.ddim_timesteps(50, steps), eta=eta, prediction="x0")
        return float(out.std()) / s

    assert std(5, 0.0) < 0.7 and std(50, 0.0) > 0.93
    assert std(5, 1.0) < std(5, 0.0) and std(50, 1.0) < std(50, 0.0)


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
    params = fit(lambda p, b, k: model.loss(p, b["x"], b["c"], k), params, arrays, steps=1500,
                 batch_size=256, lr=3e-3, key=jax.random.key(1), chunk=500).params
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
    params = fit(lambda p, b, k: model.loss(p, b["x"], b["c"], k), params, arrays, steps=100, batch_size=64,
                 lr=3e-3, key=jax.random.key(1), chunk=100).params
    assert np.isfinite(before) and float(eval_loss(params)) < 0.5 * before
    out = model.sample(params, jnp.asarray(arrays["c"][:7]), jax.random.key(2))
    assert out.shape == (7, 4, 3) and np.all(np.isfinite(np.asarray(out)))
