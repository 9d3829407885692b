"""D4RL-shaped datasets: arrays, a manifest with sha256, and the windows the models train on.

A dataset is `<dir>/<task>-<kind>.npz` holding D4RL's keys (`observations` (N, S) float32, `actions` (N, A),
`rewards` (N,), `terminals` (N,) bool, `timeouts` (N,) bool, `next_observations` (N, S)) and a manifest
`<task>-<kind>.json` with the env id, behaviour-policy checkpoint (+ its sha256), seed, the npz's sha256 and
episode-return statistics. `load_dataset` verifies the checksum and raises `DatasetError` on a mismatch.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import PaperclubError

D4RL_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")
KINDS = ("random", "medium", "medium-replay", "medium-expert", "expert", "play")


class DatasetError(PaperclubError, RuntimeError):
    """A dataset file is missing, corrupt, or does not match its manifest."""


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def episode_returns(data: dict[str, np.ndarray]) -> np.ndarray:
    """Undiscounted return of each episode (episodes end at a terminal or a timeout)."""
    ends = np.flatnonzero(data["terminals"] | data["timeouts"])
    starts = np.concatenate([[0], ends[:-1] + 1])
    csum = np.concatenate([[0.0], np.cumsum(data["rewards"], dtype=np.float64)])
    return csum[ends + 1] - csum[starts]


def complete_episode_returns(data: dict[str, np.ndarray], max_episode_steps: int) -> np.ndarray:
    """Returns of the episodes that ended on their own (terminal) or at the env's time limit, i.e. all but a
    last episode cut short by the dataset's size (which is marked a timeout before `max_episode_steps`)."""
    returns = episode_returns(data)
    ends = np.flatnonzero(data["terminals"] | data["timeouts"])
    last_length = ends[-1] - (ends[-2] if len(ends) > 1 else -1)
    cut = not data["terminals"][-1] and last_length < max_episode_steps
    return returns[:-1] if cut and len(returns) > 1 else returns


def save_dataset(directory: str | Path, task: str, kind: str, data: dict[str, np.ndarray],
                 manifest: dict[str, Any]) -> Path:
    """Write `<task>-<kind>.npz` + manifest atomically; returns the npz path."""
    missing = [k for k in D4RL_KEYS if k not in data]
    if missing:
        raise DatasetError(f"dataset {task}-{kind} lacks D4RL key(s) {missing}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{task}-{kind}.npz"
    tmp = directory / f".{path.name}.{os.getpid()}.tmp.npz"
    np.savez(tmp, **{k: data[k] for k in D4RL_KEYS})
    os.replace(tmp, path)
    returns = episode_returns(data)
    record = {"task": task, "kind": kind, "file": path.name, "sha256": sha256_file(path),
              "n_transitions": int(len(data["rewards"])), "n_episodes": int(len(returns)),
              "returns": {"mean": float(returns.mean()), "std": float(returns.std()),
                          "min": float(returns.min()), "max": float(returns.max())}, **manifest}
    manifest_path(path).write_text(json.dumps(record, indent=2) + "\n")
    return path


def manifest_path(npz_path: str | Path) -> Path:
    return Path(npz_path).with_suffix(".json")


def load_dataset(path: str | Path, verify: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, manifest) of a dataset file; checks the sha256 recorded in the manifest."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset not found: {path} (generate it with `python -m dmpc.collect`)")
    mpath = manifest_path(path)
    if not mpath.is_file():
        raise DatasetError(f"dataset {path} has no manifest {mpath}")
    manifest = json.loads(mpath.read_text())
    if verify:
        actual = sha256_file(path)
        if actual != manifest["sha256"]:
            raise DatasetError(f"dataset {path} is corrupt or modified: sha256 {actual[:12]}... does not match "
                               f"the manifest's {manifest['sha256'][:12]}...")
    with np.load(path) as npz:
        data = {k: npz[k] for k in D4RL_KEYS}
    return data, manifest


def concat_datasets(*datasets: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([d[k] for d in datasets]) for k in D4RL_KEYS}


def windows(data: dict[str, np.ndarray], history: int, horizon: int, gamma: float) -> dict[str, np.ndarray]:
    """Training windows that stay inside one episode, with value targets that bootstrap at timeouts.

    For each step t with t+F-1 inside its episode (last step e): `hist` s_{t-H+1:t} (W, H, S) (the episode's first
    state repeats before its start), `actions` a_{t:t+F-1} (W, F, A), `future` s_{t+1:t+F} (W, F, S), `rewards`
    r_{t:t+F-1} (W, F), `value` the discounted sum of the rewards from t+F to e (W,), and `episode` (W,) int32, the
    window's episode (a row of `tail_future`).

    The value target of a window is the return after t+F: `value` + `bootstrap` * V(`tail_future`[`episode`]).
    `tail_future` (E, F, S) holds each episode's last planned states s_{e-F+2:e+1} (the `future` of its last window),
    whose value is the return after e. `bootstrap` (W,) is gamma^(e+1-t-F) when the episode ended at a timeout (time
    limit or the dataset's end: the return after e exists but is unobserved) and 0 at a terminal (it is 0), so only
    true terminals end the return (`dmpc.models.value.value_targets`).
    """
    obs, next_obs = data["observations"], data["next_observations"]
    ends = np.flatnonzero(data["terminals"] | data["timeouts"])
    starts = np.concatenate([[0], ends[:-1] + 1])
    rewards = data["rewards"].astype(np.float64)
    togo = np.zeros(len(rewards) + 1)
    hist_idx, fut_idx, val, boot, tails = [], [], [], [], []
    for start, end in zip(starts, ends, strict=True):
        for t in range(end, start - 1, -1):
            togo[t] = rewards[t] + gamma * togo[t + 1] if t < end else rewards[t]
        last = end - horizon + 1
        if last < start:
            continue
        ts = np.arange(start, last + 1)
        offsets = np.arange(-history + 1, 1)
        hist_idx.append(np.maximum(ts[:, None] + offsets[None, :], start))
        fut_idx.append(ts[:, None] + np.arange(horizon)[None, :])
        after = ts + horizon
        val.append(np.where(after <= end, togo[np.minimum(after, end)], 0.0))
        timeout = bool(data["timeouts"][end]) and not bool(data["terminals"][end])
        boot.append(gamma ** (end + 1 - after) if timeout else np.zeros(len(ts)))
        tails.append(np.full(len(ts), len(tails), np.int32))
    if not hist_idx:
        raise DatasetError(f"no episode is at least horizon={horizon} steps long")
    hist_idx, fut_idx = np.concatenate(hist_idx), np.concatenate(fut_idx)
    episode = np.concatenate(tails)
    last_rows = np.flatnonzero(np.r_[episode[1:] != episode[:-1], True])
    return {"hist": obs[hist_idx].astype(np.float32), "actions": data["actions"][fut_idx].astype(np.float32),
            "future": next_obs[fut_idx].astype(np.float32),
            "rewards": data["rewards"][fut_idx].astype(np.float32),
            "value": np.concatenate(val).astype(np.float32), "bootstrap": np.concatenate(boot).astype(np.float32),
            "episode": episode, "tail_future": next_obs[fut_idx[last_rows]].astype(np.float32)}


def holdout_episodes(n_episodes: int, fraction: float, seed: int) -> np.ndarray:
    """A held-out set of whole episodes (windows overlap inside an episode, so a split by window would leak):
    round(fraction * E) of them, at least one, drawn with `seed`. Returns held_out (E,) bool (all False when
    fraction is 0)."""
    if fraction <= 0:
        return np.zeros(n_episodes, bool)
    if n_episodes < 2:
        raise DatasetError(f"val_fraction={fraction} needs at least 2 episodes with a full window; the dataset has "
                           f"{n_episodes} (set val_fraction=0 or use a longer dataset)")
    count = min(n_episodes - 1, max(1, round(fraction * n_episodes)))
    held = np.zeros(n_episodes, bool)
    held[np.random.default_rng(seed).choice(n_episodes, count, replace=False)] = True
    return held
