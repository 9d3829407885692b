"""Sample-score-rank picks the best of N; the jit-compiled planner runs with real (untrained) models."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmpc.models.conditional_diffusion import DiffusionSpec
from dmpc.models.model_set import ModelDims, ModelHyper, ModelSet, Normalizer
from dmpc.planner import PlannerConfig, make_planner, rank_plans, sample_score_rank

A_MAT = np.array([[1.0, 0.1], [0.0, 1.0]])
B_MAT = np.array([[0.0], [0.1]])
GOAL = np.array([1.0, 0.0])


def test_rank_plans_discounts_and_value():
    actions = jnp.arange(3 * 2 * 1, dtype=jnp.float32).reshape(3, 2, 1)
    rewards = jnp.array([[1.0, 0.0], [0.0, 1.2], [0.5, 0.5]])
    values = jnp.array([0.0, 0.0, 0.0])
    plan, scores, best = rank_plans(actions, rewards, values, gamma=0.5, value_weight=1.0)
    np.testing.assert_allclose(scores, [1.0, 0.6, 0.75])
    assert int(best) == 0 and np.array_equal(plan, actions[0])
    _, scores, best = rank_plans(actions, rewards, jnp.array([0.0, 4.0, 0.0]), gamma=0.5, value_weight=1.0)
    assert int(best) == 1 and float(scores[1]) == pytest.approx(0.6 + 0.25 * 4.0)


def test_picks_best_of_n_on_a_linear_system():
    """x' = A x + B u, r = -|x' - goal|^2; candidates scored independently in float64 NumPy."""
    n, horizon = 64, 5

    def propose(hists, key):
        return jax.random.uniform(key, (hists.shape[0], horizon, 1), minval=-1, maxval=1)

    def predict(hists, actions, key):
        def step(x, u):
            x = x @ A_MAT.T.astype(np.float32) + u @ B_MAT.T.astype(np.float32)
            return x, x
        _, xs = jax.lax.scan(step, hists[:, -1], actions.transpose(1, 0, 2))
        return xs.transpose(1, 0, 2)

    def reward(prev, actions, states):
        return -jnp.sum((states - GOAL) ** 2, axis=-1)

    hist = jnp.asarray([[0.2, -0.3]], jnp.float32)
    plan_fn = jax.jit(lambda k: sample_score_rank(k, hist, propose, predict, reward, None, n, 0.9, 0.0))
    out = plan_fn(jax.random.key(0))
    plan, scores, best = out.best_actions, out.scores, out.best
    candidates = np.asarray(propose(jnp.zeros((n, 1, 2)), jax.random.split(jax.random.key(0))[0]), np.float64)
    ref = []
    for u in candidates:
        x, total = np.array([0.2, -0.3]), 0.0
        for k in range(horizon):
            x = A_MAT @ x + B_MAT @ u[k]
            total += 0.9**k * -np.sum((x - GOAL) ** 2)
        ref.append(total)
    assert int(best) == int(np.argmax(ref))
    np.testing.assert_allclose(scores, ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(plan, candidates[np.argmax(ref)], atol=1e-6)


def _tiny_models(obs_dim=3, act_dim=2, history=2, horizon=4):
    spec = DiffusionSpec(hidden=32, layers=1, train_steps=10, sample_steps=3)
    hyper = ModelHyper(proposal=spec, dynamics=spec, mlp_hidden=(16,), value_hidden=16, value_layers=1,
                       ensemble_members=2)
    models = ModelSet(ModelDims(obs_dim, act_dim, history, horizon), hyper,
                      Normalizer(np.zeros(obs_dim, np.float32), np.ones(obs_dim, np.float32), 1.0))
    for i, name in enumerate(("proposal", "dynamics", "dynamics_1step", "reward", "value")):
        models.params[name] = models.init(name, jax.random.key(i))
    return models


def test_jit_planner_runs_with_n8():
    models = _tiny_models()
    plan = make_planner(models, PlannerConfig(num_samples=8))
    out = plan(models.params, jnp.zeros((2, 3)), jax.random.key(0))
    best_plan, scores, best = out.best_actions, out.scores, out.best
    assert best_plan.shape == (4, 2) and scores.shape == (8,)
    assert out.actions.shape == (8, 4, 2) and out.states.shape == (8, 4, 3) and not np.any(out.terminated)
    assert np.all(np.isfinite(scores)) and int(best) == int(np.argmax(scores))
    assert np.all(np.abs(np.asarray(best_plan)) <= 1.0 + 1e-6)


def test_runtime_reward_with_autoregressive_dynamics():
    """A reward function passed at run time scores the plans (here r = a_0, so the score is known)."""
    models = _tiny_models()
    cfg = PlannerConfig(num_samples=8, value_weight=0.0, gamma=0.9, autoregressive=True)
    plan = make_planner(models, cfg, lambda s, a: a[..., 0])
    out = plan(models.params, jnp.zeros((2, 3)), jax.random.key(1))
    best_plan, scores, best = out.best_actions, out.scores, out.best
    expected = float(np.asarray(best_plan)[:, 0] @ 0.9 ** np.arange(4))
    assert float(scores[best]) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert float(scores[best]) == pytest.approx(float(scores.max()))


def test_termination_zeroes_rewards_after_a_predicted_fall_and_drops_the_value():
    """States fall by the action each step; 'healthy' is height > 0. Reward 1 per step (a healthy bonus) and value
    10 would favour any plan; with termination a plan that falls early scores less (NumPy reference below)."""
    n, horizon, gamma = 16, 4, 0.9

    def propose(hists, key):
        return jax.random.uniform(key, (hists.shape[0], horizon, 1), minval=-1, maxval=0.3)

    def predict(hists, actions, key):
        return hists[:, -1:, :1] + jnp.cumsum(actions, axis=1)

    hist = jnp.asarray([[1.0]], jnp.float32)
    plan = jax.jit(lambda k: sample_score_rank(
        k, hist, propose, predict, lambda p, a, s: jnp.ones(s.shape[:2]), lambda s: jnp.full(s.shape[:1], 10.0),
        n, gamma, 1.0, healthy=lambda s: s[..., 0] > 0))(jax.random.key(3))
    heights = 1.0 + np.cumsum(np.asarray(plan.actions, np.float64)[..., 0], axis=1)
    ref = []
    for h in heights:
        fall = np.flatnonzero(h <= 0)
        paid = horizon if len(fall) == 0 else fall[0] + 1  # the falling step is paid, nothing after
        ref.append(sum(gamma**k for k in range(paid)) + (gamma**horizon * 10.0 if len(fall) == 0 else 0.0))
    assert 0 < np.mean([np.any(h <= 0) for h in heights]) < 1  # some fall, some do not
    np.testing.assert_allclose(plan.scores, ref, rtol=1e-5)
    np.testing.assert_array_equal(plan.terminated, np.any(heights <= 0, axis=1))
    assert int(plan.best) == int(np.argmax(ref))


def test_make_planner_applies_the_rule_on_raw_states():
    """Raw states are the normalized ones + 100 here: a rule 'healthy above 50' holds for every raw state and for
    no normalized one (|clipped x0| <= 5), so nothing may terminate, and the value stays in the score."""
    models = _tiny_models()
    models.normalizer.mean[:] = 100.0
    gamma, horizon = 0.9, models.dims.horizon
    plan = make_planner(models, PlannerConfig(num_samples=8, gamma=gamma), healthy_fn=lambda s: s[..., 0] > 50.0)
    out = plan(models.params, jnp.zeros((2, 3)), jax.random.key(0))
    assert not np.any(out.terminated) and np.all(np.asarray(out.values) != 0)
    expected = np.asarray(out.rewards) @ gamma ** np.arange(horizon) + gamma**horizon * np.asarray(out.values)
    np.testing.assert_allclose(out.scores, expected, rtol=1e-5, atol=1e-6)
