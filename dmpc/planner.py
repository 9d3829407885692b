"""D-MPC's sample-score-rank planner (paper Algorithm 1), batched over N and jit-compiled.

    actions  ~ proposal(. | history)                        (N, F, A)   N samples
    states   ~ dynamics(. | history, actions)               (N, F, S)   one joint multi-step sample each
    score    = sum_k gamma^k r(s_{t+k}, a_{t+k}, s_{t+k+1}) + value_weight * gamma^F V(states)
    plan     = actions[argmax score]                        execute its first `execute` actions, then replan

Reward modes: `reward_fn=None` scores with the learned reward model (fixed task); otherwise `reward_fn(s_next,
a) -> r` on raw (denormalized) states is passed at run time (a novel task, e.g. the Walker2d jump), with no
retraining. `rank_plans` is the pure scoring/argmax step, testable without any model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from dmpc.models.model_set import ModelSet

RewardFn = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]


@dataclass(frozen=True)
class PlannerConfig:
    num_samples: int = 64  # N
    gamma: float = 0.99
    value_weight: float = 1.0
    proposal_steps: int | None = None  # DDIM steps; None = the model's sample_steps
    dynamics_steps: int | None = None
    autoregressive: bool = False  # single-step dynamics rolled out F times (ablation)


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
                      value: Callable | None, num_samples: int, gamma: float, value_weight: float):
    """One planning step with any models (pure; jit it with the callables closed over).

    hist (H, S); propose(hist (N, H, S), key) -> actions (N, F, A); predict(hist, actions, key) -> states
    (N, F, S); reward(prev states, actions, states) -> (N, F); value(states) -> (N,).
    Returns (best plan (F, A), scores (N,), best index).
    """
    k_prop, k_dyn = jax.random.split(key)
    hists = jnp.broadcast_to(hist, (num_samples, *hist.shape))
    actions = propose(hists, k_prop)
    future = predict(hists, actions, k_dyn)
    prev = jnp.concatenate([hists[:, -1:], future[:, :-1]], axis=1)
    rewards = reward(prev, actions, future)
    values = value(future) if (value is not None and value_weight) else jnp.zeros((num_samples,))
    return rank_plans(actions, rewards, values, gamma, value_weight)


def make_planner(models: ModelSet, cfg: PlannerConfig, reward_fn: RewardFn | None = None):
    """A jit-compiled `plan(params, hist_norm (H, S), key) -> (best plan (F, A), scores (N,), best)`.

    `params` is `models.params` (a dict by model name); swapping fine-tuned dynamics needs no recompilation.
    """
    dyn_name = "dynamics_1step" if cfg.autoregressive else "dynamics"
    proposal, dynamics = models.models["proposal"], models.models[dyn_name]
    reward_model, value_model = models.models["reward"], models.models["value"]
    mean, std = jnp.asarray(models.normalizer.mean), jnp.asarray(models.normalizer.std)
    value_scale = models.normalizer.value_scale

    @jax.jit
    def plan(params, hist_norm: jnp.ndarray, key: jax.Array):
        def propose(hists, k):
            return proposal.sample(params["proposal"], hists, k, cfg.proposal_steps)

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

        return sample_score_rank(key, hist_norm, propose, predict, reward, value, cfg.num_samples, cfg.gamma,
                                 cfg.value_weight)

    return plan
