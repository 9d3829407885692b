"""The snapshot ladder of a behaviour-policy run, and the rule that picks its expert and medium policies.

A rung is one actor snapshot and its evaluation: {step, return_mean, return_std, returns, lengths, normalized}
(D4RL-normalized mean return, envs/scores.py). Every rung stays in the ladder; an actor *file* is kept only for

    the best rung (highest mean return, earliest on ties)                        -> the expert candidate
    the first rung in each bin of `bin_width` normalized points below KEEP_BELOW -> the medium candidates

A rung that is neither is never needed again (the best only moves to later rungs; being first in a bin is for
good), so its file is dropped as soon as it is neither. This bounds the files to <= KEEP_BELOW / bin_width + 1
per task, whatever the run's length (BIN_WIDTH = 2.5 points: <= 25 files).

The rule (D4RL: "medium" is a policy at about a third of the expert):
- expert = the best rung;
- medium = the kept rung before the expert whose mean return is closest to expert return / 3 (earliest on ties).
With the bins, medium is within bin_width / 2 normalized points of the target whenever training passed it.
The acceptance levels of issue 14 are checks on the result, not part of the rule: `expert_ok` (expert >=
EXPERT_MIN normalized) and `medium_ok` (medium within [MEDIUM_MIN, MEDIUM_MAX]); an expert >= 75 puts the
target at >= 25 normalized on all three tasks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from common.errors import PaperclubError
from dmpc.envs import TASK_ENV_IDS, normalized_score, task_of

BIN_WIDTH = 2.5
KEEP_BELOW = 60.0
MEDIUM_MIN, MEDIUM_MAX = 25.0, 60.0
EXPERT_MIN = 75.0


class LevelsError(PaperclubError, ValueError):
    """A ladder cannot give the medium and expert levels (training did not improve past its first snapshot)."""


def rule(bin_width: float = BIN_WIDTH) -> str:
    return (f"expert = best snapshot by mean return over the evaluation episodes; medium = the kept snapshot "
            f"before it closest to 1/3 of the expert's return; kept = the best and the first snapshot in each "
            f"{bin_width:g}-point D4RL-normalized bin below {KEEP_BELOW:g}; expert_ok: expert >= {EXPERT_MIN:g}, "
            f"medium_ok: medium in [{MEDIUM_MIN:g}, {MEDIUM_MAX:g}] normalized")


def d4rl_task(task: str) -> str:
    return task_of(TASK_ENV_IDS.get(task, task))


def rung(task: str, step: int, returns: list[float], lengths: list[int]) -> dict[str, Any]:
    mean = float(np.mean(returns))
    return {"step": int(step), "return_mean": mean, "return_std": float(np.std(returns)),
            "normalized": float(normalized_score(d4rl_task(task), mean)),
            "returns": [float(r) for r in returns], "lengths": [int(n) for n in lengths]}


def best_rung(ladder: list[dict]) -> dict:
    return max(ladder, key=lambda r: (r["return_mean"], -r["step"]))


def kept_steps(ladder: list[dict], bin_width: float = BIN_WIDTH) -> set[int]:
    """Steps whose actor files are kept (module docstring)."""
    if not ladder:
        return set()
    keep = {best_rung(ladder)["step"]}
    seen_bins = set()
    for r in sorted(ladder, key=lambda r: r["step"]):
        if r["normalized"] < KEEP_BELOW:
            b = int(np.floor(r["normalized"] / bin_width))
            if b not in seen_bins:
                seen_bins.add(b)
                keep.add(r["step"])
    return keep


def pick_levels(task: str, ladder: list[dict], bin_width: float = BIN_WIDTH) -> dict[str, Any]:
    """{"expert": rung, "medium": rung, "medium_target_return", "expert_ok", "medium_ok"} (module docstring)."""
    if len(ladder) < 2:
        raise LevelsError(f"{task}: a ladder of {len(ladder)} snapshot(s) cannot give distinct medium and expert "
                          "levels; train longer or snapshot more often")
    expert = best_rung(ladder)
    target = expert["return_mean"] / 3.0
    keep = kept_steps(ladder, bin_width)
    candidates = [r for r in ladder if r["step"] < expert["step"] and r["step"] in keep]
    if not candidates:
        raise LevelsError(f"{task}: the best snapshot is the first (step {expert['step']}), so none before it can be "
                          "the medium level: training did not improve; train longer or with another seed")
    medium = min(candidates, key=lambda r: (abs(r["return_mean"] - target), r["step"]))
    return {"expert": expert, "medium": medium, "medium_target_return": target,
            "expert_ok": expert["normalized"] >= EXPERT_MIN,
            "medium_ok": MEDIUM_MIN <= medium["normalized"] <= MEDIUM_MAX}
