"""Two-Room: a point mass navigating between two rooms through a door, rendered in NumPy.

The arena is the unit square split by a vertical wall at x = 0.5 with a door of height `door` centred at
y = `door_center`. State: the agent's position (x, y). Action (2,) in [-1, 1]^2 moves the agent by
`action * max_step`; a move that would cross the wall outside the door stops at the wall. Frames are (S, S, 3) uint8:
dark floor, grey walls, the agent as a coloured disk. Success: the agent within `success_radius` of the goal position
(checked after every step by the planning evaluation).

The geometry is stable-worldmodel's `swm/TwoRoom-v1` (stable_worldmodel/envs/two_room/env.py, a 224 px canvas) in
units of the arena: speed 5 px / step, agent radius 7 px, wall width 10 px, one door of half-extent 14 px centred
49 px from the top edge, success within 16 px (its `terminated = dist < 16.0`), positions kept 14 px off the border.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FLOOR = np.array([20, 20, 30], dtype=np.uint8)
WALL = np.array([150, 150, 150], dtype=np.uint8)
AGENT = np.array([240, 80, 40], dtype=np.uint8)


SWM_PX = 224.0  # swm TwoRoomEnv.IMG_SIZE: its geometry below is in pixels of this canvas


@dataclass
class TwoRoomConfig:
    image_size: int = 64
    max_step: float = 5.0 / SWM_PX  # swm agent.speed init_value 5.0
    door: float = 28.0 / SWM_PX  # swm door.size init_value 14 (half-extent)
    door_center: float = 1.0 - 49.0 / SWM_PX  # swm door.position init_value 49 (image rows; ours is y-up)
    wall_half_width: float = 5.0 / SWM_PX  # swm WALL_WIDTH_DEFAULT 10
    agent_radius: float = 7.0 / SWM_PX  # swm agent.radius init_value 7
    success_radius: float = 16.0 / SWM_PX  # swm step(): terminated = dist < 16.0
    border: float = 14.0 / SWM_PX  # swm BORDER_SIZE


class TwoRoom:
    """reset(seed) -> frame; step(action) -> (frame, info); state() -> (x, y); set_state(pos)."""

    name = "two_room"
    action_dim = 2
    state_names = ("x", "y")
    probe_names = ("x", "y")

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

    def step(self, action: np.ndarray, render: bool = True) -> np.ndarray | None:
        self.pos = self.move(self.pos, np.asarray(action, dtype=np.float64))
        return self.render() if render else None

    def state(self) -> np.ndarray:
        return self.pos.copy()

    def set_state(self, pos: np.ndarray) -> None:
        self.pos = np.asarray(pos, dtype=np.float64).copy()

    def render(self) -> np.ndarray:
        return self.render_positions(self.pos[None], self.agent_color)[0]

    def is_success(self, goal_state: np.ndarray) -> bool:
        return bool(np.linalg.norm(self.pos - np.asarray(goal_state)[:2]) < self.cfg.success_radius)

    def goal_distance(self, goal_state: np.ndarray) -> float:
        return float(np.linalg.norm(self.pos - np.asarray(goal_state)[:2]))

    def recolor(self) -> None:
        """Colour-change event (surprise): the agent turns cyan from now on."""
        self.agent_color = np.array([40, 200, 240], dtype=np.uint8)

    def teleport_state(self, rng: np.random.Generator) -> np.ndarray:
        """Teleport event: the agent jumps >= 0.3 (arena units) to a free position."""
        while True:
            p = self.sample_free_position(rng)
            if np.linalg.norm(p - self.pos) >= 0.3:
                return p

    def move(self, pos: np.ndarray, action: np.ndarray) -> np.ndarray:
        """Next position(s) from pos (..., 2) under action (..., 2), with wall collisions."""
        c = self.cfg
        step = np.clip(action, -1.0, 1.0) * c.max_step
        new = np.clip(pos + step, c.agent_radius, 1.0 - c.agent_radius)
        new = np.clip(new, c.border, 1.0 - c.border)
        lo, hi = 0.5 - c.wall_half_width - c.agent_radius, 0.5 + c.wall_half_width + c.agent_radius
        in_door = np.abs(new[..., 1] - c.door_center) < (c.door / 2 - c.agent_radius / 2)
        was_left, was_right = pos[..., 0] <= lo, pos[..., 0] >= hi
        blocked = ~in_door & (new[..., 0] > lo) & (new[..., 0] < hi)
        new[..., 0] = np.where(blocked & was_left, lo, np.where(blocked & was_right, hi, new[..., 0]))
        return new

    def sample_free_position(self, rng: np.random.Generator, room: int | None = None) -> np.ndarray:
        """A uniform position inside a room (0 left, 1 right, None either), away from walls."""
        c = self.cfg
        room = int(rng.integers(2)) if room is None else room
        margin = max(c.agent_radius + 0.01, c.border)
        x_lo, x_hi = (margin, 0.5 - c.wall_half_width - c.agent_radius - 0.01) if room == 0 else \
            (0.5 + c.wall_half_width + c.agent_radius + 0.01, 1.0 - margin)
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
        wall = (np.abs(xx - 0.5) < c.wall_half_width + 0.5 / s) & (np.abs(yy - c.door_center) >= c.door / 2)
        edge = max(c.border - c.agent_radius, 1.0 / s)
        border = (xx < edge) | (xx > 1 - edge) | (yy < edge) | (yy > 1 - edge)
        frame = np.empty((s, s, 3), dtype=np.uint8)
        frame[:] = FLOOR
        frame[wall | border] = WALL
        return frame


class TwoRoomExpert:
    """Noisy scripted expert (as swm's two_room ExpertPolicy: through the door when the goal is in the other room):
    heads for a random free position, re-drawn when reached; `action()` -> (2,) in [-1, 1]."""

    def __init__(self, env: TwoRoom, rng: np.random.Generator, noise: float = 0.3) -> None:
        self.env, self.rng, self.noise = env, rng, noise
        self.goal = env.sample_free_position(rng)

    def action(self) -> np.ndarray:
        if self.env.is_success(self.goal):
            self.goal = self.env.sample_free_position(self.rng)
        a = expert_action(self.env, self.env.state(), self.goal)
        return np.clip(a + self.noise * self.rng.normal(size=2), -1.0, 1.0)


def expert_action(env: TwoRoom, pos: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """Scripted expert: head for the goal; when it is in the other room, first to the door's approach point on this
    side, then straight through the door to the approach point on the far side."""
    left, goal_left = pos[0] < 0.5, goal[0] < 0.5
    target = goal
    door_y = env.cfg.door_center
    reach = env.cfg.wall_half_width + env.cfg.agent_radius + 0.05
    if left != goal_left:
        side = -1.0 if left else 1.0
        near = np.array([0.5 + side * reach, door_y])
        lined_up = (abs(pos[1] - door_y) < 0.8 * (env.cfg.door / 2 - env.cfg.agent_radius / 2)
                    and abs(pos[0] - 0.5) < reach + 0.02)
        target = np.array([0.5 - side * reach, door_y]) if lined_up else near
    delta = target - pos
    dist = float(np.linalg.norm(delta))
    return np.clip(delta / max(dist, 1e-9) * min(1.0, dist / env.cfg.max_step), -1.0, 1.0)
