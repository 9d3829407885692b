"""The true-simulator replay diagnostic: how well the planner's own candidates are predicted and ranked.

At a few states s_t that the closed-loop planner visits (every `every` steps, resetting after an episode ends), the
planner draws its N candidates (actions a_{t:t+F-1}, predicted states, score), and each candidate's actions are
replayed in the real simulator from s_t (`env.unwrapped.set_state(qpos, qvel)`: the exact MuJoCo state, not the
observation). With the replay's rewards r_k, states s*_k and the env's own `terminated`, per state:

    true return   R_n = sum_k gamma^k alive*_k r_k  (alive*_k = 1 until the step the env terminates, included)
    rank_corr     Spearman(score_n, R_n); rank_corr_reward: the same with the predicted-reward part of the score
    dyn_error_k   sqrt(mean_d ((s_k - s*_k) / std_d)^2), std = the model normalizer's per-dim state std, averaged
                  over candidates whose replay is still alive at k (k = 1..F)
    spread        per action dim, the std over candidates of the first action a_t
    terminated    fraction of candidates whose replay terminates within F steps (predicted: the planner's flag)
    returns       the true return of the planner's choice (argmax score), the candidates' mean and their best

and over states (`aggregate`): means (dyn_error pooled over all alive candidate-steps), next to the behaviour
data's per-dim action std. `replay_metrics` and `aggregate` are pure NumPy; `replay` steps the simulator;
`replay_diagnostic` drives a controller and takes the candidates from `candidates_fn`, so the same code runs for
D-MPC (`dmpc_candidates`) and for an oracle in the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import rankdata

from dmpc.controllers import DMPCController


@dataclass(frozen=True)
class SimState:
    """The exact simulator state at a planning step."""

    qpos: np.ndarray
    qvel: np.ndarray


@dataclass(frozen=True)
class Candidates:
    """N candidate plans as the planner saw them: actions (N, F, A), predicted raw states (N, F, S), the ranked
    `scores` (N,), their predicted-reward part `reward_scores` (N,), predicted termination (N,) bool."""

    actions: np.ndarray
    states: np.ndarray
    scores: np.ndarray
    reward_scores: np.ndarray
    terminated: np.ndarray


CandidatesFn = Callable[[SimState, jax.Array], Candidates]


def replay_diagnostic(env, replay_env, controller, candidates_fn: CandidatesFn, *, states: int, every: int,
                      seed: int, gamma: float, state_std: np.ndarray, behaviour_std: np.ndarray) -> dict:
    """Run `controller` (reset(obs), act(obs)) in `env` from reset(seed); at every `every`-th step of an episode
    take `candidates_fn(sim state, key)` and replay them in `replay_env` (another instance of the same env);
    `states` such states in all. Returns `aggregate` of the per-state `replay_metrics`."""
    per_state, episode, t = [], 0, 0
    obs, _ = env.reset(seed=seed)
    controller.reset(obs)
    replay_env.reset(seed=seed)
    base_key = jax.random.key(seed)
    while len(per_state) < states:
        action = controller.act(obs)
        if t % every == 0:
            sim = SimState(env.unwrapped.data.qpos.copy(), env.unwrapped.data.qvel.copy())
            cands = candidates_fn(sim, jax.random.fold_in(base_key, len(per_state)))
            true_states, true_rewards, true_terminated = replay(replay_env, sim, cands.actions)
            per_state.append(replay_metrics(cands, true_states, true_rewards, true_terminated, state_std, gamma))
        obs, _, terminated, truncated, _ = env.step(action)
        t += 1
        if terminated or truncated:
            episode, t = episode + 1, 0
            obs, _ = env.reset(seed=seed + episode)
            controller.reset(obs)
    return aggregate(per_state, behaviour_std)


def dmpc_candidates(controller: DMPCController) -> CandidatesFn:
    """The candidates of a D-MPC controller's planner at its current history (the state is in the history)."""
    gamma, horizon = controller.cfg.gamma, controller.models.dims.horizon
    discounts = gamma ** np.arange(horizon)

    def candidates(sim: SimState, key: jax.Array) -> Candidates:
        plan = controller.plan_fn(controller.models.params, jnp.asarray(np.stack(controller.hist)), key)
        rewards = np.asarray(plan.rewards, np.float64)
        return Candidates(np.asarray(plan.actions), controller.models.normalizer.denorm(np.asarray(plan.states)),
                          np.asarray(plan.scores), rewards @ discounts, np.asarray(plan.terminated))

    return candidates


def replay(env, sim: SimState, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step each candidate's actions (N, F, A) in `env` from `sim` (the sim keeps going after a termination).
    Returns observations (N, F, S), rewards (N, F) and the env's `terminated` flags (N, F) bool."""
    n, horizon, _ = actions.shape
    states, rewards, terminated = [], np.zeros((n, horizon)), np.zeros((n, horizon), bool)
    for i in range(n):
        env.unwrapped.set_state(sim.qpos, sim.qvel)
        rows = []
        for k in range(horizon):
            obs, rewards[i, k], terminated[i, k], _, _ = env.step(actions[i, k])
            rows.append(obs)
        states.append(rows)
    return np.asarray(states, np.float64), rewards, terminated


def replay_metrics(cands: Candidates, true_states: np.ndarray, true_rewards: np.ndarray,
                   true_terminated: np.ndarray, state_std: np.ndarray, gamma: float) -> dict:
    """The per-state quantities of the module docstring (pure). Shapes as in `Candidates` and `replay`."""
    horizon = true_rewards.shape[1]
    alive = np.concatenate([np.ones_like(true_terminated[:, :1], float),
                            np.cumprod(~true_terminated[:, :-1], axis=1)], axis=1)
    true_return = (true_rewards * alive) @ gamma ** np.arange(horizon)
    err = np.sqrt(np.mean(((cands.states - true_states) / state_std) ** 2, axis=-1))
    return {"candidates": len(true_return), "rank_corr": spearman(cands.scores, true_return),
            "rank_corr_reward": spearman(cands.reward_scores, true_return),
            "dyn_error_sum": (err * alive).sum(0), "dyn_error_count": alive.sum(0),
            "first_action_std": cands.actions[:, 0].std(0),
            "terminated": float(true_terminated.any(1).mean()),
            "predicted_terminated": float(np.mean(cands.terminated)),
            "chosen_return": float(true_return[np.argmax(cands.scores)]),
            "mean_return": float(true_return.mean()), "best_return": float(true_return.max())}


def aggregate(per_state: list[dict], behaviour_std: np.ndarray) -> dict:
    """Means over states of `replay_metrics` (pure); JSON-ready lists."""
    def mean(key):
        values = np.asarray([m[key] for m in per_state], np.float64)
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")

    dyn = np.sum([m["dyn_error_sum"] for m in per_state], 0) / np.maximum(
        np.sum([m["dyn_error_count"] for m in per_state], 0), 1)
    spread = np.mean([m["first_action_std"] for m in per_state], 0)
    behaviour_std = np.asarray(behaviour_std, np.float64)
    return {"states": len(per_state), "candidates": per_state[0]["candidates"],
            "rank_corr": mean("rank_corr"), "rank_corr_reward": mean("rank_corr_reward"),
            "dyn_error": dyn.tolist(), "proposal_std": spread.tolist(), "behaviour_std": behaviour_std.tolist(),
            "spread_ratio": float(spread.mean() / max(behaviour_std.mean(), 1e-12)),
            "terminated_fraction": mean("terminated"), "predicted_terminated_fraction": mean("predicted_terminated"),
            "chosen_return": mean("chosen_return"), "mean_return": mean("mean_return"),
            "best_return": mean("best_return")}


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); nan when either input is constant."""
    rx, ry = rankdata(x) - (len(x) + 1) / 2, rankdata(y) - (len(y) + 1) / 2
    denom = np.sqrt((rx**2).sum() * (ry**2).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")
