"""D-MPC's sample-score-rank planner (paper Algorithm 1), batched over N and jit-compiled.

    actions  ~ proposal(. | history)                        (N, F, A)   N samples
    states   ~ dynamics(. | history, actions)               (N, F, S)   one joint multi-step sample each
    score    = sum_k gamma^k alive_k r(s_{t+k}, a_{t+k}, s_{t+k+1}) + value_weight * gamma^F (1 - term) V(states)
    plan     = actions[argmax score]                        execute its first `execute` actions, then replan

Reward modes: `reward_fn=None` scores with the learned reward model (fixed task); otherwise `reward_fn(s_next,
a) -> r` on raw (denormalized) states is passed at run time (a novel task, e.g. the Walker2d jump), with no
retraining. Termination: with the task's healthy rule (`healthy_fn`, dmpc/envs/termination.py) on the raw predicted
states, alive_k is 0 after the first unhealthy predicted state and term = 1 for a candidate that has one (the
learned reward would otherwise keep paying the healthy bonus after a predicted fall); without it alive = 1, term = 0.
The planner returns every candidate (`Plan`), so diagnostics see exactly what it ranked; `rank_plans` is the pure
scoring/argmax step, testable without any model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from dmpc.envs.termination import HealthyFn, terminate
from dmpc.models.model_set import ModelSet

RewardFn = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]


@dataclass(frozen=True)
class PlannerConfig:
    num_samples: int = 64  # N
    gamma: float = 0.99
    value_weight: float = 1.0
    proposal_steps: int | None = None  # DDIM steps; None = the model's sample_steps
    proposal_eta: float | None = None  # DDIM eta of the proposal; None = the model's
    dynamics_steps: int | None = None
    autoregressive: bool = False  # single-step dynamics rolled out F times (ablation)


class Plan(NamedTuple):
    """All N candidates of one planning step. `states` are normalized; `rewards` (N, F) and `values` (N,) are
    after termination (unweighted values, in return units); `scores` (N,) what was ranked; `best` its argmax."""

    actions: jnp.ndarray
    states: jnp.ndarray
    rewards: jnp.ndarray
    values: jnp.ndarray
    terminated: jnp.ndarray
    scores: jnp.ndarray
    best: jnp.ndarray

    @property
    def best_actions(self) -> jnp.ndarray:
        """The chosen plan (F, A)."""
        return self.actions[self.best]


def rank_plans(actions: jnp.ndarray, rewards: jnp.ndarray, values: jnp.ndarray, gamma: float,
               value_weight: float) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Score N candidate plans and pick the best.

    actions (N, F, A), rewards (N, F), values (N,) -> (best plan (F, A), scores (N,), best index ()).
    """
    horizon = rewards.shape[1]
    discounts = gamma ** jnp.arange(horizon, dtype=rewards.dtype)
    scores = rewards @ discounts + value_weight * gamma**horizon * values
    best = jnp.argmax(scores)
    return actions[best], scores, best


def sample_score_rank(key: jax.Array, hist: jnp.ndarray, propose: Callable, predict: Callable, reward: Callable,
                      value: Callable | None, num_samples: int, gamma: float, value_weight: float,
                      healthy: Callable | None = None) -> Plan:
    """One planning step with any models (pure; jit it with the callables closed over).

    hist (H, S); propose(hist (N, H, S), key) -> actions (N, F, A); predict(hist, actions, key) -> states
    (N, F, S); reward(prev states, actions, states) -> (N, F); value(states) -> (N,); healthy(states) -> (N, F)
    bool, or None for a task that never terminates.
    """
    k_prop, k_dyn = jax.random.split(key)
    hists = jnp.broadcast_to(hist, (num_samples, *hist.shape))
    actions = propose(hists, k_prop)
    future = predict(hists, actions, k_dyn)
    prev = jnp.concatenate([hists[:, -1:], future[:, :-1]], axis=1)
    rewards = reward(prev, actions, future)
    values = value(future) if (value is not None and value_weight) else jnp.zeros((num_samples,))
    terminated = jnp.zeros((num_samples,), bool)
    if healthy is not None:
        rewards, values, terminated = terminate(rewards, values, healthy(future))
    _, scores, best = rank_plans(actions, rewards, values, gamma, value_weight)
    return Plan(actions, future, rewards, values, terminated, scores, best)


def make_planner(models: ModelSet, cfg: PlannerConfig, reward_fn: RewardFn | None = None,
                 healthy_fn: HealthyFn | None = None):
    """A jit-compiled `plan(params, hist_norm (H, S), key) -> Plan`.

    `params` is `models.params` (a dict by model name); swapping fine-tuned dynamics needs no recompilation.
    `healthy_fn` (raw states (..., S) -> bool) is the task's termination rule, None for no termination.
    """
    dyn_name = "dynamics_1step" if cfg.autoregressive else "dynamics"
    proposal, dynamics = models.models["proposal"], models.models[dyn_name]
    reward_model, value_model = models.models["reward"], models.models["value"]
    mean, std = jnp.asarray(models.normalizer.mean), jnp.asarray(models.normalizer.std)
    value_scale = models.normalizer.value_scale

    @jax.jit
    def plan(params, hist_norm: jnp.ndarray, key: jax.Array) -> Plan:
        def propose(hists, k):
            return proposal.sample(params["proposal"], hists, k, cfg.proposal_steps, cfg.proposal_eta)

        def predict(hists, actions, k):
            if cfg.autoregressive:
                return dynamics.rollout(params[dyn_name], hists, actions, k, cfg.dynamics_steps)
            return dynamics.sample(params[dyn_name], hists, actions, k, cfg.dynamics_steps)

        def reward(prev, actions, future):
            if reward_fn is None:
                return reward_model(params["reward"], prev, actions, future)
            return reward_fn(future * std + mean, actions)

        def value(future):
            return value_model(params["value"], future) * value_scale

        healthy = None if healthy_fn is None else (lambda future: healthy_fn(future * std + mean))
        return sample_score_rank(key, hist_norm, propose, predict, reward, value, cfg.num_samples, cfg.gamma,
                                 cfg.value_weight, healthy)

    return plan
