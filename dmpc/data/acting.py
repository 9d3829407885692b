"""The environments SAC training acts in: one per population member, in this process or one process each.

Block j of member m covers env steps [j K, (j + 1) K). Its actions are uniform in [-1, 1] during warm-up, else
the member's actor (data/policy.py, float64 forward) with noise, both drawn from
`default_rng([seed, stream, j])`; each action is rounded to its uint8 code (data/policy.py) before the env steps
with it. Episode e of a member resets with `episode_seed(seed, stream, e)` (data/rollouts.py). So a block's
transitions are a function of (seed, task, block index, actor, env state), the env state is a function of the
codes recorded since the episode's start, and `MemberEnv.restore` rebuilds it by re-stepping those codes: no
env or RNG state is ever saved.

`ActingEnvs` steps all members' blocks, in worker processes (`parallel=True`, data/rollouts.py
`process_context`) while the caller's GPU work runs, or in this process.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from dmpc.data.policy import Layers, actor_action, decode_actions, encode_actions
from dmpc.data.rollouts import TRANSITION_KEYS, ReplayError, episode_seed, process_context
from dmpc.envs import make_env


@dataclass
class Block:
    """K transitions of one member: D4RL-keyed arrays, their uint8 action codes (K, A), and the global step
    indices at which new episodes started inside the block."""

    data: dict[str, np.ndarray]
    codes: np.ndarray
    episode_starts: list[int]


class MemberEnv:
    """The env of one member, continuing across blocks."""

    def __init__(self, task: str, seed: int, stream: int, max_episode_steps: int | None) -> None:
        self.task, self.seed, self.stream = task, seed, stream
        self.env = make_env(task, max_episode_steps=max_episode_steps)
        self.act_dim = self.env.action_space.shape[0]
        self.episode, self.obs = 0, self._reset(0)

    def restore(self, episode: int, codes: np.ndarray) -> None:
        """Put the env where episode `episode` is after stepping `codes` (the codes recorded since its start)."""
        self.episode, self.obs = episode, self._reset(episode)
        for step, action in enumerate(decode_actions(codes)):
            self.obs, _, terminated, truncated, _ = self.env.step(action)
            if terminated or truncated:
                raise ReplayError(f"{self.task} episode {episode} ended at step {step + 1} while being restored "
                                  f"from {len(codes)} recorded actions")

    def step_block(self, layers: Layers | None, block: int, start_step: int, n_steps: int) -> Block:
        """Step `n_steps` transitions (random actions when `layers` is None) of block `block`."""
        rng = np.random.default_rng([self.seed, self.stream, block])
        if layers is None:
            actions = rng.uniform(-1.0, 1.0, (n_steps, self.act_dim))
        else:
            noise = rng.standard_normal((n_steps, self.act_dim))
        out = {k: [] for k in TRANSITION_KEYS}
        codes = np.zeros((n_steps, self.act_dim), np.uint8)
        starts = []
        for i in range(n_steps):
            raw = actions[i] if layers is None else actor_action(layers, self.obs, noise[i], self.act_dim)
            codes[i] = encode_actions(raw)
            action = decode_actions(codes[i])
            next_obs, reward, terminated, truncated, _ = self.env.step(action)
            for name, value in zip(TRANSITION_KEYS, (self.obs, action, reward, terminated, truncated, next_obs),
                                   strict=True):
                out[name].append(value)
            self.obs = next_obs
            if terminated or truncated:
                self.episode += 1
                self.obs = self._reset(self.episode)
                starts.append(start_step + i + 1)
        data = {k: np.asarray(out[k], np.float32) for k in ("observations", "actions", "rewards",
                                                            "next_observations")}
        data["terminals"] = np.asarray(out["terminals"], bool)
        data["timeouts"] = np.asarray(out["timeouts"], bool)
        return Block(data, codes, starts)

    def _reset(self, episode: int) -> np.ndarray:
        return self.env.reset(seed=episode_seed(self.seed, self.stream, episode)[0])[0]


class ActingEnvs:
    """All members' `MemberEnv`s; `submit` a block for every member, then `collect` the blocks (in order)."""

    def __init__(self, members: list[tuple[str, int, int]], max_episode_steps: int | None, parallel: bool) -> None:
        """`members`: (task, seed, stream) each."""
        self.parallel = parallel
        if parallel:
            ctx = process_context()
            self.conns, self.procs = [], []
            for member in members:
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_serve, args=(child, member, max_episode_steps), daemon=True)
                proc.start()
                child.close()
                self.conns.append(parent)
                self.procs.append(proc)
        else:
            self.envs = [MemberEnv(*member, max_episode_steps) for member in members]
        self._pending: list = []

    def restore(self, states: list[tuple[int, np.ndarray]]) -> None:
        """(episode, codes since its start) per member."""
        if self.parallel:
            for conn, state in zip(self.conns, states, strict=True):
                conn.send(("restore", state))
            for conn in self.conns:
                _check(conn.recv())
        else:
            for env, state in zip(self.envs, states, strict=True):
                env.restore(*state)

    def submit(self, layers: list[Layers | None], block: int, start_step: int, n_steps: int) -> None:
        args = [(lay, block, start_step, n_steps) for lay in layers]
        if self.parallel:
            for conn, a in zip(self.conns, args, strict=True):
                conn.send(("step", a))
        else:
            self._pending = [env.step_block(*a) for env, a in zip(self.envs, args, strict=True)]

    def collect(self) -> list[Block]:
        if self.parallel:
            return [_check(conn.recv()) for conn in self.conns]
        blocks, self._pending = self._pending, []
        return blocks

    def close(self) -> None:
        if self.parallel:
            for conn, proc in zip(self.conns, self.procs, strict=True):
                with contextlib.suppress(BrokenPipeError, OSError):
                    conn.send(("close", None))
                proc.join(timeout=10)
                if proc.is_alive():
                    proc.terminate()

    def __enter__(self) -> ActingEnvs:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _serve(conn, member: tuple[str, int, int], max_episode_steps: int | None) -> None:
    """Worker process: one MemberEnv answering restore/step/close messages; errors are sent back, not lost."""
    env = MemberEnv(*member, max_episode_steps)
    while True:
        command, args = conn.recv()
        if command == "close":
            return
        try:
            result = env.restore(*args) if command == "restore" else env.step_block(*args)
        except Exception as err:  # noqa: BLE001 - re-raised in the parent by _check
            result = err
        conn.send(result)


def _check(result):
    if isinstance(result, Exception):
        raise result
    return result
