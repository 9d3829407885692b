"""Environments render deterministic frames for a seed; Two-Room physics; datasets with manifest and checks."""

import json
import os

import numpy as np
import pytest

from lejepa.envs import make_env
from lejepa.envs.dataset import DatasetError, collect_dataset, load_dataset
from lejepa.envs.two_room import TwoRoom, expert_action


def frames_for(env_name, seed, steps=4, size=32):
    env = make_env(env_name, size)
    rng = np.random.default_rng(seed)
    frames = [env.reset(seed)]
    for _ in range(steps):
        frames.append(env.step(rng.uniform(-1, 1, env.action_dim))[0])
    return np.stack(frames), env


def test_two_room_deterministic_and_walls_block():
    a, _ = frames_for("two_room", 3)
    b, _ = frames_for("two_room", 3)
    c, _ = frames_for("two_room", 4)
    assert a.shape == (5, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    env = TwoRoom()
    env.set_state(np.array([0.3, 0.9]))  # left room, far from the door: pushing right stops at the wall
    for _ in range(10):
        env.step(np.array([1.0, 0.0]))
    assert env.state()[0] < 0.5
    env.set_state(np.array([0.3, 0.5]))  # level with the door: passes into the right room
    for _ in range(10):
        env.step(np.array([1.0, 0.0]))
    assert env.state()[0] > 0.5


def test_two_room_expert_reaches_goals_across_rooms():
    env = TwoRoom()
    rng = np.random.default_rng(0)
    reached = 0
    for k in range(20):
        env.reset(k)
        goal = env.sample_free_position(rng, room=1 - int(env.state()[0] > 0.5))
        for _ in range(40):
            env.step(expert_action(env, env.state(), goal))
        reached += env.is_success(goal)
    assert reached == 20


def test_push_t_deterministic_frames():
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    a, env = frames_for("push_t", 1, steps=3, size=32)
    b, _ = frames_for("push_t", 1, steps=3, size=32)
    assert a.shape == (4, 32, 32, 3) and np.array_equal(a, b)
    assert a.std() > 0 and len(env.state()) == 5


def test_push_t_set_state_inverts_state_and_goal_success():
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from lejepa.evaluation import start_goal_pairs

    env = make_env("push_t", 32)
    starts, goals = start_goal_pairs(env, 3, seed=0)
    assert starts.shape == goals.shape == (3, 5)
    for start, goal in zip(starts, goals, strict=True):
        env.set_state(goal)
        assert np.allclose(env.state(), goal, atol=1e-6)  # gym-pusht's reset_to_state alone moves the block
        assert env.is_success(goal) and env.goal_distance(goal) < 1e-6
        env.set_state(start)
        assert not env.is_success(goal) or np.linalg.norm(start[:4] - goal[:4]) < 20


def test_reacher_reach_state_puts_fingertip_on_target():
    from lejepa.envs.reacher import reach_state

    rng = np.random.default_rng(0)
    for _ in range(20):
        target = rng.uniform(-0.2, 0.2, 2)
        state = np.r_[rng.uniform(-np.pi, np.pi, 2), 0.21, 0.0, target]
        q0, q1 = reach_state(state)[:2]
        tip = 0.1 * np.array([np.cos(q0), np.sin(q0)]) + 0.11 * np.array([np.cos(q0 + q1), np.sin(q0 + q1)])
        assert np.linalg.norm(tip - target) < 1e-9 or np.linalg.norm(target) > 0.21


REACHER_SCRIPT = """
import hashlib, json, sys
import numpy as np
sys.path.insert(0, {tests!r})
from test_envs import frames_for
a, env = frames_for("reacher", 2, steps=3, size=32)
b, _ = frames_for("reacher", 2, steps=3, size=32)
print(json.dumps({{"shape": list(a.shape), "same": bool(np.array_equal(a, b)),
                  "moved": bool(not np.array_equal(a[0], a[-1])), "state": len(env.state())}}))
"""


def test_reacher_deterministic_frames():
    # In a subprocess: MuJoCo's EGL context in the pytest process made a later torch test segfault here.
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "MUJOCO_GL": "egl"}
    proc = subprocess.run([sys.executable, "-c", REACHER_SCRIPT.format(tests=str(Path(__file__).parent))],
                          capture_output=True, text=True, env=env, timeout=120)
    if proc.returncode != 0 and "egl" in proc.stderr.lower():
        pytest.skip(f"MuJoCo offscreen rendering unavailable: {proc.stderr[-300:]}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"shape": [4, 32, 32, 3], "same": True, "moved": True, "state": 6}


def test_dataset_roundtrip_manifest_and_errors(tmp_path):
    manifest = collect_dataset("two_room", "mixed", episodes=4, steps=5, seed=7, image_size=16, out_dir=tmp_path)
    data = load_dataset(tmp_path)
    assert data["frames"].shape == (4, 6, 16, 16, 3)
    assert data["actions"].shape == (4, 5, 2) and data["states"].shape == (4, 6, 2)
    assert manifest["env"] == "two_room" and manifest["policy"] == "mixed" and manifest["seed"] == 7
    again = collect_dataset("two_room", "mixed", episodes=4, steps=5, seed=7, image_size=16,
                            out_dir=tmp_path / "again")
    assert again["sha256"] == manifest["sha256"]  # same seed -> same bytes
    # consecutive states differ by at most one step of the action
    assert np.abs(np.diff(data["states"], axis=1)).max() <= 0.1 + 1e-6
    with pytest.raises(DatasetError, match="missing manifest.json"):
        load_dataset(tmp_path / "nowhere")
    record = json.loads((tmp_path / "manifest.json").read_text())
    record["sha256"] = "0" * 64
    (tmp_path / "manifest.json").write_text(json.dumps(record))
    with pytest.raises(DatasetError, match="sha256"):
        load_dataset(tmp_path)


def test_unknown_env_and_policy():
    with pytest.raises(ValueError, match="env='atari'"):
        make_env("atari")
    with pytest.raises(ValueError, match="policy"):
        collect_dataset("two_room", "greedy", 1, 1, 0, 16, "/tmp/unused")


def test_push_t_dataset_with_noisy_expert(tmp_path):
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    manifest = collect_dataset("push_t", "noisy_expert", episodes=2, steps=3, seed=1, image_size=16,
                               out_dir=tmp_path)
    data = load_dataset(tmp_path)
    assert data["frames"].shape == (2, 4, 16, 16, 3) and data["states"].shape == (2, 4, 5)
    assert manifest["state_names"] == ["agent_x", "agent_y", "block_x", "block_y", "block_angle"]
    assert np.all(np.abs(data["actions"]) <= 1.0)
