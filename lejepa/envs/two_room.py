"""Two-Room: a point mass navigating between two rooms through a door, rendered in NumPy.

The arena is the unit square split by a vertical wall at x = 0.5 with a door of height `door` centred at y = 0.5.
State: the agent's position (x, y). Action (2,) in [-1, 1]^2 moves the agent by `action * max_step`; a move that
would cross the wall outside the door stops at the wall. Frames are (S, S, 3) uint8: dark floor, grey walls, the
agent as a coloured disk. Success: the agent ends within `success_radius` of the goal position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FLOOR = np.array([20, 20, 30], dtype=np.uint8)
WALL = np.array([150, 150, 150], dtype=np.uint8)
AGENT = np.array([240, 80, 40], dtype=np.uint8)


@dataclass
class TwoRoomConfig:
    image_size: int = 64
    max_step: float = 0.1
    door: float = 0.2
    wall_half_width: float = 0.02
    agent_radius: float = 0.1
    success_radius: float = 0.1


class TwoRoom:
    """reset(seed) -> frame; step(action) -> (frame, info); state() -> (x, y); set_state(pos)."""

    name = "two_room"
    action_dim = 2
    state_names = ("x", "y")

    def __init__(self, cfg: TwoRoomConfig | None = None, **overrides) -> None:
        self.cfg = cfg or TwoRoomConfig(**overrides)
        self.agent_color = AGENT.copy()
        self.rng = np.random.default_rng(0)
        self.pos = np.array([0.25, 0.5])
        self._background = self._draw_background()

    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.agent_color = AGENT.copy()
        self.pos = self.sample_free_position(self.rng)
        return self.render()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, dict]:
        self.pos = self.move(self.pos, np.asarray(action, dtype=np.float64))
        return self.render(), {"state": self.state()}

    def state(self) -> np.ndarray:
        return self.pos.copy()

    def set_state(self, pos: np.ndarray) -> None:
        self.pos = np.asarray(pos, dtype=np.float64).copy()

    def render(self) -> np.ndarray:
        return self.render_positions(self.pos[None], self.agent_color)[0]

    def is_success(self, goal_state: np.ndarray) -> bool:
        return bool(np.linalg.norm(self.pos - goal_state) < self.cfg.success_radius)

    def move(self, pos: np.ndarray, action: np.ndarray) -> np.ndarray:
        """Next position(s) from pos (..., 2) under action (..., 2), with wall collisions."""
        c = self.cfg
        step = np.clip(action, -1.0, 1.0) * c.max_step
        new = np.clip(pos + step, c.agent_radius, 1.0 - c.agent_radius)
        lo, hi = 0.5 - c.wall_half_width - c.agent_radius, 0.5 + c.wall_half_width + c.agent_radius
        in_door = np.abs(new[..., 1] - 0.5) < (c.door / 2 - c.agent_radius / 2)
        was_left, was_right = pos[..., 0] <= lo, pos[..., 0] >= hi
        blocked = ~in_door & (new[..., 0] > lo) & (new[..., 0] < hi)
        new[..., 0] = np.where(blocked & was_left, lo, np.where(blocked & was_right, hi, new[..., 0]))
        return new

    def sample_free_position(self, rng: np.random.Generator, room: int | None = None) -> np.ndarray:
        """A uniform position inside a room (0 left, 1 right, None either), away from walls."""
        c = self.cfg
        room = int(rng.integers(2)) if room is None else room
        margin = c.agent_radius + 0.01
        x_lo, x_hi = (margin, 0.5 - c.wall_half_width - margin) if room == 0 else \
            (0.5 + c.wall_half_width + margin, 1.0 - margin)
        return np.array([rng.uniform(x_lo, x_hi), rng.uniform(margin, 1.0 - margin)])

    def render_positions(self, positions: np.ndarray, color: np.ndarray | None = None) -> np.ndarray:
        """Frames (N, S, S, 3) uint8 for agent positions (N, 2) (vectorised; used for datasets and goals)."""
        s = self.cfg.image_size
        color = AGENT if color is None else color
        centers = (np.arange(s) + 0.5) / s
        dx = centers[None, None, :] - positions[:, 0, None, None]
        dy = centers[None, :, None] - positions[:, 1, None, None]
        disk = (dx**2 + dy**2) <= self.cfg.agent_radius**2  # (N, S(y), S(x))
        frames = np.broadcast_to(self._background, (len(positions), s, s, 3)).copy()
        frames[disk] = color
        return np.ascontiguousarray(frames[:, ::-1])  # y up

    def _draw_background(self) -> np.ndarray:
        c, s = self.cfg, self.cfg.image_size
        centers = (np.arange(s) + 0.5) / s
        xx, yy = np.meshgrid(centers, centers)
        wall = (np.abs(xx - 0.5) < c.wall_half_width + 0.5 / s) & (np.abs(yy - 0.5) >= c.door / 2)
        border = (xx < 1.0 / s) | (xx > 1 - 1.0 / s) | (yy < 1.0 / s) | (yy > 1 - 1.0 / s)
        frame = np.empty((s, s, 3), dtype=np.uint8)
        frame[:] = FLOOR
        frame[wall | border] = WALL
        return frame


def expert_action(env: TwoRoom, pos: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """Scripted expert: head for the goal; when it is in the other room, first to the door's approach point on this
    side, then straight through the door to the approach point on the far side."""
    left, goal_left = pos[0] < 0.5, goal[0] < 0.5
    target = goal
    if left != goal_left:
        side = -1.0 if left else 1.0
        near = np.array([0.5 + side * 0.12, 0.5])
        lined_up = abs(pos[1] - 0.5) < 0.8 * (env.cfg.door / 2 - env.cfg.agent_radius / 2) and abs(pos[0] - 0.5) < 0.14
        target = np.array([0.5 - side * 0.12, 0.5]) if lined_up else near
    delta = target - pos
    dist = float(np.linalg.norm(delta))
    return np.clip(delta / max(dist, 1e-9) * min(1.0, dist / env.cfg.max_step), -1.0, 1.0)
