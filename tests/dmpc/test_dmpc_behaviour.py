"""Behaviour policies and the data factory: SAC learns, a killed run resumes to the same result, datasets
regenerate bit-identically from exported policies (with any number of workers), the ladder rule."""

import json

import numpy as np
import pytest

from common.checkpoint import latest_checkpoint, load_checkpoint
from dmpc.agents.sac import SACConfig, actor_dist, population
from dmpc.collect import check_or_record_manifest, write_task_datasets
from dmpc.config import CollectSizes
from dmpc.data.behaviour import LoopConfig, export_levels, regenerate_replay, train_behaviour_policies
from dmpc.data.dataset import DatasetError, load_dataset
from dmpc.data.ladder import BIN_WIDTH, LevelsError, kept_steps, pick_levels, rung
from dmpc.data.policy import actor_action, decode_actions, encode_actions
from dmpc.data.rollouts import PolicySpec, ReplayError, evaluate_episodes, replay_episodes, stream_id

TASKS = ["hopper", "halfcheetah"]  # 11/3 and 17/6 dims: hopper trains padded to halfcheetah's widths
LOOP = LoopConfig(sac_steps=1200, start_steps=200, block=100, utd=1, snapshot_every=300, eval_episodes=2,
                  ladder_bin=0.25, max_episode_steps=150, env_workers=False, eval_workers=0, save_every_s=1e9)
SAC = SACConfig(hidden=(32, 32), batch_size=64, lr=1e-3, init_temperature=0.1)


def _final(run_dir):
    return load_checkpoint(latest_checkpoint(run_dir), framework="numpy")[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("sac") / "run"
    status = train_behaviour_policies(TASKS, 0, run_dir, LOOP, SAC)
    return run_dir, status


def test_short_sac_run_beats_the_random_policy_by_far(trained):
    _, status = trained
    assert status.done and status.step == LOOP.sac_steps
    random_returns, _ = evaluate_episodes("hopper", PolicySpec("uniform", 3), LOOP.eval_episodes, 0,
                                          LOOP.max_episode_steps)
    best = max(r["return_mean"] for r in status.ladders["hopper"])
    assert best > 4 * np.mean(random_returns) and best > 50, (best, random_returns)
    assert [r["step"] for r in status.ladders["hopper"]] == [300, 600, 900, 1200]


def test_killed_run_resumes_to_the_same_parameters(trained, tmp_path):
    reference = _final(trained[0])
    run_dir = tmp_path / "run"
    loop = LoopConfig(**{**LOOP.__dict__, "save_every_s": 0.0})  # a checkpoint after every block

    class Killed(Exception):
        pass

    calls = {"n": 0}

    def die_at_the_fifth_log(metrics, step):  # mid-run, after eval results came in: work since the save is lost
        calls["n"] += 1
        if calls["n"] == 5:
            raise Killed(step)

    with pytest.raises(Killed):
        train_behaviour_policies(TASKS, 0, run_dir, loop, SAC, log=die_at_the_fifth_log)
    interrupted = _final(run_dir)["meta"]["step"]
    assert 0 < interrupted < LOOP.sac_steps
    status = train_behaviour_policies(TASKS, 0, run_dir, loop, SAC, time_budget_s=1e-9)  # stops after one block
    assert status.step == interrupted + LOOP.block and not status.done
    # the rest with the envs, evaluations and replay regeneration in worker processes: the same numbers
    parallel = LoopConfig(**{**loop.__dict__, "env_workers": True, "eval_workers": 2})
    train_behaviour_policies(TASKS, 0, run_dir, parallel, SAC)
    resumed = _final(run_dir)
    for key, value in reference["sac"].items():  # networks, target networks, Adam states, temperatures
        np.testing.assert_array_equal(resumed["sac"][key], value, err_msg=key)
    for task in TASKS:
        np.testing.assert_array_equal(resumed["members"][task]["codes"], reference["members"][task]["codes"])
    assert resumed["meta"]["ladders"] == reference["meta"]["ladders"]


def test_resume_refuses_other_settings(trained):
    from common.config import ConfigError

    other = SACConfig(hidden=(32, 32), batch_size=32, lr=1e-3, init_temperature=0.1)
    with pytest.raises(ConfigError, match="batch_size"):
        train_behaviour_policies(TASKS, 0, trained[0], LOOP, other)


def test_datasets_regenerate_bit_identically_with_any_number_of_workers(trained, tmp_path):
    run_dir, status = trained
    policies = tmp_path / "policies"
    record = export_levels(run_dir, "hopper", policies)
    assert record["expert"]["step"] == max(status.ladders["hopper"], key=lambda r: r["return_mean"])["step"]
    assert record["medium"]["step"] < record["expert"]["step"] and len(record["ladder"]) == 4
    sizes = CollectSizes(n_transitions=300, max_episode_steps=LOOP.max_episode_steps, workers=0)
    kinds = ["random", "medium", "medium-replay", "medium-expert", "expert"]
    first = write_task_datasets("hopper", kinds, policies, tmp_path / "a", 0, sizes, "cpu")
    sizes.workers = 2
    second = write_task_datasets("hopper", kinds, policies, tmp_path / "b", 0, sizes, "cpu")
    for kind in kinds:
        (_, m1), (path, m2) = first[kind], second[kind]
        assert m1["sha256"] == m2["sha256"], kind
        data, manifest = load_dataset(path)
        n = record["medium"]["step"] if kind == "medium-replay" else (600 if kind == "medium-expert" else 300)
        assert len(data["rewards"]) == n and manifest["env"] == "Hopper-v5" and "normalized" in manifest
    assert first["medium"][1]["policy"]["sha256"] == record["medium"]["sha256"]
    # a committed manifest is recorded once, then every regeneration must match it
    committed = tmp_path / "committed"
    check_or_record_manifest(first["medium"][0], committed)
    check_or_record_manifest(second["medium"][0], committed)
    manifest = json.loads((committed / "hopper-medium.json").read_text())
    (committed / "hopper-medium.json").write_text(json.dumps({**manifest, "sha256": "0" * 64}))
    with pytest.raises(DatasetError, match="regenerated with sha256"):
        check_or_record_manifest(second["medium"][0], committed)
    # medium-replay is the training run's own buffer: its actions are the recorded codes, decoded
    replay, _ = load_dataset(second["medium-replay"][0])
    codes = _final(run_dir)["members"]["hopper"]["codes"][:record["medium"]["step"]]
    np.testing.assert_array_equal(replay["actions"], decode_actions(codes))


def test_tampered_replay_actions_are_caught(trained, tmp_path):
    policies = tmp_path / "policies"
    export_levels(trained[0], "hopper", policies)
    with np.load(policies / "replay_actions.npz") as npz:
        codes, starts = npz["codes"], npz["episode_starts"]
    data = replay_episodes("hopper", codes, starts, 0, stream_id("sac", "hopper"), LOOP.max_episode_steps)
    assert len(data["rewards"]) == len(codes)
    ends = np.flatnonzero(data["terminals"] | data["timeouts"])
    np.testing.assert_array_equal(ends[:len(starts) - 1] + 1, starts[1:])  # episodes end where recorded
    with pytest.raises(ReplayError, match="not deterministic|corrupt"):
        replay_episodes("hopper", codes, starts + np.r_[0, np.ones(len(starts) - 1, int)], 0,
                        stream_id("sac", "hopper"), LOOP.max_episode_steps)
    (policies / "replay_actions.npz").write_bytes(b"not the recorded actions")
    with pytest.raises(ReplayError, match="sha256"):
        regenerate_replay(policies, "hopper", LOOP.max_episode_steps)


def test_numpy_actor_is_the_trained_jax_actor(trained):
    state = _final(trained[0])
    pop = population((11, 17), (3, 6), SAC)
    import jax

    device_state = jax.tree.unflatten(jax.tree.flatten(pop.init(0))[1],
                                      [state["sac"][f"{i:04d}"] for i in range(len(state["sac"]))])
    layers = pop.actor_layers(device_state)
    obs = np.random.default_rng(0).standard_normal((5, 17))
    for m, (obs_dim, act_dim) in enumerate([(11, 3), (17, 6)]):
        actor_m = jax.tree.map(lambda x, m=m: x[m], device_state["actor"])
        padded = np.pad(obs[:, :obs_dim], ((0, 0), (0, 17 - obs_dim)))
        mean, _ = actor_dist(actor_m, padded, pop.act_mask[m])
        np.testing.assert_allclose(actor_action(layers[m], obs[:, :obs_dim], None, act_dim),
                                   np.tanh(np.asarray(mean))[:, :act_dim], atol=1e-5)
        assert not np.asarray(mean)[:, act_dim:].any()  # padded action dimensions are masked


def test_action_codes_round_trip():
    a = np.linspace(-1, 1, 1001, dtype=np.float32)
    codes = encode_actions(a)
    assert codes.dtype == np.uint8 and codes.min() == 0 and codes.max() == 254
    assert np.abs(decode_actions(codes) - a).max() <= 1 / 254 + 1e-7
    np.testing.assert_array_equal(encode_actions(decode_actions(codes)), codes)


def _ladder(returns):
    return [rung("hopper", 1000 * (i + 1), [r], [1000]) for i, r in enumerate(returns)]


def test_ladder_rule_expert_is_best_medium_near_a_third():
    # hopper returns: D4RL-normalized = 100 (R + 20.27) / 3254.57
    ladder = _ladder([100, 600, 1000, 1100, 1500, 2500, 3300, 3000])
    levels = pick_levels("hopper", ladder)
    assert levels["expert"]["step"] == 7000
    assert levels["medium_target_return"] == pytest.approx(1100.0)
    assert levels["medium"]["step"] == 4000  # 1100 is kept: first in its 2.5-point bin
    keep = kept_steps(ladder)
    assert 7000 in keep and 8000 not in keep and 6000 not in keep  # >= 60 normalized: only the best is kept
    assert {1000, 2000, 3000, 4000, 5000} <= keep


def test_ladder_keeps_one_file_per_bin_and_checks_the_d4rl_levels():
    ladder = _ladder([1000, 1010, 1020, 1300])  # the first three share a bin; a weak expert (1300)
    assert kept_steps(ladder) == {1000, 4000}
    levels = pick_levels("hopper", ladder)
    assert levels["medium"]["step"] == 1000 and levels["medium_target_return"] == pytest.approx(1300 / 3)
    assert not levels["expert_ok"] and levels["medium_ok"]  # expert 40.6 < 75; medium 31.3 in [25, 60]
    assert BIN_WIDTH == 2.5
    good = pick_levels("hopper", _ladder([100, 600, 1000, 1100, 1500, 2500, 3300, 3000]))
    assert good["expert_ok"] and good["medium_ok"]
    with pytest.raises(LevelsError, match="best snapshot is the first"):
        pick_levels("hopper", _ladder([3000, 100]))


def test_exported_levels_json_is_complete(trained, tmp_path):
    record = export_levels(trained[0], "hopper", tmp_path)
    saved = json.loads((tmp_path / "levels.json").read_text())
    assert saved == json.loads(json.dumps(record))
    assert {"rule", "ladder", "expert", "medium", "replay", "sac", "loop", "expert_ok", "medium_ok"} <= set(saved)
    assert all(len(r["returns"]) == LOOP.eval_episodes for r in saved["ladder"])
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == sorted(["levels.json", "replay_actions.npz", saved["expert"]["path"], saved["medium"]["path"]])
