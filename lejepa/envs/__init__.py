"""Pixel environments for LeWM: Two-Room (NumPy), Push-T (gym-pusht), Reacher (DeepMind Control), Cube (OGBench).

`make_env(name, image_size)` builds one. Every env has `reset(seed) -> frame (S, S, 3) uint8`,
`step(action, render=True) -> frame` (one env step, None without render; the world model's step is
`frameskip` of them), `state() -> (K,)` (physical
quantities, restorable), `set_state(state)`, `render()`, `is_success(goal_state)` (the official success rule, checked
after every env step during an evaluation), `goal_distance(goal_state)`, `recolor()` and `teleport_state(rng)` (the
surprise events), and the attributes `name`, `action_dim`, `state_names`, `probe_names`.

`make_policy(env, policy, rng, noise)` builds a behaviour policy with `action() -> (A,)` in [-1, 1]:
`random` (uniform i.i.d., swm's RandomPolicy), `correlated_random` (an AR(1) random walk), `noisy_expert` (the env's
scripted expert / OGBench oracle with noise) and `mixed` (handled by the dataset: alternate episodes).
"""

from __future__ import annotations

import numpy as np

ENVS = ("two_room", "push_t", "reacher", "cube")
POLICIES = ("random", "correlated_random", "noisy_expert", "mixed")


def env_class(name: str) -> type:
    """The env's class (its `action_dim`, `state_names`, `probe_names` are class attributes)."""
    if name == "two_room":
        from lejepa.envs.two_room import TwoRoom

        return TwoRoom
    if name == "push_t":
        from lejepa.envs.push_t import PushT

        return PushT
    if name == "reacher":
        from lejepa.envs.reacher import Reacher

        return Reacher
    if name == "cube":
        from lejepa.envs.cube import Cube

        return Cube
    raise ValueError(f"env={name!r} is unknown; expected one of {ENVS}")


def make_env(name: str, image_size: int = 64, **kwargs):
    return env_class(name)(image_size=image_size, **kwargs)


class UniformRandom:
    """Uniform i.i.d. actions in [-1, 1]^A."""

    def __init__(self, env, rng: np.random.Generator) -> None:
        self.rng, self.dim = rng, env.action_dim

    def action(self) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, self.dim)


class CorrelatedRandom:
    """AR(1) random actions a_t = clip(0.7 a_{t-1} + 0.7 eps), a smooth random walk that travels further."""

    def __init__(self, env, rng: np.random.Generator) -> None:
        self.rng, self.a = rng, np.zeros(env.action_dim)

    def action(self) -> np.ndarray:
        self.a = np.clip(0.7 * self.a + 0.7 * self.rng.normal(size=self.a.shape), -1.0, 1.0)
        return self.a


def make_policy(env, policy: str, rng: np.random.Generator, noise: float | None = None):
    """A behaviour policy for one episode (call after `env.reset`). `noise` overrides the expert's default."""
    if policy == "random":
        return UniformRandom(env, rng)
    if policy == "correlated_random":
        return CorrelatedRandom(env, rng)
    if policy != "noisy_expert":
        raise ValueError(f"policy={policy!r}; expected one of {POLICIES[:3]} (mixed alternates episodes)")
    kw = {} if noise is None else {"noise": noise}
    if env.name == "two_room":
        from lejepa.envs.two_room import TwoRoomExpert

        return TwoRoomExpert(env, rng, **kw)
    if env.name == "push_t":
        from lejepa.envs.push_t import PushTExpert

        return PushTExpert(env, rng, **kw)
    if env.name == "cube":
        from lejepa.envs.cube import CubeOracle

        return CubeOracle(env, rng, **kw)
    raise ValueError(f"env={env.name!r} has no scripted expert (its official data are random: use policy=random)")
