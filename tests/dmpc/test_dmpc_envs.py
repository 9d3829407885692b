"""The Walker2d variants really change the MJCF (broken ankle) and the reward (jump)."""

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from dmpc.envs import JumpReward, broken_ankle_xml, make_env, register_variants


def _joint_and_gear(env, joint="foot_joint"):
    model = env.unwrapped.model
    j = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, joint)
    actuator = [i for i in range(model.nu) if model.actuator_trnid[i, 0] == j][0]
    return np.degrees(model.jnt_range[j]), model.actuator_gear[actuator, 0]


def test_variants_are_registered():
    register_variants()
    assert "dmpc/Walker2dJump-v0" in gym.registry
    assert "dmpc/Walker2dBrokenAnkle-v0" in gym.registry


def test_broken_ankle_changes_range_and_gear_of_one_foot_only():
    normal = make_env("walker2d")
    broken = make_env("walker2d_broken_ankle")
    rng_n, gear_n = _joint_and_gear(normal)
    rng_b, gear_b = _joint_and_gear(broken)
    np.testing.assert_allclose(rng_n, [-45, 45], atol=1e-6)
    np.testing.assert_allclose(rng_b, [-5, 5], atol=1e-6)
    assert gear_n == 100 and gear_b == 30
    assert _joint_and_gear(broken, "foot_left_joint")[1] == 100
    xml = broken_ankle_xml((-10.0, 10.0), 50.0).read_text()
    assert 'range="-10 10"' in xml and 'gear="50"' in xml


def test_broken_ankle_changes_the_dynamics():
    normal, broken = make_env("walker2d"), make_env("walker2d_broken_ankle")
    actions = np.random.default_rng(0).uniform(-1, 1, (30, 6))
    finals = []
    for env in (normal, broken):
        env.reset(seed=3)
        for a in actions:
            obs, *_ = env.step(a)
        finals.append(obs)
    assert np.abs(finals[0] - finals[1]).max() > 1e-2


def test_jump_reward_formula_and_wrapper():
    fn = JumpReward(height_weight=2.0, vertical_velocity_weight=0.5, healthy_reward=1.0, ctrl_cost_weight=0.1)
    obs = np.zeros(17)
    obs[0], obs[9] = 1.45, 0.8
    act = np.full(6, 0.5)
    assert fn(obs, act) == pytest.approx(2.0 * 0.2 + 0.5 * 0.8 + 1.0 - 0.1 * 1.5)
    obs[9] = -3.0  # falling is not rewarded negatively by the velocity term
    assert fn(obs, act) == pytest.approx(2.0 * 0.2 + 1.0 - 0.1 * 1.5)

    plain, jump = make_env("walker2d"), make_env("walker2d_jump")
    plain.reset(seed=1)
    jump.reset(seed=1)
    default = JumpReward()
    for a in np.random.default_rng(1).uniform(-1, 1, (5, 6)):
        o1, r1, *_ = plain.step(a)
        o2, r2, _, _, info = jump.step(a)
        np.testing.assert_allclose(o1, o2)
        assert info["task_reward"] == pytest.approx(r1)
        assert r2 == pytest.approx(default(o2, a))
        assert r2 != pytest.approx(r1)
