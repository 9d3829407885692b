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
    plan, scores, best = plan_fn(jax.random.key(0))
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
    best_plan, scores, best = plan(models.params, jnp.zeros((2, 3)), jax.random.key(0))
    assert best_plan.shape == (4, 2) and scores.shape == (8,)
    assert np.all(np.isfinite(scores)) and int(best) == int(np.argmax(scores))
    assert np.all(np.abs(np.asarray(best_plan)) <= 1.0 + 1e-6)


def test_runtime_reward_with_autoregressive_dynamics():
    """A reward function passed at run time scores the plans (here r = a_0, so the score is known)."""
    models = _tiny_models()
    cfg = PlannerConfig(num_samples=8, value_weight=0.0, gamma=0.9, autoregressive=True)
    plan = make_planner(models, cfg, lambda s, a: a[..., 0])
    best_plan, scores, best = plan(models.params, jnp.zeros((2, 3)), jax.random.key(1))
    expected = float(np.asarray(best_plan)[:, 0] @ 0.9 ** np.arange(4))
    assert float(scores[best]) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert float(scores[best]) == pytest.approx(float(scores.max()))
