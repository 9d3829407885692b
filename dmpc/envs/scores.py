"""D4RL-normalized score: 100 * (R - R_random) / (R_expert - R_random).

Reference returns are D4RL's `REF_MIN_SCORE` / `REF_MAX_SCORE` in `d4rl/infos.py`
(github.com/Farama-Foundation/D4RL, the gym-mujoco `*-random-v0` entries, reused by D4RL for every v0/v1/v2
dataset of the same task). The values below were checked against that file; the numbers are facts of the
benchmark, not code.
"""

from __future__ import annotations

import numpy as np

# task -> (random-policy return, expert return), D4RL infos.py REF_MIN_SCORE / REF_MAX_SCORE.
D4RL_REF_RETURNS: dict[str, tuple[float, float]] = {
    "halfcheetah": (-280.178953, 12135.0),
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
}


def task_of(env_id: str) -> str:
    """The D4RL task name of a gymnasium id: 'Hopper-v5' -> 'hopper', 'dmpc/Walker2dJump-v0' -> 'walker2d'."""
    name = env_id.split("/")[-1].lower().replace("_", "")
    for task in D4RL_REF_RETURNS:
        if name.startswith(task):
            return task
    raise KeyError(f"no D4RL reference returns for env {env_id!r}; known tasks: {', '.join(D4RL_REF_RETURNS)}")


def normalized_score(task: str, episode_return: float | np.ndarray) -> float | np.ndarray:
    """D4RL-normalized score (0 = random policy, 100 = D4RL expert) of undiscounted episode return(s)."""
    if task not in D4RL_REF_RETURNS:
        raise KeyError(f"unknown task {task!r}; expected one of {', '.join(D4RL_REF_RETURNS)}")
    low, high = D4RL_REF_RETURNS[task]
    return 100.0 * (np.asarray(episode_return, dtype=np.float64) - low) / (high - low)
