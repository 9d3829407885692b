"""Behaviour policies: resumable SAC training of a population of tasks, its snapshot ladder, and the export of
the medium/expert policies that generate the datasets.

One run trains one SAC member per task (agents/sac.py: all members in one jit-compiled, vmapped update) for
`sac_steps` env steps each, in blocks of K steps:

    block j:  the device runs K * utd updates of every member on the replay buffer's steps < jK    (async)
              meanwhile each member's env (data/acting.py, own process) steps K times with the actor of block j-1
              the K new transitions go into the device-resident replay buffer at [jK, (j + 1) K)

Every `snapshot_every` steps each member's actor is rounded to float16 (the snapshot) and evaluated over
`eval_episodes` full episodes by worker processes; data/ladder.py keeps the rungs and picks expert and medium.

Resume: `<run_dir>/step_<t>.safetensors` (common.checkpoint, written every `save_every_s` and at the end) holds
everything that is not a function of the seed: the networks, target networks, Adam states and temperatures
(float32), and per member the uint8 codes of every action executed so far (t x |A| bytes), the episode start
steps, the ladder and the kept float16 actors. The replay buffer is NOT saved: it is re-simulated from the codes
(data/rollouts.py `replay_episodes`, in parallel, checked against the saved reward sum), the envs are restored by
re-stepping the open episode, and every random number is drawn from the seed and the block index (JAX keys
`fold_in(key(seed), j)`, NumPy `default_rng([seed, stream, j])`). So a run killed anywhere and resumed
reproduces the uninterrupted run (on the same machine type: see agents/sac.py for GPU determinism).

Size at 1M steps (256x256 networks): ~3.2 MB of float32 state per member + 1 MB per action dimension + <= 25
float16 actors of ~0.15 MB: ~30 MB for hopper + walker2d + halfcheetah.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import Executor, Future
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from common.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from common.config import ConfigError
from dmpc.agents.sac import SACConfig, population
from dmpc.data.acting import ActingEnvs, Block
from dmpc.data.dataset import sha256_file
from dmpc.data.ladder import kept_steps, pick_levels, rule, rung
from dmpc.data.policy import save_actor, to_float16
from dmpc.data.rollouts import (
    PolicySpec,
    ReplayError,
    evaluate_episodes,
    replay_episodes,
    stream_id,
    worker_pool,
)
from dmpc.envs import TASK_ENV_IDS, make_env

REPLAY_FILE = "replay_actions.npz"
console = logging.getLogger("paperclub")


@dataclass(frozen=True)
class LoopConfig:
    """The schedule of a run (all step counts are env steps per member)."""

    sac_steps: int
    start_steps: int  # uniform random actions, no updates, before this step
    block: int  # K: env steps per member between two update dispatches
    utd: int  # updates per env step
    snapshot_every: int
    eval_episodes: int
    ladder_bin: float  # normalized points per bin of kept medium candidates (data/ladder.py)
    max_episode_steps: int
    env_workers: bool  # one process per member env (else this process)
    eval_workers: int  # processes for evaluation and replay regeneration (0: this process)
    save_every_s: float

    # values that do not change the result: a run may resume with others
    RESULT_NEUTRAL = ("env_workers", "eval_workers", "save_every_s")


@dataclass
class RunStatus:
    step: int
    done: bool
    ladders: dict[str, list[dict]]
    wall_s: float = 0.0
    updates_per_s: float = 0.0
    env_steps_per_s: float = 0.0


def train_behaviour_policies(tasks: list[str], seed: int, run_dir: Path, loop: LoopConfig, sac: SACConfig,
                             time_budget_s: float = 0.0, log=None) -> RunStatus:
    """Train (or continue training) one SAC member per task until `loop.sac_steps` or `time_budget_s` seconds
    (0: no limit); returns where the run stands. `log(metrics, step)` receives eval returns and losses."""
    start = time.perf_counter()
    run = _Run(tasks, seed, run_dir, loop, sac)
    with worker_pool(loop.eval_workers) as pool:
        run.restore(pool)
        if run.step >= loop.sac_steps:
            return run.status(start)
        with ActingEnvs([(t, seed, stream_id("sac", t)) for t in tasks], loop.max_episode_steps,
                        parallel=loop.env_workers) as envs:
            if run.step > 0:
                envs.restore(run.open_episodes())
            run.train(envs, pool, start, time_budget_s, log)
    return run.status(start)


def export_levels(run_dir: Path, task: str, target: Path) -> dict[str, Any]:
    """Write a finished run's `task` policies to `target`: the medium and expert actors (float16 safetensors),
    `replay_actions.npz` (codes + episode starts up to the medium step: the medium-replay dataset's source) and
    `levels.json` (ladder, rule, levels, sha256 of each file). Returns the levels.json record."""
    path = latest_checkpoint(run_dir)
    if path is None:
        raise ConfigError(f"no SAC run in {run_dir}; train first (python -m dmpc.collect mode=train)")
    _, state = load_checkpoint(path, framework="numpy")
    meta = state["meta"]
    if meta["step"] < meta["loop"]["sac_steps"]:
        raise ConfigError(f"the SAC run in {run_dir} is at step {meta['step']} of {meta['loop']['sac_steps']}; "
                          "continue it (same command) before exporting its policies")
    member = state["members"][task]
    ladder = meta["ladders"][task]
    levels = pick_levels(task, ladder, meta["loop"]["ladder_bin"])
    target.mkdir(parents=True, exist_ok=True)
    for old in list_checkpoints(target):
        old.unlink()
    env = make_env(task)
    dims = {"obs_dim": int(env.observation_space.shape[0]), "act_dim": int(env.action_space.shape[0])}
    record: dict[str, Any] = {"task": task, "env": TASK_ENV_IDS[task], "seed": meta["seed"],
                              "rule": rule(meta["loop"]["ladder_bin"]),
                              "sac": meta["sac"], "loop": meta["loop"], "run_checkpoint": path.name}
    for level in ("expert", "medium"):
        step = levels[level]["step"]
        layers = _snapshot_layers(member["snapshots"][str(step)])
        file = save_actor(target, step, layers, {"task": task, "step": step, **dims,
                                                 "hidden": meta["sac"]["hidden"], "level": level})
        record[level] = {**{k: v for k, v in levels[level].items() if k not in ("returns", "lengths")},
                         "path": file.name, "sha256": sha256_file(file), "returns": levels[level]["returns"],
                         "lengths": levels[level]["lengths"]}
    n = levels["medium"]["step"]
    starts = member["episode_starts"][member["episode_starts"] < n]
    np.savez_compressed(target / REPLAY_FILE, codes=member["codes"][:n], episode_starts=starts)
    for key in ("medium_target_return", "expert_ok", "medium_ok"):
        record[key] = levels[key]
    record["replay"] = {"file": REPLAY_FILE, "sha256": sha256_file(target / REPLAY_FILE), "n_transitions": int(n),
                        "n_episodes": int(len(starts)), "stream": stream_id("sac", task),
                        "actions": "uint8 codes, a = (code - 127) / 127 (dmpc/data/policy.py)"}
    record["ladder"] = ladder
    (target / "levels.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def regenerate_replay(policies_dir: Path, task: str, max_episode_steps: int | None,
                      pool: Executor | None = None) -> dict[str, np.ndarray]:
    """The medium-replay dataset: the training run's transitions before the medium snapshot, re-simulated from
    `replay_actions.npz` (bit-exact; ReplayError otherwise)."""
    record = json.loads((policies_dir / "levels.json").read_text())
    replay = record["replay"]
    file = policies_dir / replay["file"]
    if not file.is_file():
        raise ReplayError(f"{file} is missing: the medium-replay dataset is re-simulated from it (export_levels)")
    if sha256_file(file) != replay["sha256"]:
        raise ReplayError(f"{file} does not match the sha256 in {policies_dir / 'levels.json'}")
    with np.load(file) as npz:
        codes, starts = npz["codes"], npz["episode_starts"]
    data = replay_episodes(task, codes, starts, record["seed"], replay["stream"], max_episode_steps, pool)
    data["timeouts"][-1] = data["timeouts"][-1] or not data["terminals"][-1]
    return data


class _Run:
    """The mutable state of one training run between blocks (see the module docstring)."""

    def __init__(self, tasks, seed, run_dir, loop: LoopConfig, sac: SACConfig) -> None:
        if loop.sac_steps % loop.block or loop.start_steps % loop.block or loop.snapshot_every % loop.block:
            raise ConfigError(f"sac_steps={loop.sac_steps}, start_steps={loop.start_steps} and snapshot_every="
                              f"{loop.snapshot_every} must be multiples of block={loop.block}")
        self.tasks, self.seed, self.run_dir, self.loop, self.sac = list(tasks), seed, Path(run_dir), loop, sac
        envs = [make_env(t) for t in tasks]
        self.pop = population(tuple(e.observation_space.shape[0] for e in envs),
                              tuple(e.action_space.shape[0] for e in envs), sac)
        self.state = self.pop.init(seed)
        self.buffer = self.pop.empty_buffer(loop.sac_steps)
        self.step, self.episodes = 0, [0] * len(tasks)
        self.codes = [np.zeros((loop.sac_steps, a), np.uint8) for a in self.pop.act_dims]  # rows < step are set
        self.starts = [[0] for _ in tasks]
        self.reward_sums = [0.0] * len(tasks)
        self.ladders: dict[str, list[dict]] = {t: [] for t in tasks}
        self.snapshots: dict[str, dict[int, list]] = {t: {} for t in tasks}
        self.pending: list[tuple[int, list[Future]]] = []
        self.updates = self.env_steps = self.train_s = 0.0

    # --- checkpoint ----------------------------------------------------------------------------------------
    def config_record(self) -> dict[str, Any]:
        return {"tasks": self.tasks, "seed": self.seed, "sac": asdict(self.sac), "loop": asdict(self.loop)}

    def restore(self, pool: Executor) -> None:
        path = latest_checkpoint(self.run_dir)
        if path is None:
            return
        _, saved = load_checkpoint(path, framework="numpy")
        self._check_same_run(saved["meta"], path)
        meta = saved["meta"]
        leaves, treedef = jax.tree.flatten(self.state)
        self.state = jax.tree.unflatten(treedef, [saved["sac"][f"{i:04d}"] for i in range(len(leaves))])
        self.step, self.episodes, self.reward_sums = meta["step"], meta["episodes"], meta["reward_sums"]
        self.ladders = meta["ladders"]
        for m, task in enumerate(self.tasks):
            member = saved["members"][task]
            self.codes[m][:self.step] = member["codes"]
            self.starts[m] = member["episode_starts"].tolist()
            self.snapshots[task] = {int(s): _snapshot_layers(v) for s, v in member.get("snapshots", {}).items()}
        if 0 < self.step < self.loop.sac_steps:
            self._regenerate_buffer(pool)

    def save(self, keep_last: int = 2) -> Path:
        self.wait_evals()
        leaves = jax.tree.leaves(jax.device_get(self.state))
        members = {}
        for m, task in enumerate(self.tasks):
            keep = kept_steps(self.ladders[task], self.loop.ladder_bin)
            self.snapshots[task] = {s: v for s, v in self.snapshots[task].items() if s in keep}
            members[task] = {"codes": self.codes[m][:self.step], "episode_starts": np.asarray(self.starts[m], np.int64),
                             "snapshots": {str(s): {str(i): {"w": w, "b": b} for i, (w, b) in enumerate(layers)}
                                           for s, layers in self.snapshots[task].items()}}
        meta = {**self.config_record(), "step": self.step, "episodes": self.episodes,
                "reward_sums": self.reward_sums, "ladders": self.ladders}
        state = {"meta": meta, "sac": {f"{i:04d}": np.asarray(x) for i, x in enumerate(leaves)}, "members": members}
        return save_checkpoint(self.run_dir, self.step, state, keep_last=keep_last)

    def _check_same_run(self, meta: dict, path: Path) -> None:
        now = self.config_record()
        for key in ("tasks", "seed", "sac", "loop"):
            was, want = meta[key], json.loads(json.dumps(now[key]))
            if key == "loop":
                was = {k: v for k, v in was.items() if k not in LoopConfig.RESULT_NEUTRAL}
                want = {k: v for k, v in want.items() if k not in LoopConfig.RESULT_NEUTRAL}
            if was != want:
                diff = sorted(k for k in set(was) | set(want) if was.get(k) != want.get(k)) if isinstance(was, dict) \
                    else [key]
                raise ConfigError(f"{path} is a run with {key} {_subset(was, diff)}; this command has "
                                  f"{_subset(want, diff)}. Resume with the same settings or use another workspace")

    def _regenerate_buffer(self, pool: Executor) -> None:
        blocks = []
        for m, task in enumerate(self.tasks):
            starts = np.asarray(self.starts[m], np.int64)
            data = replay_episodes(task, self.codes[m][:self.step], starts, self.seed, stream_id("sac", task),
                                   self.loop.max_episode_steps, pool)
            total = float(np.sum(data["rewards"].astype(np.float64)))
            if len(data["rewards"]) != self.step or total != self.reward_sums[m]:
                raise ReplayError(f"{task}: the replay buffer re-simulated from {self.run_dir} has "
                                  f"{len(data['rewards'])} steps and reward sum {total!r}; the run recorded "
                                  f"{self.step} and {self.reward_sums[m]!r}")
            blocks.append(data)
        self.buffer = self.pop.insert(self.buffer, self.pop.pad_block(blocks), 0)

    def open_episodes(self) -> list[tuple[int, np.ndarray]]:
        return [(self.episodes[m], self.codes[m][self.starts[m][-1]:self.step]) for m in range(len(self.tasks))]

    # --- the loop ------------------------------------------------------------------------------------------
    def train(self, envs: ActingEnvs, pool: Executor, start: float, time_budget_s: float, log) -> None:
        loop, k = self.loop, self.loop.block
        base_key = jax.random.key(self.seed)
        layers = self.pop.actor_layers(self.state)
        last_save = time.perf_counter()
        while self.step < loop.sac_steps:
            j, t0 = self.step // k, time.perf_counter()
            n_updates = k * loop.utd if self.step >= max(loop.start_steps, 1) else 0
            if n_updates:
                new_state, metrics = self.pop.train(self.state, self.buffer, self.step,
                                                    jax.random.fold_in(base_key, j), n_updates)
            envs.submit([None if self.step < loop.start_steps else lay for lay in layers], j, self.step, k)
            self._record(envs.collect())
            if n_updates:
                self.state = new_state
            layers = self.pop.actor_layers(self.state)
            self.step += k
            self.updates += n_updates
            self.env_steps += k * len(self.tasks)
            self.train_s += time.perf_counter() - t0
            if self.step % loop.snapshot_every == 0:
                self._snapshot(layers, pool, metrics if n_updates else None, log)
            self._collect_evals(log, block=False)
            out_of_time = time_budget_s > 0 and time.perf_counter() - start >= time_budget_s
            if out_of_time or self.step >= loop.sac_steps:
                break
            if time.perf_counter() - last_save >= loop.save_every_s:
                self.save()
                last_save = time.perf_counter()
        self.save(keep_last=1)

    def _record(self, blocks: list[Block]) -> None:
        for m, block in enumerate(blocks):
            self.codes[m][self.step:self.step + len(block.codes)] = block.codes
            self.starts[m].extend(block.episode_starts)
            self.episodes[m] += len(block.episode_starts)
            self.reward_sums[m] += float(np.sum(block.data["rewards"].astype(np.float64)))
        self.buffer = self.pop.insert(self.buffer, self.pop.pad_block([b.data for b in blocks]), self.step)

    def _snapshot(self, layers, pool: Executor, metrics, log) -> None:
        futures = []
        for m, task in enumerate(self.tasks):
            snap = to_float16(layers[m])
            self.snapshots[task][self.step] = snap
            spec = PolicySpec("actor", self.pop.act_dims[m], tuple(snap))
            futures.append([pool.submit(evaluate_episodes, task, spec, 1, self.seed, self.loop.max_episode_steps,
                                        first=i) for i in range(self.loop.eval_episodes)])
        self.pending.append((self.step, futures))
        if log and metrics is not None:
            host = jax.device_get(metrics)
            log({f"sac/{task}/{k}": float(v[m]) for m, task in enumerate(self.tasks) for k, v in host.items()},
                self.step)

    def wait_evals(self) -> None:
        self._collect_evals(None, block=True)

    def _collect_evals(self, log, block: bool) -> None:
        while self.pending and (block or all(f.done() for fs in self.pending[0][1] for f in fs)):
            step, futures = self.pending.pop(0)
            line = []
            for task, fs in zip(self.tasks, futures, strict=True):
                results = [f.result() for f in fs]
                r = rung(task, step, [x[0][0] for x in results], [x[1][0] for x in results])
                self.ladders[task].append(r)
                line.append(f"{task} {r['return_mean']:.0f} ({r['normalized']:.1f})")
                if log:
                    log({f"sac/{task}/eval_return": r["return_mean"], f"sac/{task}/normalized": r["normalized"]},
                        step)
            rate = self.env_steps / self.train_s if self.train_s else 0.0
            console.info("SAC step %d/%d: %s | %.0f env steps/s, %.0f updates/s", step, self.loop.sac_steps,
                         ", ".join(line), rate, self.updates / self.train_s if self.train_s else 0.0)

    def status(self, start: float) -> RunStatus:
        return RunStatus(self.step, self.step >= self.loop.sac_steps, self.ladders, time.perf_counter() - start,
                         self.updates / self.train_s if self.train_s else 0.0,
                         self.env_steps / self.train_s if self.train_s else 0.0)


def _snapshot_layers(tree: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.asarray(tree[str(i)]["w"]), np.asarray(tree[str(i)]["b"])) for i in range(len(tree))]


def _subset(value, keys: list[str]):
    return {k: value.get(k) for k in keys} if isinstance(value, dict) else value


