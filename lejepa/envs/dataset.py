"""Offline episode datasets from behaviour policies: one .npy per array plus a manifest.json.

    manifest = collect_dataset("two_room", "mixed", episodes=200, steps=32, seed=0, image_size=32, out_dir=path)
    data = load_dataset(path)    # frames (E, T+1, S, S, 3) uint8, actions (E, T, A) float32, states (E, T+1, K)

Rows are *env* steps, as in the official datasets; the world model's frame skip (5 env steps and their 5 actions per
model step) is applied when training windows are drawn (lejepa/train.py), as stable-worldmodel's loader applies its
`frameskip` (le-wm config/train/data/*.yaml).

Episode e is rolled out from seed `episode_seeds[e]` (drawn from `seed`), so the bytes do not depend on how many
worker processes (`workers`, spawned: EGL and pygame state never cross a fork) shared the work. `mixed` alternates
`noisy_expert` and `correlated_random` episodes. The manifest records env, policy, seed, sizes, per-file sha256 and
the policy's statistics (Push-T: coverage of block poses); `load_dataset` checks the hashes. Arrays are memory-mapped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import multiprocessing as mp
from pathlib import Path

import numpy as np

from common.errors import PaperclubError
from lejepa.envs import POLICIES, env_class, make_env, make_policy

ARRAYS = ("frames", "actions", "states")


class DatasetError(PaperclubError, FileNotFoundError):
    """A dataset folder, its manifest or its data file is missing or does not match."""


def collect_dataset(env_name: str, policy: str, episodes: int, steps: int, seed: int, image_size: int,
                    out_dir: str | Path, progress=None, noise: float | None = None, workers: int = 1) -> dict:
    """Roll out `episodes` episodes of `steps` env steps; write frames/actions/states .npy + manifest.json."""
    if policy not in POLICIES:
        raise ValueError(f"policy={policy!r}; expected one of {POLICIES}")
    cls = env_class(env_name)
    action_dim, state_names, probe_names = cls.action_dim, cls.state_names, cls.probe_names
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ARRAYS:
        (out_dir / f"{name}.npy").unlink(missing_ok=True)
    shapes = {"frames": ((episodes, steps + 1, image_size, image_size, 3), np.uint8),
              "actions": ((episodes, steps, action_dim), np.float32),
              "states": ((episodes, steps + 1, len(state_names)), np.float64)}
    for name, (shape, dtype) in shapes.items():
        np.lib.format.open_memmap(out_dir / f"{name}.tmp.npy", mode="w+", dtype=dtype, shape=shape).flush()
    seeds = np.random.default_rng(seed).integers(2**31, size=episodes)
    policies = [policy if policy != "mixed" else ("noisy_expert", "correlated_random")[e % 2] for e in range(episodes)]
    chunk = -(-episodes // max(4 * workers, 1))
    jobs = [(env_name, image_size, str(out_dir), e0, min(e0 + chunk, episodes), steps, seeds.tolist(), policies,
             noise) for e0 in range(0, episodes, chunk)]
    stats: list[dict] = []
    if workers <= 1:
        env = make_env(env_name, image_size)
        iterator = jobs if progress is None else progress(jobs, total=len(jobs), desc="collect")
        for job in iterator:
            stats += _collect_block(job, env)
    else:
        with mp.get_context("spawn").Pool(workers) as pool:
            results = pool.imap(_collect_block, jobs)
            iterator = results if progress is None else progress(results, total=len(jobs), desc="collect")
            for block in iterator:
                stats += block
    files = {}
    for name in ARRAYS:
        (out_dir / f"{name}.tmp.npy").replace(out_dir / f"{name}.npy")
        files[name] = {"file": f"{name}.npy", "sha256": sha256(out_dir / f"{name}.npy")}
    manifest = {"env": env_name, "policy": policy, "seed": seed, "episodes": episodes, "steps": steps,
                "image_size": image_size, "action_dim": action_dim, "state_names": list(state_names),
                "probe_names": list(probe_names), "noise": noise, "files": files,
                "policy_stats": summarize_stats(env_name, stats, out_dir),
                "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def rollout(env, policy: str, steps: int, seed: int, noise: float | None = None) -> tuple[np.ndarray, ...]:
    """One episode: frames (T+1, S, S, 3), actions (T, A), states (T+1, K), and the policy's stats dict."""
    rng = np.random.default_rng(seed)
    frames, states = [env.reset(seed)], [env.state()]
    behaviour = make_policy(env, policy, rng, noise)
    actions = []
    for _ in range(steps):
        action = np.asarray(behaviour.action(), dtype=np.float32)
        frames.append(env.step(action))
        actions.append(action)
        states.append(env.state())
    stats = {"policy": policy, "targets_reached": getattr(behaviour, "reached", None)}
    return np.stack(frames), np.stack(actions), np.stack(states), stats


def load_dataset(directory: str | Path, verify: bool = True) -> dict:
    """{'frames', 'actions', 'states' (memory-mapped), 'manifest'} of a folder written by `collect_dataset`."""
    directory = Path(directory)
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise DatasetError(f"no dataset at {directory} (missing manifest.json); create it with "
                           f"`python -m lejepa.collect` (or set data.dir to an existing dataset)")
    manifest = json.loads(manifest_path.read_text())
    if "files" not in manifest:
        raise DatasetError(f"{manifest_path} is from an older dataset format (one episodes.npz); re-run "
                           f"`python -m lejepa.collect`")
    data = {}
    for name in ARRAYS:
        entry = manifest["files"][name]
        path = directory / entry["file"]
        if not path.is_file():
            raise DatasetError(f"{path} named by {manifest_path} does not exist")
        if verify and sha256(path) != entry["sha256"]:
            raise DatasetError(f"{path} does not match the sha256 in {manifest_path}; re-run lejepa.collect")
        data[name] = np.load(path, mmap_mode="r")
    data["manifest"] = manifest
    return data


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def summarize_stats(env_name: str, stats: list[dict], out_dir: Path) -> dict:
    """Policy statistics for the manifest; Push-T adds the coverage of block poses over the whole dataset."""
    out: dict = {"episodes_by_policy": {p: sum(s["policy"] == p for s in stats) for p in POLICIES[:3]}}
    reached = [s["targets_reached"] for s in stats if s["targets_reached"] is not None]
    if reached:
        out["expert_targets_reached_per_episode"] = float(np.mean(reached))
    if env_name == "push_t":
        from lejepa.envs.push_t import block_pose_coverage

        out.update(block_pose_coverage(np.load(out_dir / "states.npy", mmap_mode="r")))
    return out


def _collect_block(job: tuple, env=None) -> list[dict]:
    """Roll out episodes [e0, e1) into the temporary memmaps of `out_dir` (a worker's share)."""
    env_name, image_size, out_dir, e0, e1, steps, seeds, policies, noise = job
    env = env if env is not None else make_env(env_name, image_size)
    out = Path(out_dir)
    arrays = {name: np.load(out / f"{name}.tmp.npy", mmap_mode="r+") for name in ARRAYS}
    stats = []
    for e in range(e0, e1):
        frames, actions, states, info = rollout(env, policies[e], steps, int(seeds[e]), noise)
        arrays["frames"][e], arrays["actions"][e], arrays["states"][e] = frames, actions, states
        stats.append(info)
    for array in arrays.values():
        array.flush()
    return stats
