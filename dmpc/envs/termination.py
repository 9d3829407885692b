"""The tasks' known termination rules (gymnasium MuJoCo v5 `is_healthy`) on raw observations, as pure functions.

gymnasium v5 steps, then sets `terminated = not is_healthy` on the state it reached; that step's reward is still
paid (its healthy bonus is 0). With `exclude_current_positions_from_observation=True` (our envs) obs[0] is the
torso height z = qpos[1] and obs[1] the torso angle = qpos[2]; every bound is strict:

    Hopper-v5       0.7 < obs[0],   -0.2 < obs[1] < 0.2,   -100 < obs[1:] < 100
    Walker2d-v5     0.8 < obs[0] < 2.0,   -1 < obs[1] < 1          (also the jump and broken-ankle variants)
    HalfCheetah-v5  never terminates

Hopper's range test is on qpos[2:] and the *unclipped* qvel, while observations clip qvel to [-10, 10]: from an
observation a velocity beyond 100 cannot be seen, so that clause only ever fires on positions here
(tests/dmpc/test_dmpc_termination.py checks the rules against the env's own `terminated` on real rollouts).

Planning with a rule (`terminate`): for a candidate whose predicted states s_{t+1..t+F} first leave the healthy
set at s_{t+k*+1}, the rewards r_{t+k} for k <= k* are kept (the env pays the falling step) and those after are
zeroed; the value of the return beyond the horizon is dropped for a candidate that terminates within it.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp

from dmpc.envs.scores import task_of

HealthyFn = Callable[[jnp.ndarray], jnp.ndarray]  # raw observations (..., S) -> healthy (...,) bool

HOPPER_Z_MIN, HOPPER_ANGLE, HOPPER_STATE = 0.7, 0.2, 100.0
WALKER_Z_RANGE, WALKER_ANGLE = (0.8, 2.0), 1.0


def hopper_healthy(obs: jnp.ndarray) -> jnp.ndarray:
    """Hopper-v5 `is_healthy` of observations (..., 11) -> (...,) bool."""
    z, angle = obs[..., 0], obs[..., 1]
    in_range = jnp.all(jnp.abs(obs[..., 1:]) < HOPPER_STATE, axis=-1)
    return in_range & (z > HOPPER_Z_MIN) & (jnp.abs(angle) < HOPPER_ANGLE)


def walker2d_healthy(obs: jnp.ndarray) -> jnp.ndarray:
    """Walker2d-v5 `is_healthy` of observations (..., 17) -> (...,) bool."""
    z, angle = obs[..., 0], obs[..., 1]
    return (z > WALKER_Z_RANGE[0]) & (z < WALKER_Z_RANGE[1]) & (jnp.abs(angle) < WALKER_ANGLE)


RULES: dict[str, HealthyFn | None] = {"hopper": hopper_healthy, "walker2d": walker2d_healthy, "halfcheetah": None}


def healthy_rule(task: str) -> HealthyFn | None:
    """The healthy-state rule of a task name ('walker2d_jump' uses Walker2d's), None for a task that never
    terminates."""
    try:
        return RULES[task_of(task)]
    except KeyError:
        raise KeyError(f"no termination rule for task {task!r}; known tasks: {', '.join(RULES)}") from None


def alive_before(healthy: jnp.ndarray) -> jnp.ndarray:
    """1.0 where step k's reward counts: no state before s_{t+k+1} was unhealthy. healthy (N, F) -> (N, F) float."""
    ones = jnp.ones_like(healthy[..., :1], dtype=jnp.float32)
    return jnp.concatenate([ones, jnp.cumprod(healthy[..., :-1].astype(jnp.float32), axis=-1)], axis=-1)


def terminate(rewards: jnp.ndarray, values: jnp.ndarray,
              healthy: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Apply termination to a candidate's predicted rewards (N, F) and values (N,) given healthy (N, F) of the
    predicted states s_{t+1..t+F}. Returns (rewards, values, terminated (N,) bool)."""
    terminated = ~jnp.all(healthy, axis=-1)
    return rewards * alive_before(healthy), jnp.where(terminated, 0.0, values), terminated
