"""The healthy-state rules equal gymnasium's own `terminated` / `is_healthy` on real rollouts; `terminate` masks
rewards after the first unhealthy predicted state and drops the value of terminated candidates."""

import jax.numpy as jnp
import numpy as np
import pytest

from dmpc.envs import make_env
from dmpc.envs.termination import alive_before, healthy_rule, terminate


@pytest.mark.parametrize("task", ["hopper", "walker2d"])
def test_rule_matches_the_envs_terminated_on_real_episodes(task):
    """Uniform random actions until the env terminates: the rule on each next observation is `not terminated`."""
    rule = healthy_rule(task)
    env = make_env(task, max_episode_steps=1000)
    rng = np.random.default_rng(0)
    observations, terminals = [], []
    for episode in range(15):
        obs, _ = env.reset(seed=episode)
        observations.append(obs)
        terminals.append(False)
        terminated = truncated = False
        while not (terminated or truncated):
            obs, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
            observations.append(obs)
            terminals.append(terminated)
    terminals = np.asarray(terminals)
    assert terminals.sum() == 15  # random actions make both fall well before the time limit: both branches run
    np.testing.assert_array_equal(np.asarray(rule(jnp.asarray(np.stack(observations)))), ~terminals)


@pytest.mark.parametrize("task", ["hopper", "walker2d", "walker2d_broken_ankle"])
def test_rule_matches_is_healthy_after_falling(task):
    """With termination off the sim keeps going through fallen (and recovered) states: rule == env.is_healthy."""
    rule = healthy_rule(task)
    env = make_env(task, max_episode_steps=200, terminate_when_unhealthy=False)
    rng = np.random.default_rng(1)
    obs_list, truth = [], []
    for episode in range(6):
        env.reset(seed=100 + episode)
        for _ in range(200):
            obs, *_ = env.step(rng.uniform(-1, 1, env.action_space.shape))
            obs_list.append(obs)
            truth.append(env.unwrapped.is_healthy)
    pred = np.asarray(rule(jnp.asarray(np.stack(obs_list))))
    truth = np.asarray(truth)
    assert min(truth.sum(), (~truth).sum()) > 30, truth.mean()  # both classes are well represented
    np.testing.assert_array_equal(pred, truth)


def test_halfcheetah_never_terminates():
    assert healthy_rule("halfcheetah") is None
    env = make_env("halfcheetah", max_episode_steps=300)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    assert not any(env.step(rng.uniform(-1, 1, 6))[2] for _ in range(300))
    with pytest.raises(KeyError, match="termination rule"):
        healthy_rule("ant")


def test_terminate_keeps_the_falling_step_and_drops_the_value():
    rewards = jnp.ones((3, 4))
    values = jnp.array([10.0, 10.0, 10.0])
    healthy = jnp.array([[True, True, True, True],     # alive throughout
                         [True, False, True, True],    # falls at s_{t+2}: r_t, r_{t+1} paid, then nothing
                         [False, True, True, True]])   # falls at s_{t+1}: only r_t
    out_r, out_v, terminated = terminate(rewards, values, healthy)
    np.testing.assert_array_equal(out_r, [[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    np.testing.assert_array_equal(out_v, [10.0, 0.0, 0.0])
    np.testing.assert_array_equal(terminated, [False, True, True])
    np.testing.assert_array_equal(alive_before(healthy[1:2]), [[1, 1, 0, 0]])
