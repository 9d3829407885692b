"""D4RL-shaped datasets: manifest checksum, episode returns, windows that never cross episodes."""

import json

import numpy as np
import pytest

from dmpc.data.dataset import (
    D4RL_KEYS,
    DatasetError,
    complete_episode_returns,
    episode_returns,
    holdout_episodes,
    load_dataset,
    save_dataset,
    windows,
)
from dmpc.data.rollouts import PolicySpec, _InProcess, collect_transitions


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
    # episode 1 ends at a terminal (nothing after it), episode 2 at a timeout: gamma^(e+1-t-F), e = 9
    np.testing.assert_allclose(w["bootstrap"], [0, 0, 0.5**3, 0.5**2, 0.5, 1.0])
    np.testing.assert_array_equal(w["episode"], [0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(w["tail_future"][:, :, 0], [[1.5, 2.5, 3.5], [7.5, 8.5, 9.5]])


def test_value_targets_bootstrap_at_timeouts_only():
    """A 14-step trajectory cut at a time limit after step 5 (its return continues) and a separate episode that
    ends at a terminal; with an oracle V of the cut episode's tail, the targets must equal the Monte-Carlo returns
    of the *uncut* trajectory (NumPy reference); a terminal must not bootstrap (the oracle's 1e6 must not leak in)."""
    import jax.numpy as jnp

    from dmpc.models.value import value_targets

    gamma, horizon, history = 0.9, 3, 2
    rng = np.random.default_rng(0)
    full_rewards = rng.uniform(-1, 2, 14)
    lengths, terminal_last = (6, 5), (False, True)  # the cut trajectory's first 6 steps, then a terminal episode
    data = _toy(lengths, terminal_last)
    data["rewards"] = np.concatenate([full_rewards[:6], rng.uniform(-1, 2, 5)]).astype(np.float32)
    w = windows(data, history, horizon, gamma)

    def mc(rewards, t):  # discounted return from step t to the end of `rewards`
        return sum(gamma ** (j - t) * rewards[j] for j in range(t, len(rewards)))

    r32 = data["rewards"].astype(np.float64)
    full = np.concatenate([r32[:6], full_rewards[6:]])
    oracle_tail = np.array([mc(full, 6), 1e6])  # V(tail) of episode 0 = the return after its step 5
    targets = np.asarray(value_targets(jnp.asarray(w["value"]), jnp.asarray(w["bootstrap"]),
                                       jnp.asarray(oracle_tail[w["episode"]])))
    ref = [mc(full, t + horizon) for t in range(0, 6 - horizon + 1)]  # cut episode: t = 0..3
    ref += [mc(r32[6:], t + horizon) for t in range(0, 5 - horizon + 1)]  # terminal episode: t = 0..2
    np.testing.assert_allclose(targets, ref, rtol=1e-5)
    # the tail states are the ones V is asked about: s_{e-F+2:e+1} = next_observations[e-F+1:e+1]
    np.testing.assert_array_equal(w["tail_future"][0, :, 0], data["next_observations"][3:6, 0])


def test_value_loss_regresses_on_the_bootstrapped_targets():
    import jax
    import jax.numpy as jnp

    from dmpc.models.value import ValueModel

    model = ValueModel(horizon=3, obs_dim=1, hidden=8, layers=1, heads=2)
    params = jax.jit(model.init)(jax.random.key(0))
    w = windows(_toy(), history=2, horizon=3, gamma=0.5)
    batch = {k: jnp.asarray(w[k]) for k in ("future", "value", "bootstrap", "episode", "tail_future")}
    apply, loss = jax.jit(model.__call__), jax.jit(model.loss)
    pred, tail = np.asarray(apply(params, batch["future"])), np.asarray(apply(params, batch["tail_future"]))
    expected = np.mean((pred - (w["value"] + w["bootstrap"] * tail[w["episode"]])) ** 2)
    assert float(loss(params, batch, jax.random.key(1))) == pytest.approx(float(expected), rel=1e-5)
    no_bootstrap = float(loss(params, {**batch, "bootstrap": batch["bootstrap"] * 0}, jax.random.key(1)))
    assert no_bootstrap != pytest.approx(float(expected), rel=1e-3)


def test_holdout_is_whole_episodes_and_seeded():
    held = holdout_episodes(20, 0.1, seed=3)
    assert held.sum() == 2 and np.array_equal(held, holdout_episodes(20, 0.1, seed=3))
    assert not holdout_episodes(20, 0.0, seed=3).any() and holdout_episodes(3, 0.1, seed=0).sum() == 1
    with pytest.raises(DatasetError, match="val_fraction=0.1"):
        holdout_episodes(1, 0.1, seed=0)


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


class _CountingPool(_InProcess):
    """The in-process executor, posing as 4 workers, counting the env steps its jobs simulate (each job returns
    a list of episodes)."""

    _max_workers = 4

    def __init__(self):
        self.steps = 0

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        out = super().map(fn, *iterables, timeout=timeout, chunksize=chunksize)
        self.steps += sum(len(e["rewards"]) for batch in out for e in batch)
        return out


@pytest.mark.parametrize(("task", "act_dim", "limit"), [("halfcheetah", 6, 200), ("hopper", 3, 1000)])
def test_rollouts_simulate_little_more_than_they_keep(task, act_dim, limit):
    """Long (time-limit) and short (falling) episodes alike: the waves of jobs simulate < 2x the kept steps,
    and the bytes do not depend on how the episodes were split into jobs."""
    pool = _CountingPool()
    data = collect_transitions(task, PolicySpec("uniform", act_dim), 1000, seed=0, stream=1,
                               max_episode_steps=limit, pool=pool)
    assert len(data["rewards"]) == 1000 and pool.steps < 2000
    serial = collect_transitions(task, PolicySpec("uniform", act_dim), 1000, seed=0, stream=1, max_episode_steps=limit)
    for key in D4RL_KEYS:
        np.testing.assert_array_equal(data[key], serial[key])


def test_missing_behaviour_policies_give_a_clear_error(tmp_path):
    from common.config import ConfigError
    from dmpc.collect import read_levels

    with pytest.raises(ConfigError, match="levels.json"):
        read_levels(tmp_path)
