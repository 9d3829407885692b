"""Offline episode datasets from behaviour policies, stored as one .npz plus a manifest.json.

    manifest = collect_dataset("two_room", "mixed", episodes=200, steps=32, seed=0, image_size=32, out_dir=path)
    data = load_dataset(path)    # frames (E, T+1, S, S, 3) uint8, actions (E, T, A) float32, states (E, T+1, K)

Policies: `random` (temporally correlated random actions), `noisy_expert` (the env's scripted expert plus noise;
Two-Room's expert heads for a random goal, re-drawn when reached), `mixed` (alternating episodes of both).
The manifest records env, policy, seed, sizes and the sha256 of the .npz; `load_dataset` checks it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np

from common.errors import PaperclubError
from lejepa.envs import make_env

POLICIES = ("random", "noisy_expert", "mixed")


class DatasetError(PaperclubError, FileNotFoundError):
    """A dataset folder, its manifest or its data file is missing or does not match."""


def collect_dataset(env_name: str, policy: str, episodes: int, steps: int, seed: int, image_size: int,
                    out_dir: str | Path, progress=None, noise: float = 0.3) -> dict:
    """Roll out `episodes` episodes of `steps` actions and write episodes.npz + manifest.json to `out_dir`."""
    if policy not in POLICIES:
        raise ValueError(f"policy={policy!r}; expected one of {POLICIES}")
    env = make_env(env_name, image_size)
    rng = np.random.default_rng(seed)
    frames = np.empty((episodes, steps + 1, image_size, image_size, 3), dtype=np.uint8)
    actions = np.empty((episodes, steps, env.action_dim), dtype=np.float32)
    states = np.empty((episodes, steps + 1, len(env.state_names)), dtype=np.float32)
    iterator = range(episodes) if progress is None else progress(range(episodes), total=episodes, desc="collect")
    for e in iterator:
        episode_policy = policy if policy != "mixed" else ("random", "noisy_expert")[e % 2]
        frames[e], actions[e], states[e] = rollout(env, episode_policy, steps, int(rng.integers(2**31)), noise)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_path = out_dir / "episodes.npz"
    tmp = out_dir / "episodes.tmp.npz"
    np.savez(tmp, frames=frames, actions=actions, states=states)
    tmp.replace(data_path)
    manifest = {"env": env_name, "policy": policy, "seed": seed, "episodes": episodes, "steps": steps,
                "image_size": image_size, "action_dim": env.action_dim, "state_names": list(env.state_names),
                "noise": noise, "file": data_path.name, "sha256": sha256(data_path),
                "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def rollout(env, policy: str, steps: int, seed: int, noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One episode: frames (T+1, S, S, 3), actions (T, A), states (T+1, K)."""
    rng = np.random.default_rng(seed)
    frame = env.reset(seed)
    frames, acts, states = [frame], [], [env.state()]
    action = np.zeros(env.action_dim)
    goal = _expert_goal(env, rng)
    for _ in range(steps):
        if policy == "random":
            action = np.clip(0.7 * action + 0.7 * rng.normal(size=env.action_dim), -1, 1)
        else:
            if env.name == "two_room" and env.is_success(goal):
                goal = _expert_goal(env, rng)
            action = np.clip(_expert(env, rng, goal) + noise * rng.normal(size=env.action_dim), -1, 1)
        frame, _ = env.step(action)
        frames.append(frame)
        acts.append(action)
        states.append(env.state())
    return np.stack(frames), np.stack(acts).astype(np.float32), np.stack(states).astype(np.float32)


def load_dataset(directory: str | Path, verify: bool = True) -> dict:
    """{'frames', 'actions', 'states', 'manifest'} of a dataset folder written by `collect_dataset`."""
    directory = Path(directory)
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise DatasetError(f"no dataset at {directory} (missing manifest.json); create it with "
                           f"`python -m lejepa.collect` (or set data.dir to an existing dataset)")
    manifest = json.loads(manifest_path.read_text())
    data_path = directory / manifest.get("file", "episodes.npz")
    if not data_path.is_file():
        raise DatasetError(f"{data_path} named by {manifest_path} does not exist")
    if verify and sha256(data_path) != manifest["sha256"]:
        raise DatasetError(f"{data_path} does not match the sha256 in {manifest_path}; re-run lejepa.collect")
    with np.load(data_path) as npz:
        data = {key: npz[key] for key in ("frames", "actions", "states")}
    data["manifest"] = manifest
    return data


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _expert_goal(env, rng: np.random.Generator) -> np.ndarray | None:
    return env.sample_free_position(rng) if env.name == "two_room" else None


def _expert(env, rng: np.random.Generator, goal: np.ndarray | None) -> np.ndarray:
    if env.name == "two_room":
        from lejepa.envs.two_room import expert_action

        return expert_action(env, env.state(), goal)
    if env.name == "push_t":
        from lejepa.envs.push_t import expert_action

        return expert_action(env, rng)
    from lejepa.envs.reacher import expert_action

    return expert_action(env, rng)
