"""Push-T on gym-pusht's physics (pymunk, pygame rendering; SDL_VIDEODRIVER=dummy without a display), driven the
way stable-worldmodel's `swm/PushT-v1` drives it (stable_worldmodel/envs/pusht/env.py).

- Action (2,) in [-1, 1]^2 is *relative*: the agent's PD target is its position + 100 * action (swm: `relative=True`,
  `action_scale = 100`), so a zero action holds the agent still. The PD gains, 10 Hz control and 100 Hz physics are
  gym-pusht's, which are the same numbers as swm's (k_p 100, k_v 20, dt 0.01).
- State (7,): agent (x, y), block (x, y, angle mod 2 pi), agent velocity (vx, vy), in workspace pixels of 512 (swm's
  `_get_obs` layout). `set_state` is its exact inverse (gym-pusht's own `reset_to_state` sets the block position
  before its angle, which rotates the block about its centre of mass and moves it).
- Success with a goal state (the planning protocol): agent and block positions jointly within 20 px (the norm of the
  4-vector) and block angle within pi/9, swm's `eval_state`; the evaluation checks it after every env step.

`expert_action` is our scripted pusher (the official data, `pusht_expert_train`, is a recorded dataset we cannot
regenerate): it pushes the T toward a target pose by choosing a contact point on the block's outline whose push moves
the block's centre toward the target and turns it the right way, walking around the block to reach it.
"""

from __future__ import annotations

import os

import numpy as np

ACTION_SCALE = 100.0  # swm pusht env.py: action_scale
AGENT_RADIUS = 15.0  # gym-pusht add_circle(..., 15)
SUCCESS_POS_PX = 20.0  # swm pusht env.py eval_state
SUCCESS_ANGLE = np.pi / 9
BLOCK_COLOR = (119, 136, 153, 255)  # gym-pusht LightSlateGray
RECOLOR = (220, 60, 60, 255)


class PushT:
    name = "push_t"
    action_dim = 2
    state_names = ("agent_x", "agent_y", "block_x", "block_y", "block_angle", "agent_vx", "agent_vy")
    probe_names = ("agent_x", "agent_y", "block_x", "block_y", "block_angle")

    def __init__(self, image_size: int = 64, render: bool = True) -> None:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        import gym_pusht  # noqa: F401  (registers the env)
        import gymnasium as gym

        self.env = gym.make("gym_pusht/PushT-v0", obs_type="pixels" if render else "state",
                            render_mode="rgb_array", observation_width=image_size,
                            observation_height=image_size).unwrapped
        self.image_size = image_size
        self.rendering = render
        self.block_color = BLOCK_COLOR

    def reset(self, seed: int | None = None) -> np.ndarray | None:
        self.env.reset(seed=seed)
        self.block_color = BLOCK_COLOR
        self._paint()
        return self.render()

    def step(self, action: np.ndarray, render: bool = True) -> np.ndarray | None:
        """One env step; gym-pusht renders its pixel observation inside its step either way."""
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        target = np.asarray(self.env.agent.position, dtype=np.float64) + ACTION_SCALE * a
        self.env.step(target)
        return self.render() if render else None

    def state(self) -> np.ndarray:
        a, b, v = self.env.agent.position, self.env.block.position, self.env.agent.velocity
        return np.array([a[0], a[1], b[0], b[1], self.env.block.angle % (2 * np.pi), v[0], v[1]], dtype=np.float64)

    def set_state(self, state: np.ndarray) -> None:
        state = np.asarray(state, dtype=np.float64)
        self.env.reset(options={"reset_to_state": state[:5]})
        self.env.block.angle = float(state[4])
        self.env.block.position = (float(state[2]), float(state[3]))
        self.env.block.velocity = (0.0, 0.0)
        self.env.block.angular_velocity = 0.0
        self.env.agent.velocity = (float(state[5]), float(state[6])) if len(state) > 5 else (0.0, 0.0)
        self._paint()

    def render(self) -> np.ndarray | None:
        if not self.rendering:
            return None
        return np.asarray(self.env._render(), dtype=np.uint8)

    def recolor(self) -> None:
        """Colour-change event (surprise): the T block turns red from now on."""
        self.block_color = RECOLOR
        self._paint()

    def teleport_state(self, rng: np.random.Generator) -> np.ndarray:
        """Teleport event: the block jumps >= 100 px to a random position (agent unchanged)."""
        s = self.state()
        while True:
            xy = rng.uniform(140, 370, 2)
            if np.linalg.norm(xy - s[2:4]) >= 100:
                s[2:4] = xy
                return s

    def goal_distance(self, goal_state: np.ndarray) -> float:
        """Norm of the agent + block position error (px of 512), the quantity the success rule thresholds."""
        return float(np.linalg.norm(self.state()[:4] - np.asarray(goal_state)[:4]))

    def is_success(self, goal_state: np.ndarray) -> bool:
        s, g = self.state(), np.asarray(goal_state, dtype=np.float64)
        angle = abs(s[4] - g[4]) % (2 * np.pi)
        angle = min(angle, 2 * np.pi - angle)
        return bool(np.linalg.norm(s[:4] - g[:4]) < SUCCESS_POS_PX and angle < SUCCESS_ANGLE)

    def _paint(self) -> None:
        for shape in self.env.block.shapes:
            shape.color = self.block_color


class PushTExpert:
    """Scripted pusher toward random target poses; `action()` -> (2,) relative action in [-1, 1].

    Each target pose (block origin x, y, angle) is drawn inside the workspace; when the block reaches it (centre
    within 10 px, angle within 0.1 rad) or after `patience` steps, a new one is drawn. `noise` (px) perturbs the
    agent's PD target, so the demonstrations are diverse and not perfectly smooth."""

    def __init__(self, env: PushT, rng: np.random.Generator, noise: float = 8.0, patience: int = 120) -> None:
        self.env, self.rng, self.noise, self.patience = env, rng, noise, patience
        self.outline, self.points, self.normals = _local_geometry(env.env.block)
        self.target = self._sample_target()
        self.steps_on_target = 0
        self.contact: tuple[np.ndarray, np.ndarray] | None = None  # (point, outward normal) in body coordinates
        self.reached = 0

    def action(self) -> np.ndarray:
        body = self.env.env.block
        agent = np.asarray(self.env.env.agent.position, dtype=np.float64)
        com, com_goal, e_angle = self._pose_error(body)
        e_com = com_goal - com
        self.steps_on_target += 1
        if (np.linalg.norm(e_com) < 10 and abs(e_angle) < 0.1) or self.steps_on_target > self.patience:
            self.reached += int(self.steps_on_target <= self.patience)
            self.target, self.steps_on_target, self.contact = self._sample_target(), 0, None
            com, com_goal, e_angle = self._pose_error(body)
            e_com = com_goal - com
        points = np.asarray(body.position, dtype=np.float64) + self.points @ _rotation(body.angle).T
        normals = self.normals @ _rotation(body.angle).T
        scores = _push_scores(points, normals, com, e_com, e_angle)
        best = int(np.argmax(scores))
        if self.contact is not None:
            cur_p, cur_n = (_to_world(body, self.contact[0]), _rotate(self.contact[1], body.angle))
            cur_score = float(_push_scores(cur_p[None], cur_n[None], com, e_com, e_angle)[0])
            if cur_score < 0.15 or scores[best] > cur_score + 0.35 or np.linalg.norm(agent - cur_p) > 45:
                self.contact = None
            else:
                target = cur_p - 25.0 * cur_n
                return self._to_action(agent, target)
        p, n = points[best], normals[best]
        approach = p + (AGENT_RADIUS + 8.0) * n
        if np.linalg.norm(agent - approach) < 10.0:
            self.contact = (_to_local(body, p), _rotate(n, -body.angle))
            return self._to_action(agent, p - 25.0 * n)
        outline = np.asarray(body.position, dtype=np.float64) + self.outline @ _rotation(body.angle).T
        return self._to_action(agent, _detour(outline, com, agent, approach))

    def _pose_error(self, body) -> tuple[np.ndarray, np.ndarray, float]:
        cog = np.asarray(body.center_of_gravity, dtype=np.float64)
        com = _to_world(body, cog)
        com_goal = self.target[:2] + _rotate(cog, self.target[2])
        e_angle = float((self.target[2] - body.angle + np.pi) % (2 * np.pi) - np.pi)
        return com, com_goal, e_angle

    def _to_action(self, agent: np.ndarray, target: np.ndarray) -> np.ndarray:
        target = target + self.rng.normal(0.0, self.noise, 2)
        return np.clip((target - agent) / ACTION_SCALE, -1.0, 1.0)

    def _sample_target(self) -> np.ndarray:
        if self.rng.random() < 0.25:
            return np.array([256.0, 256.0, np.pi / 4])  # gym-pusht's goal pose
        return np.array([*self.rng.uniform(150, 360, 2), self.rng.uniform(-np.pi, np.pi)])


def _rotate(v: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _to_world(body, local: np.ndarray) -> np.ndarray:
    return np.asarray(body.position, dtype=np.float64) + _rotate(local, body.angle)


def _to_local(body, world: np.ndarray) -> np.ndarray:
    return _rotate(world - np.asarray(body.position, dtype=np.float64), -body.angle)


def _rotation(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def _local_geometry(body, spacing: float = 10.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The T's outline (V, 2) in body coordinates, and contact candidates along it every `spacing` px away from the
    corners with their outward unit normals ((N, 2) each), also in body coordinates (the block is rigid)."""
    from shapely.geometry import Point, Polygon
    from shapely.ops import unary_union

    polys = [Polygon([tuple(v) for v in s.get_vertices()]) for s in body.shapes]
    # the bar and the stem only touch: grow them a little, join, shrink back, so the outline is one polygon
    outline = unary_union([p.buffer(0.5, join_style=2) for p in polys]).buffer(-0.5, join_style=2)
    coords = np.asarray(outline.exterior.coords)
    points, normals = [], []
    for a, b in zip(coords[:-1], coords[1:], strict=True):
        edge = b - a
        length = float(np.linalg.norm(edge))
        if length < 20:
            continue
        tangent = edge / length
        normal = np.array([tangent[1], -tangent[0]])
        if outline.contains(Point(*((a + b) / 2 + 2.0 * normal))):
            normal = -normal
        for d in np.arange(8.0, length - 7.0, spacing):
            points.append(a + d * tangent)
            normals.append(normal)
    return coords, np.array(points), np.array(normals)


def _push_scores(points: np.ndarray, normals: np.ndarray, com: np.ndarray, e_com: np.ndarray,
                 e_angle: float) -> np.ndarray:
    """How well pushing at each contact (along -normal) moves the centre toward the target and turns the block the
    right way, weighted by how far off position and angle still are."""
    push = -normals
    dist = float(np.linalg.norm(e_com))
    translate = push @ (e_com / max(dist, 1e-6))
    r = points - com
    torque = (r[:, 0] * push[:, 1] - r[:, 1] * push[:, 0]) / 60.0
    rotate = np.clip(np.sign(e_angle) * torque, -1.0, 1.0)
    w_pos, w_rot = min(dist / 40.0, 1.0), min(abs(e_angle) / 0.4, 1.0)
    return w_pos * translate + w_rot * rotate


def _detour(outline: np.ndarray, com: np.ndarray, agent: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """Next waypoint from the agent to `goal` that keeps the agent's disk off the block (outline (V, 2), world px):
    straight when the segment is clear, else along a circle around the block's centre, at most 40 degrees per step
    toward the goal."""
    from shapely.geometry import LineString, Polygon

    if Polygon(outline).distance(LineString([agent, goal])) > AGENT_RADIUS + 2.0:
        return goal
    radius = max(float(np.linalg.norm(outline - com, axis=1).max()) + AGENT_RADIUS + 10.0,
                 float(np.linalg.norm(agent - com)))
    phi_a = np.arctan2(*(agent - com)[::-1])
    phi_g = np.arctan2(*(goal - com)[::-1])
    delta = (phi_g - phi_a + np.pi) % (2 * np.pi) - np.pi
    phi = phi_a + np.clip(delta, -np.radians(40), np.radians(40))
    return com + radius * np.array([np.cos(phi), np.sin(phi)])


def block_pose_coverage(states: np.ndarray, bins: tuple[int, int, int] = (8, 8, 8)) -> dict:
    """Coverage of block poses in a dataset: states (..., 7) -> fraction of (x, y, angle) bins visited (x, y over
    [0, 512], angle over [0, 2 pi)), the mean block displacement per episode (px) and the fraction of steps in which
    the block moved (> 0.5 px or > 0.01 rad)."""
    flat = states.reshape(-1, states.shape[-1])
    ix = np.clip((flat[:, 2] / 512 * bins[0]).astype(int), 0, bins[0] - 1)
    iy = np.clip((flat[:, 3] / 512 * bins[1]).astype(int), 0, bins[1] - 1)
    ia = np.clip(((flat[:, 4] % (2 * np.pi)) / (2 * np.pi) * bins[2]).astype(int), 0, bins[2] - 1)
    occupied = len(set(zip(ix.tolist(), iy.tolist(), ia.tolist(), strict=True)))
    eps = states.reshape(-1, *states.shape[-2:])
    step = np.linalg.norm(np.diff(eps[:, :, 2:4], axis=1), axis=-1)
    turn = np.abs((np.diff(eps[:, :, 4], axis=1) + np.pi) % (2 * np.pi) - np.pi)
    return {"block_pose_bins": list(bins), "block_pose_coverage": occupied / int(np.prod(bins)),
            "block_path_px_per_episode": float(step.sum(1).mean()),
            "block_moving_fraction": float(((step > 0.5) | (turn > 0.01)).mean())}
