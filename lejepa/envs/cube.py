"""OGBench Cube (single cube), OGBench's own MuJoCo env (`ogbench.manipspace.envs.cube_env.CubeEnv`), with our
data, set up as stable-worldmodel's `swm/OGBCube-v0` (stable_worldmodel/envs/ogbench/cube_env.py,
scripts/plan/config/cube.yaml, scripts/data/collect_cube.py):

- `env_type='single'`, `mode='data_collection'` (the env draws a new target for the oracle when one is reached), the
  target marker hidden (`visualize_info=False`), pixels from the env's camera; action (5,) in [-1, 1]
  (end-effector x, y, z, yaw, gripper), control step 0.05 s;
- data: OGBench's Markov oracle `CubeMarkovOracle(min_norm=0.4)` with per-episode Gaussian action noise of level
  xi ~ U(0, 0.1), std (xi, xi, xi, 3 xi, 10 xi), a new target when the oracle is done (swm ogbench ExpertPolicy with
  its defaults), episodes of 200 steps (swm scripts/data/config/ogb.yaml);
- success with a goal state: the cube within 0.04 m of the goal's cube position (swm cube_env.py
  `_compute_successes` with the target set to the goal's block position, cube.yaml `set_target_pos`).

State (49,): cube position (3) and yaw, end-effector position (3), gripper opening, then the full qpos (21) and qvel
(20) that `set_state` restores. Needs dm_control (OGBench builds its scene with `dm_control.mjcf`), hence mujoco 3.17.0
(see lejepa/envs/reacher.py).
"""

from __future__ import annotations

import os

import numpy as np

SUCCESS_M = 0.04  # swm ogbench cube_env.py _compute_successes
RECOLOR = (0.1, 0.3, 0.95, 1.0)


class Cube:
    name = "cube"
    action_dim = 5
    probe_names = ("block_x", "block_y", "block_z", "block_yaw", "effector_x", "effector_y", "effector_z",
                   "gripper_opening")
    state_names = (*probe_names, *(f"qpos{i}" for i in range(21)), *(f"qvel{i}" for i in range(20)))

    def __init__(self, image_size: int = 64) -> None:
        os.environ.setdefault("MUJOCO_GL", "egl")
        from ogbench.manipspace.envs.cube_env import CubeEnv

        self.env = CubeEnv(env_type="single", ob_type="pixels", mode="data_collection", width=image_size,
                           height=image_size, terminate_at_goal=False, visualize_info=False)
        self.image_size = image_size
        self.info: dict = {}
        self.cube_rgba = None
        self.reset(0)  # OGBench compiles its model at the first reset; set_state needs it

    def reset(self, seed: int | None = None) -> np.ndarray:
        if self.cube_rgba is not None:  # undo a colour-change event
            for gid, rgba in zip(self.env._cube_geom_ids_list[0], self.cube_rgba, strict=True):
                self.env._model.geom(gid).rgba[:] = rgba
        frame, self.info = self.env.reset(seed=seed)
        self.cube_rgba = [self.env._model.geom(gid).rgba.copy() for gid in self.env._cube_geom_ids_list[0]]
        return np.asarray(frame, dtype=np.uint8)

    def step(self, action: np.ndarray, render: bool = True) -> np.ndarray | None:
        self.env._ob_type = "pixels" if render else "states"  # states: the same step without a rendering
        frame, _, _, _, self.info = self.env.step(np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0))
        self.env._ob_type = "pixels"
        return np.asarray(frame, dtype=np.uint8) if render else None

    def state(self) -> np.ndarray:
        info = self.env.compute_ob_info()
        d = self.env._data
        return np.concatenate([info["privileged/block_0_pos"], info["privileged/block_0_yaw"],
                               info["proprio/effector_pos"], info["proprio/gripper_opening"], d.qpos, d.qvel])

    def set_state(self, state: np.ndarray) -> None:
        state = np.asarray(state, dtype=np.float64)
        self.env.set_state(state[8:29].copy(), state[29:49].copy())

    def render(self) -> np.ndarray:
        return np.asarray(self.env.get_pixel_observation(), dtype=np.uint8)

    def recolor(self) -> None:
        """Colour-change event (surprise): the cube turns blue until the next reset."""
        for gid in self.env._cube_geom_ids_list[0]:
            self.env._model.geom(gid).rgba[:] = RECOLOR

    def teleport_state(self, rng: np.random.Generator) -> np.ndarray:
        """Teleport event: the cube jumps >= 0.1 m to another place on the table (resting)."""
        s = self.state()
        while True:
            xy = rng.uniform([0.3, -0.2], [0.55, 0.2])
            if np.linalg.norm(xy - s[:2]) >= 0.1:
                break
        qpos = s[8:29].copy()
        joint = self.env._model.joint("object_joint_0")
        qpos[joint.qposadr[0]: joint.qposadr[0] + 3] = [xy[0], xy[1], 0.02]
        s[8:29] = qpos
        s[29:49] = 0.0
        s[:2] = xy
        return s

    def goal_distance(self, goal_state: np.ndarray) -> float:
        return float(np.linalg.norm(self.state()[:3] - np.asarray(goal_state)[:3]))

    def is_success(self, goal_state: np.ndarray) -> bool:
        return self.goal_distance(goal_state) <= SUCCESS_M


class CubeOracle:
    """OGBench's CubeMarkovOracle with swm's noise: `action()` -> (5,) in [-1, 1]."""

    def __init__(self, env: Cube, rng: np.random.Generator, noise: float = 0.1, min_norm: float = 0.4) -> None:
        from ogbench.manipspace.oracles.markov.cube_markov import CubeMarkovOracle

        np.random.seed(int(rng.integers(2**31)))  # the oracle draws its resting pose from numpy's global RNG
        self.env, self.rng = env, rng
        self.oracle = CubeMarkovOracle(env=env.env, min_norm=min_norm)
        self.oracle.reset(None, env.info)
        self.xi = float(rng.uniform(0.0, noise))

    def action(self) -> np.ndarray:
        a = np.asarray(self.oracle.select_action(None, self.env.info), dtype=np.float64)
        xi = self.xi
        a = np.clip(a + self.rng.normal(0.0, [xi, xi, xi, 3 * xi, 10 * xi]), -1.0, 1.0)
        if self.oracle.done:
            _, info = self.env.env.set_new_target(p_stack=0.0)
            self.env.info = info
            self.oracle.reset(None, info)
        return a
