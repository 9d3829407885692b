"""Push-T from gym-pusht (pymunk physics, pygame rendering; needs SDL_VIDEODRIVER=dummy without a display).

Action (2,) in [-1, 1]^2 is mapped to the agent's target position in [0, 512]^2 pixels of the 512x512 workspace.
State for probing: agent (x, y), block (x, y, angle). Success as gym-pusht scores it: the T block's area overlap
with the fixed goal pose (256, 256, pi/4) exceeds `success_threshold` = 0.95 (coverage); the episode then
terminates. We report that same `is_success`.
"""

from __future__ import annotations

import os

import numpy as np


class PushT:
    name = "push_t"
    action_dim = 2
    state_names = ("agent_x", "agent_y", "block_x", "block_y", "block_angle")

    def __init__(self, image_size: int = 64) -> None:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        import gym_pusht  # noqa: F401  (registers the env)
        import gymnasium as gym

        self.env = gym.make("gym_pusht/PushT-v0", obs_type="pixels", render_mode="rgb_array",
                            observation_width=image_size, observation_height=image_size).unwrapped
        self.image_size = image_size
        self.last_info: dict = {}

    def reset(self, seed: int | None = None) -> np.ndarray:
        frame, self.last_info = self.env.reset(seed=seed)
        return np.asarray(frame, dtype=np.uint8)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, dict]:
        target = (np.clip(np.asarray(action, dtype=np.float64), -1, 1) + 1.0) * 256.0
        frame, _, _, _, info = self.env.step(target)
        self.last_info = info
        return np.asarray(frame, dtype=np.uint8), {"state": self.state(), "is_success": bool(info["is_success"]),
                                                   "coverage": float(info["coverage"])}

    def state(self) -> np.ndarray:
        a, b = self.env.agent.position, self.env.block.position
        return np.array([a[0], a[1], b[0], b[1], self.env.block.angle], dtype=np.float64)

    def set_state(self, state: np.ndarray) -> None:
        """Exact inverse of `state()`: gym-pusht's `reset_to_state` sets the block position before its angle, which
        rotates the block about its centre of mass and moves it; we set the angle first, then the position."""
        state = np.asarray(state, dtype=np.float64)
        self.env.reset(options={"reset_to_state": state})
        self.env.block.angle = float(state[4])
        self.env.block.position = (float(state[2]), float(state[3]))

    def render(self) -> np.ndarray:
        return np.asarray(self.env.get_obs(), dtype=np.uint8)

    def goal_distance(self, goal_state: np.ndarray) -> float:
        """Block position distance to the goal state's block, in workspace pixels (of 512)."""
        return float(np.linalg.norm(self.state()[2:4] - np.asarray(goal_state)[2:4]))

    def is_success(self, goal_state: np.ndarray | None = None) -> bool:
        """Without a goal state: gym-pusht's `is_success` (coverage of the fixed goal T > 0.95). With one (goal-image
        planning, as DINO-WM/LeWM evaluate Push-T): agent and block positions within 20 px (of 512) jointly and the
        block angle within pi/9 of the goal state."""
        if goal_state is None:
            return bool(self.last_info.get("is_success", False))
        s, g = self.state(), np.asarray(goal_state, dtype=np.float64)
        angle = abs((s[4] - g[4] + np.pi) % (2 * np.pi) - np.pi)
        return bool(np.linalg.norm(s[:4] - g[:4]) < 20.0 and angle < np.pi / 9)


def expert_action(env: PushT, rng: np.random.Generator) -> np.ndarray:
    """Noisy scripted pusher: aim the agent at a point just behind the block relative to the goal, then through it."""
    agent, block = env.state()[:2], env.state()[2:4]
    goal = np.array([256.0, 256.0])
    push_dir = goal - block
    push_dir = push_dir / max(np.linalg.norm(push_dir), 1e-6)
    behind = block - 40.0 * push_dir
    target = behind if np.linalg.norm(agent - behind) > 20.0 else block + 30.0 * push_dir
    target = target + rng.normal(0.0, 15.0, 2)
    return np.clip(target / 256.0 - 1.0, -1, 1)
