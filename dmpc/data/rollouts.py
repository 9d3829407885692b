"""Deterministic rollouts by worker processes: datasets, policy evaluation, replay-buffer regeneration.

Every episode is a pure function of (task, policy, seed, stream, episode index): its env reset seed and its
policy RNG come from `np.random.SeedSequence([seed, stream, index])`. A dataset of N transitions is the
concatenation, in index order, of episodes 0, 1, ... up to the first prefix with >= N steps, cut to N (the cut
episode's last step is marked a timeout). Workers compute fixed blocks of episode indices in any order, so the
bytes do not depend on the number of workers or on scheduling.

`replay_episodes` re-simulates recorded training episodes from their reset seeds and uint8 action codes
(data/policy.py) and checks that each one ends exactly where it was recorded to end, so a replay buffer is
regenerated bit-exactly or not at all.

No JAX in this module: it is what `spawn`ed worker processes import.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from common.errors import PaperclubError
from dmpc.data.policy import (
    PolicyFn,
    actor_policy_fn,
    decode_actions,
    noisy_policy_fn,
    uniform_policy_fn,
)
from dmpc.envs import make_env

TRANSITION_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")
# seed streams: the same seed gives unrelated episodes for different purposes
STREAMS = {"random": 1, "medium": 2, "expert": 3, "play": 7, "eval": 10, "sac": 20}


class ReplayError(PaperclubError, RuntimeError):
    """Re-simulating recorded actions did not reproduce the recorded episode boundaries or rewards."""


@dataclass(frozen=True)
class PolicySpec:
    """A picklable description of a behaviour policy: `uniform`, or an `actor` (float16 layers, data/policy.py),
    optionally deterministic (tanh of the mean) and with extra Gaussian action noise (`noise_std`, play data)."""

    kind: str
    act_dim: int
    layers: tuple = field(default=(), repr=False)
    deterministic: bool = False
    noise_std: float = 0.0

    def policy(self) -> PolicyFn:
        if self.kind == "uniform":
            policy = uniform_policy_fn(self.act_dim)
        elif self.kind == "actor":
            policy = actor_policy_fn(list(self.layers), self.act_dim, self.deterministic)
        else:
            raise ValueError(f"unknown policy kind {self.kind!r}; expected 'uniform' or 'actor'")
        return noisy_policy_fn(policy, self.noise_std) if self.noise_std > 0 else policy


def stream_id(name: str, task: str = "") -> int:
    """The seed stream of `name` (STREAMS), made task-specific with a CRC of the task name when given."""
    return STREAMS[name] * 1_000_003 + (zlib.crc32(task.encode()) if task else 0)


def episode_seed(seed: int, stream: int, index: int) -> tuple[int, np.random.Generator]:
    """(env reset seed, policy RNG) of episode `index` of `stream`."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, stream, index]))
    return int(rng.integers(2**31 - 1)), rng


def run_episode(env, policy: PolicyFn, env_seed: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One episode (until terminal or the env's time limit) as D4RL-keyed arrays; the policy sees float64 obs."""
    obs, _ = env.reset(seed=env_seed)
    out: dict[str, list] = {k: [] for k in TRANSITION_KEYS}
    done = False
    while not done:
        action = policy(obs, rng)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        for name, value in zip(TRANSITION_KEYS, (obs, action, reward, terminated, truncated, next_obs),
                               strict=True):
            out[name].append(value)
        obs, done = next_obs, terminated or truncated
    return _as_arrays(out)


def collect_transitions(task: str, spec: PolicySpec, n_transitions: int, seed: int, stream: int,
                        max_episode_steps: int | None = None, pool: Executor | None = None) -> dict[str, np.ndarray]:
    """Exactly `n_transitions` steps of `spec` in `task`, episode by episode (module docstring); `pool` from
    `worker_pool` (None: this process)."""
    pool = pool or _InProcess()
    episodes: list[dict[str, np.ndarray]] = []
    total, next_index, wave = 0, 0, 2 * _workers(pool)
    while total < n_transitions:
        # the first wave runs one episode per job (lengths range from ~20 steps for a falling random hopper to
        # the 1000-step limit for an expert, so no fixed guess fits); later waves are sized to the episodes
        # still needed at the mean length so far
        per_job = 1 if not episodes else int(np.clip(
            np.ceil(1.1 * (n_transitions - total) * len(episodes) / total / wave), 1, 256))
        starts = [next_index + i * per_job for i in range(wave)]
        next_index += wave * per_job
        job = partial(_episodes_job, task, spec, seed, stream, per_job, max_episode_steps)
        for batch in pool.map(job, starts):
            for episode in batch:
                if total < n_transitions:
                    episodes.append(episode)
                    total += len(episode["rewards"])
    data = {k: np.concatenate([e[k] for e in episodes])[:n_transitions] for k in TRANSITION_KEYS}
    data["timeouts"][-1] = data["timeouts"][-1] or not data["terminals"][-1]
    return data


def evaluate_episodes(task: str, spec: PolicySpec, episodes: int, seed: int,
                      max_episode_steps: int | None = None, first: int = 0) -> tuple[list[float], list[int]]:
    """(undiscounted returns, lengths) of evaluation episodes first, ..., first + episodes - 1 (stream 'eval')."""
    env = make_env(task, max_episode_steps=max_episode_steps)
    policy = spec.policy()
    returns, lengths = [], []
    for index in range(first, first + episodes):
        env_seed, rng = episode_seed(seed, stream_id("eval"), index)
        obs, _ = env.reset(seed=env_seed)
        total, steps, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs, rng))
            total, steps, done = total + float(reward), steps + 1, terminated or truncated
        returns.append(total)
        lengths.append(steps)
    return returns, lengths


def replay_episodes(task: str, codes: np.ndarray, episode_starts: np.ndarray, seed: int, stream: int,
                    max_episode_steps: int | None = None, pool: Executor | None = None) -> dict[str, np.ndarray]:
    """Re-simulate recorded episodes: episode e starts at `episode_starts[e]` of `codes` (N, A) uint8 and runs to
    the next start, the last one to N (it may be unfinished: a run's current episode, or a cut). Raises
    ReplayError when an episode ends anywhere but at its recorded end. Runs in `pool` (None: this process)."""
    pool = pool or _InProcess()
    ends = [*episode_starts[1:].tolist(), len(codes)]
    jobs = [(e, int(a), int(b), b == len(codes)) for e, (a, b) in enumerate(zip(episode_starts.tolist(), ends,
                                                                                 strict=True)) if b > a]
    if not jobs:
        raise ReplayError(f"no recorded {task} actions to replay")
    per_group = max(1000, len(codes) // (4 * _workers(pool)))  # steps per job
    groups, current, size = [], [], 0
    for e, a, b, may_be_open in jobs:
        current.append((e, codes[a:b], may_be_open))
        size += b - a
        if size >= per_group:
            groups.append(current)
            current, size = [], 0
    groups += [current] if current else []
    parts = [p for part in pool.map(partial(_replay_job, task, seed, stream, max_episode_steps), groups)
             for p in part]
    return {k: np.concatenate([p[k] for p in parts]) for k in TRANSITION_KEYS}


@contextlib.contextmanager
def worker_pool(n_workers: int) -> Iterator[Executor]:
    """`n_workers` worker processes (`process_context`), or this process for 0."""
    if n_workers <= 0:
        yield _InProcess()
        return
    with ProcessPoolExecutor(n_workers, mp_context=process_context()) as pool:
        yield pool


def process_context():
    """Worker processes are forked from a clean forkserver that has imported the env modules once (never from
    the parent, which may hold JAX/CUDA state), so starting one costs milliseconds, not an interpreter start."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["dmpc.data.rollouts", "dmpc.data.acting"])
    return ctx


def _workers(pool: Executor) -> int:
    return getattr(pool, "_max_workers", 1)


class _InProcess(Executor):
    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future

    def map(self, fn, *iterables, timeout=None, chunksize=1):  # noqa: ARG002 - Executor's signature
        return [fn(*args) for args in zip(*iterables, strict=True)]


def _episodes_job(task: str, spec: PolicySpec, seed: int, stream: int, count: int, max_episode_steps: int | None,
                  start: int) -> list[dict[str, np.ndarray]]:
    env = make_env(task, max_episode_steps=max_episode_steps)
    policy = spec.policy()
    return [run_episode(env, policy, *episode_seed(seed, stream, index)) for index in range(start, start + count)]


def _replay_job(task: str, seed: int, stream: int, max_episode_steps: int | None,
                jobs: Sequence[tuple[int, np.ndarray, bool]]) -> list[dict[str, np.ndarray]]:
    env = make_env(task, max_episode_steps=max_episode_steps)
    out = []
    for index, codes, may_be_open in jobs:
        env_seed, _ = episode_seed(seed, stream, index)
        obs, _ = env.reset(seed=env_seed)
        record: dict[str, list] = {k: [] for k in TRANSITION_KEYS}
        actions = decode_actions(codes)
        for step, action in enumerate(actions):
            next_obs, reward, terminated, truncated, _ = env.step(action)
            for name, value in zip(TRANSITION_KEYS, (obs, action, reward, terminated, truncated, next_obs),
                                   strict=True):
                record[name].append(value)
            obs = next_obs
            last = step == len(actions) - 1
            if (terminated or truncated) != last and (not last or not may_be_open):
                raise ReplayError(f"{task} episode {index}, re-simulated from its {len(actions)} recorded actions, "
                                  f"{'ended' if not last else 'did not end'} at step {step + 1}: the env is not "
                                  "deterministic here (another mujoco/gymnasium build?) or the codes are corrupt")
        out.append(_as_arrays(record))
    return out


def _as_arrays(out: dict[str, list]) -> dict[str, np.ndarray]:
    data = {k: np.asarray(out[k], np.float32) for k in ("observations", "actions", "rewards", "next_observations")}
    data["terminals"] = np.asarray(out["terminals"], bool)
    data["timeouts"] = np.asarray(out["timeouts"], bool)
    return {k: data[k] for k in TRANSITION_KEYS}
