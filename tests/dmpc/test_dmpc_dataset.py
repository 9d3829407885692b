"""D4RL-shaped datasets: manifest checksum, episode returns, windows that never cross episodes."""

import json

import numpy as np
import pytest

from dmpc.data.dataset import (
    D4RL_KEYS,
    DatasetError,
    complete_episode_returns,
    episode_returns,
    load_dataset,
    save_dataset,
    windows,
)
from dmpc.data.rollouts import PolicySpec, collect_transitions


def _toy(lengths=(4, 6), terminal_last=(True, False)):
    """Episodes of given lengths; obs = global step index (1-D), reward = 1."""
    n = sum(lengths)
    obs = np.arange(n, dtype=np.float32)[:, None]
    terminals, timeouts = np.zeros(n, bool), np.zeros(n, bool)
    end = -1
    for length, term in zip(lengths, terminal_last, strict=True):
        end += length
        (terminals if term else timeouts)[end] = True
    return {"observations": obs, "actions": obs * 10, "rewards": np.ones(n, np.float32), "terminals": terminals,
            "timeouts": timeouts, "next_observations": obs + 0.5}


def test_manifest_checksum_catches_a_modified_file(tmp_path):
    data = _toy()
    path = save_dataset(tmp_path, "hopper", "medium", data, {"env": "Hopper-v5", "seed": 0})
    loaded, manifest = load_dataset(path)
    assert manifest["n_episodes"] == 2 and manifest["returns"]["mean"] == pytest.approx(5.0)
    for key in D4RL_KEYS:
        np.testing.assert_array_equal(loaded[key], data[key])
    raw = bytearray(path.read_bytes())
    raw[-20] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="corrupt or modified"):
        load_dataset(path)
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(tmp_path / "missing.npz")


def test_windows_stay_inside_episodes_and_value_targets():
    data = _toy()
    w = windows(data, history=2, horizon=3, gamma=0.5)
    # episode 1 (steps 0-3): starts 0, 1; episode 2 (steps 4-9): starts 4..7
    starts = w["actions"][:, 0, 0] / 10
    np.testing.assert_array_equal(starts, [0, 1, 4, 5, 6, 7])
    np.testing.assert_array_equal(w["hist"][:, :, 0], [[0, 0], [0, 1], [4, 4], [4, 5], [5, 6], [6, 7]])
    np.testing.assert_array_equal(w["future"][:, :, 0], starts[:, None] + np.arange(3) + 0.5)
    # value = discounted return from t+3 to the episode's end (reward 1 per step, gamma 0.5)
    expected = [1.0, 0.0, 1 + 0.5 + 0.25, 1 + 0.5, 1.0, 0.0]
    np.testing.assert_allclose(w["value"], expected)
    np.testing.assert_allclose(episode_returns(data), [4.0, 6.0])


def test_random_rollout_has_d4rl_keys_and_consistent_transitions():
    data = collect_transitions("hopper", PolicySpec("uniform", 3), 200, seed=0, stream=1)
    assert set(D4RL_KEYS) <= set(data) and data["observations"].shape == (200, 11)
    assert data["observations"].dtype == np.float32 and data["terminals"].dtype == bool
    ends = data["terminals"] | data["timeouts"]
    assert ends[-1] and not (data["terminals"] & data["timeouts"]).any()
    same_episode = ~ends[:-1]
    np.testing.assert_array_equal(data["next_observations"][:-1][same_episode],
                                  data["observations"][1:][same_episode])
    assert json.dumps({"n": int(ends.sum())})


def test_timeouts_are_time_limits_and_cut_episodes_are_not_levels():
    data = collect_transitions("halfcheetah", PolicySpec("uniform", 6), 250, seed=0, stream=1, max_episode_steps=100)
    # halfcheetah never terminates: episodes end at the 100-step time limit (timeouts), the last one is cut at 250
    assert not data["terminals"].any()
    np.testing.assert_array_equal(np.flatnonzero(data["timeouts"]), [99, 199, 249])
    assert len(episode_returns(data)) == 3 and len(complete_episode_returns(data, 100)) == 2


def test_missing_behaviour_policies_give_a_clear_error(tmp_path):
    from common.config import ConfigError
    from dmpc.collect import read_levels

    with pytest.raises(ConfigError, match="levels.json"):
        read_levels(tmp_path)
