"""Reacher from gymnasium (`Reacher-v5`, MuJoCo), rendered offscreen at image_size with MUJOCO_GL=egl.

Action (2,) in [-1, 1]^2 are joint torques. State for probing: the two joint angles, the fingertip (x, y) and the
target (x, y). Success: fingertip within `success_radius` (0.02 m, our choice; gymnasium defines no success) of
the target at the end of the episode.
"""

from __future__ import annotations

import os

import numpy as np


class Reacher:
    name = "reacher"
    action_dim = 2
    state_names = ("q0", "q1", "tip_x", "tip_y", "target_x", "target_y")

    def __init__(self, image_size: int = 64, success_radius: float = 0.02) -> None:
        os.environ.setdefault("MUJOCO_GL", "egl")
        import gymnasium as gym

        self.env = gym.make("Reacher-v5", render_mode="rgb_array", width=image_size, height=image_size).unwrapped
        self.success_radius = success_radius

    def reset(self, seed: int | None = None) -> np.ndarray:
        self.env.reset(seed=seed)
        return self.render()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, dict]:
        self.env.step(np.clip(np.asarray(action, dtype=np.float32), -1, 1))
        return self.render(), {"state": self.state()}

    def state(self) -> np.ndarray:
        data = self.env.data
        tip = self.env.get_body_com("fingertip")[:2]
        target = self.env.get_body_com("target")[:2]
        return np.concatenate([data.qpos[:2], tip, target]).astype(np.float64)

    def set_state(self, state: np.ndarray) -> None:
        qpos = self.env.data.qpos.copy()
        qpos[:2] = state[:2]
        qpos[2:4] = state[4:6]
        self.env.set_state(qpos, np.zeros_like(self.env.data.qvel))

    def render(self) -> np.ndarray:
        return np.ascontiguousarray(self.env.render(), dtype=np.uint8)

    def goal_distance(self, goal_state: np.ndarray) -> float:
        """Fingertip distance to the goal state's fingertip, in metres (joint angles wrap, so not those)."""
        return float(np.linalg.norm(self.state()[2:4] - np.asarray(goal_state)[2:4]))

    def is_success(self, goal_state: np.ndarray | None = None) -> bool:
        s = self.state()
        return bool(np.linalg.norm(s[2:4] - s[4:6]) < self.success_radius)


def reach_state(state: np.ndarray, l0: float = 0.1, l1: float = 0.11) -> np.ndarray:
    """The state with the same target and joint angles (inverse kinematics, elbow sign kept) putting the fingertip
    on the target; the tip entries are set to the target."""
    out = np.array(state, dtype=np.float64)
    tx, ty = out[4], out[5]
    r2 = min(tx * tx + ty * ty, (l0 + l1) ** 2)
    c1 = np.clip((r2 - l0 * l0 - l1 * l1) / (2 * l0 * l1), -1.0, 1.0)
    q1 = np.arccos(c1) * (1.0 if out[1] >= 0 else -1.0)
    q0 = np.arctan2(ty, tx) - np.arctan2(l1 * np.sin(q1), l0 + l1 * np.cos(q1))
    out[0], out[1], out[2], out[3] = q0, q1, tx, ty
    return out


def expert_action(env: Reacher, rng: np.random.Generator) -> np.ndarray:
    """Noisy Jacobian-transpose controller pulling the fingertip to the target, with velocity damping."""
    s = env.state()
    q0, q1 = s[0], s[1]
    l0, l1 = 0.1, 0.11
    jac = np.array([[-l0 * np.sin(q0) - l1 * np.sin(q0 + q1), -l1 * np.sin(q0 + q1)],
                    [l0 * np.cos(q0) + l1 * np.cos(q0 + q1), l1 * np.cos(q0 + q1)]])
    torque = 1000.0 * jac.T @ (s[4:6] - s[2:4]) - 1.0 * env.env.data.qvel[:2]
    return np.clip(torque + rng.normal(0.0, 0.2, 2), -1, 1)
