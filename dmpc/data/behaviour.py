"""Behaviour policies and the D4RL-style datasets they generate.

`train_behaviour_policy` runs our SAC on a task, evaluating and snapshotting the actor every `eval_every` steps.
"expert" is the best snapshot; "medium" is the snapshot whose evaluation return is closest to one third of the
expert's (D4RL's medium policies score about a third of expert). The replay buffer up to the medium snapshot is
the `medium-replay` dataset. `rollout` collects transitions with any policy function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np

from common.checkpoint import load_checkpoint, save_checkpoint
from dmpc.agents.sac import SACAgent, SACConfig, policy_action
from dmpc.envs import make_env

PolicyFn = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclass
class BehaviourRun:
    snapshots: list[dict[str, Any]] = field(default_factory=list)  # {"step", "eval_return", "path"}
    replay: dict[str, np.ndarray] = field(default_factory=dict)
    expert: dict[str, Any] | None = None
    medium: dict[str, Any] | None = None


def to_numpy_tree(tree):
    return jax.tree_util.tree_map(np.asarray, tree)


def train_behaviour_policy(task: str, steps: int, seed: int, out_dir: Path, sac: SACConfig,
                           start_steps: int = 1000, update_every: int = 50, eval_every: int = 2000,
                           eval_episodes: int = 2,
                           max_episode_steps: int | None = None, progress=None, log=None) -> BehaviourRun:
    """Train SAC for `steps` env steps; save actor snapshots under `out_dir`; pick expert and medium."""
    env = make_env(task, max_episode_steps=max_episode_steps)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    agent = SACAgent(obs_dim, act_dim, sac)
    key = jax.random.key(seed)
    key, init_key = jax.random.split(key)
    state = agent.init(init_key)
    rng = np.random.default_rng(seed)
    buf = {"observations": np.zeros((steps, obs_dim), np.float32), "actions": np.zeros((steps, act_dim), np.float32),
           "rewards": np.zeros(steps, np.float32), "terminals": np.zeros(steps, bool),
           "timeouts": np.zeros(steps, bool), "next_observations": np.zeros((steps, obs_dim), np.float32)}
    obs, _ = env.reset(seed=seed)
    run = BehaviourRun()
    iterator = progress(range(steps), total=steps, desc=f"SAC {task}") if progress else range(steps)
    for step in iterator:
        if step < start_steps:
            action = rng.uniform(-1, 1, act_dim).astype(np.float32)
        else:
            key, k = jax.random.split(key)
            action = agent.act(state["actor"], obs, k)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        for name, value in (("observations", obs), ("actions", action), ("rewards", reward),
                            ("terminals", terminated), ("timeouts", truncated), ("next_observations", next_obs)):
            buf[name][step] = value
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
        if step >= start_steps and (step + 1) % update_every == 0:
            idx = rng.integers(0, step + 1, (update_every, sac.batch_size))
            batches = {k: v[idx] for k, v in buf.items() if k != "timeouts"}
            batches["terminals"] = batches["terminals"].astype(np.float32)
            key, k = jax.random.split(key)
            state, metrics = agent.update_many(state, batches, k)
        if (step + 1) % eval_every == 0:
            actor = to_numpy_tree(state["actor"])
            ret = evaluate_policy(task, sac_policy_fn(actor, tuple(sac.hidden), act_dim, deterministic=True),
                                  eval_episodes, seed + 10_000 + step, max_episode_steps)
            path = save_checkpoint(out_dir / "policies", step + 1,
                                   {"actor": actor, "hidden": list(sac.hidden), "act_dim": act_dim,
                                    "obs_dim": obs_dim, "task": task, "eval_return": ret}, keep_last=0)
            run.snapshots.append({"step": step + 1, "eval_return": ret, "path": str(path)})
            if log:
                log({"sac/eval_return": ret}, step + 1)
    buf["timeouts"][-1] = buf["timeouts"][-1] or not buf["terminals"][-1]
    run.replay = buf
    run.expert = max(run.snapshots, key=lambda s: s["eval_return"])
    target = run.expert["eval_return"] / 3.0
    candidates = [s for s in run.snapshots if s["step"] <= run.expert["step"]]
    run.medium = min(candidates, key=lambda s: abs(s["eval_return"] - target))
    return run


def load_policy(path: str | Path, deterministic: bool = False) -> tuple[PolicyFn, dict[str, Any]]:
    """A policy function obs -> action from a behaviour-policy checkpoint, and the checkpoint's record."""
    _, record = load_checkpoint(path, framework="numpy")
    fn = sac_policy_fn(record["actor"], tuple(record["hidden"]), int(record["act_dim"]), deterministic)
    return fn, record


def sac_policy_fn(actor, hidden: tuple[int, ...], act_dim: int, deterministic: bool) -> PolicyFn:
    def act(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        key = jax.random.key(int(rng.integers(2**31)))
        return np.asarray(policy_action(actor, obs.astype(np.float32), key, hidden, act_dim, deterministic))

    return act


def uniform_policy_fn(act_dim: int) -> PolicyFn:
    return lambda obs, rng: rng.uniform(-1, 1, act_dim).astype(np.float32)


def noisy_policy_fn(policy: PolicyFn, noise_std: float) -> PolicyFn:
    """Behaviour policy + Gaussian action noise, clipped to [-1, 1] (the 'play data' policy)."""
    def act(obs, rng):
        a = policy(obs, rng)
        return np.clip(a + noise_std * rng.standard_normal(a.shape), -1, 1).astype(np.float32)

    return act


def rollout(task: str, policy: PolicyFn, n_transitions: int, seed: int,
            max_episode_steps: int | None = None) -> dict[str, np.ndarray]:
    """Collect exactly `n_transitions` steps with `policy` (the last, cut episode ends in a timeout)."""
    env = make_env(task, max_episode_steps=max_episode_steps)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    out: dict[str, list] = {k: [] for k in ("observations", "actions", "rewards", "terminals", "timeouts",
                                            "next_observations")}
    for _ in range(n_transitions):
        action = policy(obs, rng)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        for name, value in (("observations", obs), ("actions", action), ("rewards", reward),
                            ("terminals", terminated), ("timeouts", truncated), ("next_observations", next_obs)):
            out[name].append(value)
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
    data = {k: np.asarray(v) for k, v in out.items()}
    for k in ("observations", "actions", "rewards", "next_observations"):
        data[k] = data[k].astype(np.float32)
    data["terminals"] = data["terminals"].astype(bool)
    data["timeouts"] = data["timeouts"].astype(bool)
    data["timeouts"][-1] = data["timeouts"][-1] or not data["terminals"][-1]
    return data


def evaluate_policy(task: str, policy: PolicyFn, episodes: int, seed: int,
                    max_episode_steps: int | None = None) -> float:
    """Mean undiscounted return of `policy` over `episodes` episodes."""
    env = make_env(task, max_episode_steps=max_episode_steps)
    rng = np.random.default_rng(seed)
    returns = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs, rng))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))
