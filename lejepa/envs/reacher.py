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

    def is_success(self, goal_state: np.ndarray | None = None) -> bool:
        s = self.state()
        return bool(np.linalg.norm(s[2:4] - s[4:6]) < self.success_radius)


def expert_action(env: Reacher, rng: np.random.Generator) -> np.ndarray:
    """Noisy Jacobian-transpose controller pulling the fingertip to the target, with velocity damping."""
    s = env.state()
    q0, q1 = s[0], s[1]
    l0, l1 = 0.1, 0.11
    jac = np.array([[-l0 * np.sin(q0) - l1 * np.sin(q0 + q1), -l1 * np.sin(q0 + q1)],
                    [l0 * np.cos(q0) + l1 * np.cos(q0 + q1), l1 * np.cos(q0 + q1)]])
    torque = 1000.0 * jac.T @ (s[4:6] - s[2:4]) - 1.0 * env.env.data.qvel[:2]
    return np.clip(torque + rng.normal(0.0, 0.2, 2), -1, 1)
