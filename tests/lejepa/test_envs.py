"""Environments: determinism, the authors' action and success conventions, set_state, experts, datasets."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lejepa.envs import make_env, make_policy
from lejepa.envs.dataset import DatasetError, collect_dataset, load_dataset
from lejepa.envs.two_room import TwoRoom, expert_action

SITE = Path(__file__).resolve().parents[2] / "data" / "lejepa" / "mujoco_site"


def frames_for(env_name, seed, steps=4, size=32):
    env = make_env(env_name, size)
    rng = np.random.default_rng(seed)
    frames = [env.reset(seed)]
    for _ in range(steps):
        frames.append(env.step(rng.uniform(-1, 1, env.action_dim)))
    return np.stack(frames), env


def test_two_room_swm_geometry_deterministic_and_walls_block():
    a, env = frames_for("two_room", 3)
    b, _ = frames_for("two_room", 3)
    c, _ = frames_for("two_room", 4)
    assert a.shape == (5, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert env.cfg.max_step == pytest.approx(5 / 224) and env.cfg.success_radius == pytest.approx(16 / 224)
    env = TwoRoom()
    env.set_state(np.array([0.3, 0.2]))  # left room, away from the door: pushing right stops at the wall
    for _ in range(40):
        env.step(np.array([1.0, 0.0]))
    assert env.state()[0] < 0.5
    env.set_state(np.array([0.3, env.cfg.door_center]))  # level with the door: passes into the right room
    for _ in range(40):
        env.step(np.array([1.0, 0.0]))
    assert env.state()[0] > 0.5


def test_two_room_expert_reaches_goals_across_rooms():
    env = TwoRoom()
    rng = np.random.default_rng(0)
    reached = 0
    for k in range(20):
        env.reset(k)
        goal = env.sample_free_position(rng, room=1 - int(env.state()[0] > 0.5))
        for _ in range(150):
            env.step(expert_action(env, env.state(), goal))
            if env.is_success(goal):
                break
        reached += env.is_success(goal)
    assert reached == 20


def test_push_t_relative_actions_and_swm_success_rule():
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    env = make_env("push_t", 32)
    env.reset(0)
    start = env.state()
    for _ in range(3):
        env.step(np.zeros(2))  # relative action 0: the agent's PD target is where it is
    assert np.linalg.norm(env.state()[:2] - start[:2]) < 1e-6
    env.step(np.array([1.0, 0.0]))  # target 100 px to the right
    assert 20 < env.state()[0] - start[0] <= 100 + 1e-6
    s = env.state()
    env.set_state(s)
    assert np.allclose(env.state(), s, atol=1e-9)  # set_state is the exact inverse of state()
    goal = s.copy()
    assert env.is_success(goal)
    for dx, angle, ok in ((12, 0.0, True), (0, np.pi / 10, True), (21, 0.0, False), (0, np.pi / 8, False)):
        g = goal.copy()
        g[2] += dx
        g[4] = (g[4] + angle) % (2 * np.pi)
        assert env.is_success(g) == ok  # 20 px on the agent+block 4-vector, pi/9 on the angle (swm eval_state)
    frame = env.render()
    env.recolor()
    assert not np.array_equal(env.render(), frame)
    env.reset(0)
    assert np.array_equal(env.render(), make_env("push_t", 32).reset(0))  # reset undoes the colour change


def test_push_t_expert_pushes_the_block_to_targets():
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from lejepa.envs.push_t import PushT, block_pose_coverage

    env = PushT(render=False)
    env.reset(1)
    expert = make_policy(env, "noisy_expert", np.random.default_rng(1))
    states = [env.state()]
    for _ in range(300):
        env.step(expert.action())
        states.append(env.state())
    assert expert.reached >= 1  # the block reached at least one target pose (10 px, 0.1 rad)
    cov = block_pose_coverage(np.stack(states)[None])
    assert cov["block_path_px_per_episode"] > 100 and 0 < cov["block_pose_coverage"] < 1


DMC_SCRIPT = """
import json, numpy as np
from lejepa.envs import make_env, make_policy
env = make_env({env!r}, 32)
env.reset(2)
f0 = env.render()
policy = make_policy(env, {policy!r}, np.random.default_rng(0))
out = {{}}
if {env!r} == "reacher":
    t0 = env.physics.data.time
    env.step(policy.action())
    out["dt"] = env.physics.data.time - t0
    out["target_alpha"] = float(env.physics.named.model.geom_rgba["target", 3])
    s = env.state()
    g = s.copy(); g[0] += 0.04
    out["near"] = env.is_success(g)
    g[0] += 0.02
    out["far"] = env.is_success(g)
else:
    for _ in range(40):
        env.step(policy.action())
    s = env.state()
    g = s.copy(); g[0] += 0.03
    out["near"] = env.is_success(g)
    g[0] += 0.02
    out["far"] = env.is_success(g)
env.set_state(s)
out["restored"] = float(np.abs(env.state()[:4] - s[:4]).max())
out["moved"] = bool(not np.array_equal(f0, env.render()))
print(json.dumps(out))
"""


def run_mujoco(env: str, policy: str) -> dict:
    # In a subprocess: dm_control needs mujoco 3.17.0 (make lejepa-mujoco-site) ahead of the venv's 4.0.0, and
    # MuJoCo's EGL context in the pytest process once made a later torch test segfault.
    if not SITE.is_dir():
        pytest.skip("no data/lejepa/mujoco_site (make lejepa-mujoco-site)")
    environ = {**os.environ, "MUJOCO_GL": "egl", "PYTHONPATH": f"{SITE}:{Path(__file__).resolve().parents[2]}"}
    proc = subprocess.run([sys.executable, "-c", DMC_SCRIPT.format(env=env, policy=policy)], capture_output=True,
                          text=True, env=environ, timeout=300)
    if proc.returncode != 0 and "egl" in proc.stderr.lower() and "Error" in proc.stderr.splitlines()[-1]:
        pytest.skip(f"MuJoCo offscreen rendering unavailable: {proc.stderr[-300:]}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


def test_dmc_reacher_swm_conventions():
    out = run_mujoco("reacher", "random")
    assert out["dt"] == pytest.approx(0.04)  # one env step = 2 control steps of 0.02 s (swm action_repeat 2)
    assert out["target_alpha"] == 0.0  # the target is not drawn (swm render_target 0)
    assert out["near"] and not out["far"]  # every joint within 0.05 rad (swm qpos_match)
    assert out["restored"] < 1e-9 and out["moved"]


def test_ogbench_cube_oracle_and_success_rule():
    out = run_mujoco("cube", "noisy_expert")
    assert out["near"] and not out["far"]  # cube within 0.04 m of the goal's cube position
    assert out["restored"] < 1e-3 and out["moved"]


def test_dataset_roundtrip_manifest_workers_and_errors(tmp_path):
    manifest = collect_dataset("two_room", "mixed", episodes=4, steps=5, seed=7, image_size=16, out_dir=tmp_path)
    data = load_dataset(tmp_path)
    assert data["frames"].shape == (4, 6, 16, 16, 3)
    assert data["actions"].shape == (4, 5, 2) and data["states"].shape == (4, 6, 2)
    assert manifest["env"] == "two_room" and manifest["policy"] == "mixed" and manifest["seed"] == 7
    assert manifest["policy_stats"]["episodes_by_policy"] == {"random": 0, "correlated_random": 2, "noisy_expert": 2}
    again = collect_dataset("two_room", "mixed", episodes=4, steps=5, seed=7, image_size=16,
                            out_dir=tmp_path / "again", workers=2)
    assert again["files"] == manifest["files"]  # same seed -> same bytes, however many workers
    assert np.abs(np.diff(data["states"], axis=1)).max() <= 5 / 224 + 1e-6  # one step of the action at most
    with pytest.raises(DatasetError, match="missing manifest.json"):
        load_dataset(tmp_path / "nowhere")
    record = json.loads((tmp_path / "manifest.json").read_text())
    record["files"]["frames"]["sha256"] = "0" * 64
    (tmp_path / "manifest.json").write_text(json.dumps(record))
    with pytest.raises(DatasetError, match="sha256"):
        load_dataset(tmp_path)


def test_unknown_env_and_policy():
    with pytest.raises(ValueError, match="env='atari'"):
        make_env("atari")
    with pytest.raises(ValueError, match="policy"):
        collect_dataset("two_room", "greedy", 1, 1, 0, 16, "/tmp/unused")
