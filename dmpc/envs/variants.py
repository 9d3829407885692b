"""Walker2d variants for run-time adaptation (paper section 5): a jump reward and a broken ankle.

Jump (`dmpc/Walker2dJump-v0`): the ordinary Walker2d-v5 dynamics with the reward replaced by
    r = height_weight * (torso_z - standing_z) + vertical_velocity_weight * max(v_z, 0) + healthy_reward
          - ctrl_cost_weight * |a|^2
computed from the observation alone (`jump_reward`), so the planner can score predicted states with the same
function at run time (obs[0] = torso height z, obs[9] = torso vertical velocity, with x excluded from obs).

Broken ankle (`dmpc/Walker2dBrokenAnkle-v0`): the Walker2d-v5 MJCF with the RIGHT foot joint (`foot_joint`)
range shrunk from [-45, 45] degrees to `ankle_range_deg` (default [-5, 5]) and its motor gear reduced from
100 to `ankle_gear` (default 30). `broken_ankle_xml` edits gymnasium's own walker2d_v5.xml and writes the
result to a cache file that the env loads through `xml_file`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

WALKER_HEIGHT_INDEX = 0  # obs index of the torso height z
WALKER_VZ_INDEX = 9  # obs index of the torso vertical velocity (qvel[1]; qvel starts at obs[8])
WALKER_STANDING_Z = 1.25  # torso z at reset


@dataclass(frozen=True)
class JumpReward:
    """Configurable jump reward on Walker2d observations; works on NumPy and JAX arrays of shape (..., 17)."""

    height_weight: float = 1.0
    vertical_velocity_weight: float = 1.0
    healthy_reward: float = 1.0
    ctrl_cost_weight: float = 1e-3

    def __call__(self, obs, action):
        """Reward of reaching `obs` (..., 17) after `action` (..., 6): (...,)."""
        xp = _namespace(obs)
        height = obs[..., WALKER_HEIGHT_INDEX] - WALKER_STANDING_Z
        vz = obs[..., WALKER_VZ_INDEX]
        ctrl = xp.sum(action * action, axis=-1)
        return (self.height_weight * height + self.vertical_velocity_weight * xp.maximum(vz, 0.0)
                + self.healthy_reward - self.ctrl_cost_weight * ctrl)


def jump_reward(obs, action, height_weight: float = 1.0, vertical_velocity_weight: float = 1.0):
    """Functional form of `JumpReward` with default healthy/ctrl terms."""
    return JumpReward(height_weight, vertical_velocity_weight)(obs, action)


def broken_ankle_xml(ankle_range_deg: tuple[float, float] = (-5.0, 5.0), ankle_gear: float = 30.0,
                     joint: str = "foot_joint") -> Path:
    """Path of a Walker2d-v5 MJCF with `joint`'s range and motor gear changed (cached by content hash)."""
    source = Path(gym.__file__).parent / "envs" / "mujoco" / "assets" / "walker2d_v5.xml"
    tree = ET.parse(source)
    root = tree.getroot()
    joints = [j for j in root.iter("joint") if j.get("name") == joint]
    motors = [m for m in root.iter("motor") if m.get("joint") == joint]
    if len(joints) != 1 or len(motors) != 1:
        raise ValueError(f"walker2d_v5.xml has no single joint/motor named {joint!r}")
    joints[0].set("range", f"{ankle_range_deg[0]:g} {ankle_range_deg[1]:g}")
    motors[0].set("gear", f"{ankle_gear:g}")
    text = ET.tostring(root, encoding="unicode")
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("DMPC_XML_CACHE", Path(tempfile.gettempdir()) / "dmpc_mjcf"))
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"walker2d_broken_ankle_{digest}.xml"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def make_walker_jump(height_weight: float = 1.0, vertical_velocity_weight: float = 1.0, **kwargs):
    """Walker2d-v5 whose reward is `JumpReward` (the dynamics are unchanged)."""
    env = gym.make("Walker2d-v5", **kwargs)
    return JumpRewardWrapper(env, JumpReward(height_weight, vertical_velocity_weight))


def make_walker_broken_ankle(ankle_range_deg: tuple[float, float] = (-5.0, 5.0), ankle_gear: float = 30.0,
                             **kwargs):
    """Walker2d-v5 with the right ankle's range and gear reduced (see module docstring)."""
    xml = broken_ankle_xml(tuple(ankle_range_deg), ankle_gear)
    return gym.make("Walker2d-v5", xml_file=str(xml), **kwargs)


class JumpRewardWrapper(gym.Wrapper):
    """Replaces the reward by `reward_fn(next obs, action)`; keeps the original in info['task_reward']."""

    def __init__(self, env, reward_fn) -> None:
        super().__init__(env)
        self.reward_fn = reward_fn

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info, task_reward=reward)
        new_reward = float(self.reward_fn(np.asarray(obs), np.asarray(action, dtype=np.float64)))
        return obs, new_reward, terminated, truncated, info


def _namespace(x):
    if type(x).__module__.startswith("jax"):
        import jax.numpy as jnp

        return jnp
    return np
