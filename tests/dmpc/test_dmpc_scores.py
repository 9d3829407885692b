"""D4RL-normalized score against D4RL's reference returns (d4rl/infos.py REF_MIN_SCORE / REF_MAX_SCORE)."""

import numpy as np
import pytest

from dmpc.envs import D4RL_REF_RETURNS, normalized_score, task_of

# D4RL infos.py, gym-mujoco '*-random-v0' entries (reused for v1/v2 datasets).
D4RL_INFOS = {"halfcheetah": (-280.178953, 12135.0), "hopper": (-20.272305, 3234.3),
              "walker2d": (1.629008, 4592.3)}


@pytest.mark.parametrize("task", sorted(D4RL_INFOS))
def test_reference_points_map_to_0_and_100(task):
    low, high = D4RL_INFOS[task]
    assert D4RL_REF_RETURNS[task] == (low, high)
    assert normalized_score(task, low) == pytest.approx(0.0, abs=1e-12)
    assert normalized_score(task, high) == pytest.approx(100.0, abs=1e-12)
    assert normalized_score(task, (low + high) / 2) == pytest.approx(50.0, abs=1e-12)


def test_formula_on_known_returns():
    # hopper 1000: 100 * (1000 + 20.272305) / (3234.3 + 20.272305) = 31.3487...
    assert normalized_score("hopper", 1000.0) == pytest.approx(100 * 1020.272305 / 3254.572305, rel=1e-12)
    returns = np.array([0.0, 4800.0, -500.0])
    expected = 100 * (returns - (-280.178953)) / (12135.0 + 280.178953)
    np.testing.assert_allclose(normalized_score("halfcheetah", returns), expected, rtol=1e-12)


def test_task_names_of_env_ids():
    assert task_of("Hopper-v5") == "hopper"
    assert task_of("HalfCheetah-v5") == "halfcheetah"
    assert task_of("dmpc/Walker2dBrokenAnkle-v0") == "walker2d"
    with pytest.raises(KeyError, match="no D4RL reference"):
        task_of("Ant-v5")
    with pytest.raises(KeyError, match="unknown task"):
        normalized_score("ant", 1.0)
