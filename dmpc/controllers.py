"""Closed-loop controllers evaluated in the env: D-MPC, MBOP, BC (or the distilled planner) and the behaviour policy.

Every controller has `reset(obs)` and `act(obs) -> action (A,) float32`. Planners keep the last H observations
and replan every `execute` steps (executing the best plan's first actions in between).
"""

from __future__ import annotations

from collections import deque

import jax
import jax.numpy as jnp
import numpy as np

from dmpc.envs.termination import HealthyFn
from dmpc.mbop import MBOPConfig, make_mbop
from dmpc.models.model_set import ModelSet
from dmpc.planner import PlannerConfig, RewardFn, make_planner


class DMPCController:
    """`hist` (the last H normalized observations, the current one last, after `act`) and `plan_fn` are what
    dmpc.diagnostics replays."""

    def __init__(self, models: ModelSet, cfg: PlannerConfig, seed: int, execute: int = 1,
                 reward_fn: RewardFn | None = None, healthy_fn: HealthyFn | None = None) -> None:
        self.models, self.cfg, self.execute = models, cfg, execute
        self.plan_fn = make_planner(models, cfg, reward_fn, healthy_fn)
        self.key = jax.random.key(seed)
        self.hist: deque = deque(maxlen=models.dims.history)
        self.queue: list[np.ndarray] = []

    def reset(self, obs: np.ndarray) -> None:
        self.hist.clear()
        for _ in range(self.models.dims.history):
            self.hist.append(self.models.normalizer.norm(obs).astype(np.float32))
        self.queue = []

    def act(self, obs: np.ndarray) -> np.ndarray:
        self.hist.append(self.models.normalizer.norm(obs).astype(np.float32))
        if not self.queue:
            self.key, k = jax.random.split(self.key)
            plan = self.plan_fn(self.models.params, jnp.asarray(np.stack(self.hist)), k)
            self.queue = list(np.asarray(plan.best_actions)[: self.execute])
        return self.queue.pop(0).astype(np.float32)


class MBOPController:
    def __init__(self, models: ModelSet, cfg: MBOPConfig, seed: int, healthy_fn: HealthyFn | None = None) -> None:
        self.models = models
        self.plan_fn = make_mbop(models, cfg, healthy_fn)
        self.key = jax.random.key(seed)
        self.prev = np.zeros((models.dims.horizon, models.dims.act_dim), np.float32)

    def reset(self, obs: np.ndarray) -> None:
        self.prev[:] = 0.0

    def act(self, obs: np.ndarray) -> np.ndarray:
        self.key, k = jax.random.split(self.key)
        plan, _ = self.plan_fn(self.models.params, jnp.asarray(self.models.normalizer.norm(obs), jnp.float32),
                               jnp.asarray(self.prev), k)
        plan = np.asarray(plan)
        self.prev = np.concatenate([plan[1:], plan[-1:]])
        return plan[0].astype(np.float32)


class BCController:
    """A deterministic MLP policy of the current state from the model set: the BC baseline (`name="bc"`) or the
    planner's distilled student (`name="distilled"`); it reads `models.params[name]` at every call."""

    def __init__(self, models: ModelSet, name: str = "bc") -> None:
        self.models, self.name = models, name
        policy = models.models[name]
        self.fn = jax.jit(lambda p, s: policy(p, s))

    def reset(self, obs: np.ndarray) -> None:
        pass

    def act(self, obs: np.ndarray) -> np.ndarray:
        s = jnp.asarray(self.models.normalizer.norm(obs), jnp.float32)
        return np.asarray(self.fn(self.models.params[self.name], s), np.float32)


class PolicyController:
    """Wraps a behaviour-policy function obs, rng -> action."""

    def __init__(self, policy, seed: int) -> None:
        self.policy, self.rng = policy, np.random.default_rng(seed)

    def reset(self, obs: np.ndarray) -> None:
        pass

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.policy(obs, self.rng)
