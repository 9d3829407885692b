"""Environments: gymnasium MuJoCo v5 tasks, the Walker2d jump / broken-ankle variants, D4RL-normalized scores.

Importing this package registers `dmpc/Walker2dJump-v0` and `dmpc/Walker2dBrokenAnkle-v0` with gymnasium.
"""

from __future__ import annotations

from dmpc.envs.scores import D4RL_REF_RETURNS, normalized_score, task_of
from dmpc.envs.variants import JumpReward, broken_ankle_xml, jump_reward

TASK_ENV_IDS = {"halfcheetah": "HalfCheetah-v5", "hopper": "Hopper-v5", "walker2d": "Walker2d-v5",
                "walker2d_jump": "dmpc/Walker2dJump-v0", "walker2d_broken_ankle": "dmpc/Walker2dBrokenAnkle-v0"}


def register_variants() -> None:
    """Register the Walker2d variants with gymnasium (idempotent)."""
    import gymnasium as gym

    if "dmpc/Walker2dJump-v0" not in gym.registry:
        gym.register("dmpc/Walker2dJump-v0", entry_point="dmpc.envs.variants:make_walker_jump",
                     max_episode_steps=1000)
    if "dmpc/Walker2dBrokenAnkle-v0" not in gym.registry:
        gym.register("dmpc/Walker2dBrokenAnkle-v0", entry_point="dmpc.envs.variants:make_walker_broken_ankle",
                     max_episode_steps=1000)


def make_env(task: str, max_episode_steps: int | None = None, **kwargs):
    """A gymnasium env for a task name (see TASK_ENV_IDS) or a gymnasium id."""
    import gymnasium as gym

    register_variants()
    env_id = TASK_ENV_IDS.get(task, task)
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    return gym.make(env_id, **kwargs)


__all__ = ["D4RL_REF_RETURNS", "JumpReward", "TASK_ENV_IDS", "broken_ankle_xml", "jump_reward", "make_env",
           "normalized_score", "register_variants", "task_of"]
