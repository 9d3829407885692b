"""The replay diagnostic in the real simulator: a perfect-model oracle (its own copy of the MuJoCo state, stepped
with mj_step, Hopper's reward written out) scores rank correlation 1 and zero dynamics error; shuffled scores give
about 0, reversed -1, and state noise of 0.1 std gives a normalized error of 0.1. dmpc.evaluate reports it."""

import jax
import mujoco
import numpy as np
import pytest
from scipy.stats import spearmanr

from dmpc.diagnostics import Candidates, replay_diagnostic, spearman
from dmpc.envs import make_env
from dmpc.models.conditional_diffusion import DiffusionSpec
from dmpc.models.model_set import ModelDims, ModelHyper, ModelSet, Normalizer

N, F, GAMMA, STATES = 16, 5, 0.9, 8


class RandomWalker:
    """The closed-loop controller whose visited states are diagnosed: fixed random actions."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def reset(self, obs) -> None:
        pass

    def act(self, obs) -> np.ndarray:
        return self.rng.uniform(-1, 1, 3)


def hopper_step(model, data, action) -> tuple[np.ndarray, float, bool]:
    """Hopper-v5's step written out (frame skip 4, ctrl cost 1e-3, healthy bonus 1): (obs, reward, terminated)."""
    x_before = data.qpos[0]
    data.ctrl[:] = action
    mujoco.mj_step(model, data, nstep=4)
    z, angle = data.qpos[1:3]
    state = np.concatenate([data.qpos, data.qvel])[2:]
    healthy = bool(np.all(np.abs(state) < 100) and z > 0.7 and abs(angle) < 0.2)
    reward = (data.qpos[0] - x_before) / (4 * model.opt.timestep) + healthy - 1e-3 * np.sum(np.square(action))
    return np.concatenate([data.qpos[1:], np.clip(data.qvel, -10, 10)]), reward, not healthy


def oracle(env, transform=lambda scores, states: (scores, states)):
    """Candidates predicted by stepping a copy of the env's current MjData (not through set_state)."""
    model = env.unwrapped.model

    def candidates(sim, key):
        actions = np.asarray(jax.random.uniform(key, (N, F, 3), minval=-1, maxval=1), np.float64)
        states, rewards, terminated = np.zeros((N, F, 11)), np.zeros((N, F)), np.zeros((N, F), bool)
        for i in range(N):
            data = mujoco.MjData(model)
            mujoco.mj_copyData(data, model, env.unwrapped.data)
            for k in range(F):
                states[i, k], rewards[i, k], terminated[i, k] = hopper_step(model, data, actions[i, k])
        alive = np.concatenate([np.ones((N, 1)), np.cumprod(~terminated[:, :-1], axis=1)], axis=1)
        scores = (rewards * alive) @ GAMMA ** np.arange(F)
        scores, states = transform(scores, states)
        return Candidates(actions, states, scores, scores, terminated.any(1))

    return candidates


def _diagnose(transform=lambda scores, states: (scores, states)):
    env, replay_env = make_env("hopper", max_episode_steps=1000), make_env("hopper", max_episode_steps=10**9)
    return replay_diagnostic(env, replay_env, RandomWalker(), oracle(env, transform), states=STATES, every=3,
                             seed=0, gamma=GAMMA, state_std=np.ones(11), behaviour_std=np.full(3, 0.5))


def test_perfect_model_ranks_perfectly_with_zero_dynamics_error():
    out = _diagnose()
    assert out["states"] == STATES and out["candidates"] == N and len(out["dyn_error"]) == F
    assert out["rank_corr"] > 0.99 and out["rank_corr_reward"] > 0.99
    assert max(out["dyn_error"]) < 1e-4
    assert out["terminated_fraction"] == pytest.approx(out["predicted_terminated_fraction"])
    assert 0 < out["terminated_fraction"] < 1  # random actions from these states: some candidates fall
    assert out["chosen_return"] == pytest.approx(out["best_return"], abs=1e-6)
    assert out["spread_ratio"] == pytest.approx(np.mean(out["proposal_std"]) / 0.5)
    assert 0.5 < out["spread_ratio"] < 1.5  # uniform actions: std 0.577 per dim


def test_shuffled_and_reversed_scores_and_noisy_states():
    shuffled = _diagnose(lambda s, x: (np.random.default_rng(1).permutation(s), x))
    assert abs(shuffled["rank_corr"]) < 0.3
    assert _diagnose(lambda s, x: (-s, x))["rank_corr"] < -0.99
    noisy = _diagnose(lambda s, x: (s, x + 0.1 * np.random.default_rng(2).standard_normal(x.shape)))
    np.testing.assert_allclose(noisy["dyn_error"], 0.1, rtol=0.15)


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, 40).astype(float), rng.standard_normal(40)
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    assert np.isnan(spearman(np.ones(5), np.arange(5.0)))


def test_evaluate_writes_the_dmpc_diagnostic_into_the_results_json(tmp_path):
    """dmpc.evaluate with untrained tiny models: the D-MPC adapter runs and metrics.diagnostics.dmpc is written."""
    from common.config import LoggerConfig
    from common.logging import RunLogger
    from common.results import read_result
    from dmpc.config import EvalSizes, EvaluateConfig
    from dmpc.data.dataset import save_dataset
    from dmpc.data.rollouts import PolicySpec, collect_transitions
    from dmpc.evaluate import evaluate

    ws = tmp_path / "ws"
    data = collect_transitions("hopper", PolicySpec("uniform", 3), 200, seed=0, stream=1, max_episode_steps=50)
    save_dataset(ws / "datasets", "hopper", "medium", data, {"env": "Hopper-v5"})
    spec = DiffusionSpec(hidden=16, layers=1, train_steps=10, sample_steps=3)
    models = ModelSet(ModelDims(11, 3, 2, 4), ModelHyper(spec, spec, (16,), 8, 1, 2),
                      Normalizer(data["observations"].mean(0), data["observations"].std(0) + 1e-3, 1.0))
    for i, name in enumerate(("proposal", "dynamics", "reward")):  # no value model: value_weight 0
        models.params[name] = jax.jit(models.models[name].init)(jax.random.key(i))
    models.save(ws / "models" / "medium")
    quiet = LoggerConfig(backend="jsonl", mode="disabled", progress=False)
    sizes = EvalSizes(episodes=1, max_episode_steps=12, num_samples=6, diagnostic_states=2, diagnostic_every=2)
    cfg = EvaluateConfig(workspace=str(ws), methods=["dmpc"], value_weight=0.0, logger=quiet,
                         scales={"cpu": sizes, "gpu": EvalSizes()})
    with RunLogger(quiet, tmp_path / "run") as log:
        path = evaluate(cfg, log, results_root=tmp_path / "results")["results_path"]
    diag = read_result(path)["metrics"]["diagnostics"]["dmpc"]
    assert diag["states"] == 2 and diag["candidates"] == 6 and len(diag["dyn_error"]) == 4
    assert len(diag["proposal_std"]) == 3 and np.all(np.isfinite(diag["dyn_error"]))
    np.testing.assert_allclose(diag["behaviour_std"], data["actions"].std(0), rtol=1e-5)
    assert diag["rank_corr"] is None or -1 <= diag["rank_corr"] <= 1
