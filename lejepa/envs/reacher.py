"""DeepMind Control Reacher (`dm_control.suite` 'reacher'), set up as stable-worldmodel's `swm/ReacherDMControl-v0`
with task `qpos_match` (stable_worldmodel/envs/dmcontrol/reacher.py, custom_tasks/reacher.py, dmcontrol.py):

- the suite's reacher with the small target (0.015, swm `_SMALL_TARGET`), the target drawn invisible (swm
  `render_target` 0): the goal image shows the arm, not a target;
- one env step = 2 control steps of 0.02 s with the same action (swm `DMControlWrapper.action_repeat = 2`), actions
  in [-1, 1]^2, camera 0;
- success with a goal state: every joint within 0.05 rad of the goal's joint angles (swm
  `_DEFAULT_QPOS_THRESHOLD`, raw qpos difference as there).

State (8,): joint angles q0, q1, joint velocities, fingertip (x, y), target (x, y); `set_state` restores angles and
velocities. The official data (`dmc/reacher_random`) come from a uniform random policy (swm
scripts/data/collect_reacher.py: `RandomPolicy`).

dm_control 1.0.50 (the only release on PyPI here) needs mujoco 3.17.0 and fails to load a model on mujoco 4.0.0, which
the venv holds for the other packages; `make lejepa-mujoco-site` installs mujoco 3.17.0 into
`data/lejepa/mujoco_site`, and the Reacher and Cube commands run with it first on PYTHONPATH.
"""

from __future__ import annotations

import os

import numpy as np

QPOS_THRESHOLD = 0.05  # swm custom_tasks/reacher.py _DEFAULT_QPOS_THRESHOLD
ACTION_REPEAT = 2  # swm dmcontrol.py DMControlWrapper.action_repeat
SMALL_TARGET = 0.015  # swm reacher.py _SMALL_TARGET (task qpos_match)
RECOLOR = (0.2, 0.4, 0.9, 1.0)


class DMCUnavailable(RuntimeError):
    """dm_control cannot load a model with the mujoco on the path."""


class Reacher:
    name = "reacher"
    action_dim = 2
    state_names = ("q0", "q1", "v0", "v1", "tip_x", "tip_y", "target_x", "target_y")
    probe_names = ("q0", "q1", "tip_x", "tip_y")

    def __init__(self, image_size: int = 64) -> None:
        os.environ.setdefault("MUJOCO_GL", "egl")
        try:
            from dm_control import suite

            self.env = suite.load("reacher", "hard", task_kwargs={"random": 0})
        except (ImportError, AttributeError) as err:
            import mujoco

            raise DMCUnavailable(
                f"dm_control could not load the reacher with mujoco {mujoco.__version__} ({err}); run "
                f"`make lejepa-mujoco-site` and put data/lejepa/mujoco_site first on PYTHONPATH") from err
        self.physics = self.env.physics
        self.image_size = image_size
        self.physics.named.model.geom_size["target", 0] = SMALL_TARGET
        self.physics.named.model.geom_rgba["target", 3] = 0.0
        self.arm_rgba = self.physics.named.model.mat_rgba["self"].copy()

    def reset(self, seed: int | None = None) -> np.ndarray:
        self.physics.named.model.mat_rgba["self"] = self.arm_rgba
        if seed is not None:
            self.env.task._random = np.random.RandomState(seed)
        self.env.reset()
        return self.render()

    def step(self, action: np.ndarray, render: bool = True) -> np.ndarray | None:
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        for _ in range(ACTION_REPEAT):
            self.env.step(a)
        return self.render() if render else None

    def state(self) -> np.ndarray:
        d = self.physics.named.data
        return np.concatenate([self.physics.data.qpos[:2], self.physics.data.qvel[:2], d.geom_xpos["finger", :2],
                               d.geom_xpos["target", :2]]).astype(np.float64)

    def set_state(self, state: np.ndarray) -> None:
        state = np.asarray(state, dtype=np.float64)
        with self.physics.reset_context():
            self.physics.data.qpos[:2] = state[:2]
            self.physics.data.qvel[:2] = state[2:4]

    def render(self) -> np.ndarray:
        return np.ascontiguousarray(self.physics.render(self.image_size, self.image_size, camera_id=0),
                                    dtype=np.uint8)

    def recolor(self) -> None:
        """Colour-change event (surprise): the arm's material turns blue from now on."""
        self.physics.named.model.mat_rgba["self"] = RECOLOR

    def teleport_state(self, rng: np.random.Generator) -> np.ndarray:
        """Teleport event: both joint angles jump by 1-2.5 rad (velocities kept)."""
        s = self.state()
        s[:2] = s[:2] + rng.choice([-1.0, 1.0], 2) * rng.uniform(1.0, 2.5, 2)
        s[1] = np.clip(s[1], -2.7, 2.7)  # the wrist's range is +-160 degrees
        return s

    def goal_distance(self, goal_state: np.ndarray) -> float:
        """Largest joint-angle error to the goal (rad), the quantity the success rule thresholds."""
        return float(np.abs(self.physics.data.qpos[:2] - np.asarray(goal_state)[:2]).max())

    def is_success(self, goal_state: np.ndarray) -> bool:
        return bool(np.all(np.abs(self.physics.data.qpos[:2] - np.asarray(goal_state)[:2]) < QPOS_THRESHOLD))


class ReacherRandomPolicy:
    """Uniform i.i.d. actions in [-1, 1]^2 (swm `RandomPolicy`: `action_space.sample()`)."""

    def __init__(self, env: Reacher, rng: np.random.Generator) -> None:
        self.rng = rng

    def action(self) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, 2)
