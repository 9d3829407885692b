"""MBOP-Trajopt (Argenson & Dulac-Arnold 2021), the prior MPC-based offline planner, as a baseline.

N trajectories are rolled out with the single-step ensemble (member k advances the k-th group of N/K), each
step's action is the BC policy's action plus Gaussian noise `sigma`, mixed with the previous plan by `beta`;
returns are the ensemble's rewards plus the terminal value; the executed plan is the exp(kappa * R)-weighted
average of the candidates (MPPI-style). Jit-compiled. With the task's healthy rule (`healthy_fn`), termination is
applied to the ensemble's predicted states exactly as in D-MPC's planner (dmpc/envs/termination.py), so both
planners get the same knowledge.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from dmpc.envs.termination import HealthyFn, terminate
from dmpc.models.model_set import ModelSet


@dataclass(frozen=True)
class MBOPConfig:
    num_samples: int = 64
    sigma: float = 0.2
    beta: float = 0.0
    kappa: float = 3.0
    gamma: float = 0.99
    value_weight: float = 1.0


def make_mbop(models: ModelSet, cfg: MBOPConfig, healthy_fn: HealthyFn | None = None):
    """`plan(params, s_norm (S,), prev_plan (F, A), key) -> (plan (F, A), returns (N,))`; `healthy_fn` on raw
    states, None for no termination."""
    mean, std = jnp.asarray(models.normalizer.mean), jnp.asarray(models.normalizer.std)
    bc, ens, value = models.models["bc"], models.models["ensemble"], models.models["value"]
    k_members = ens.members
    per = -(-cfg.num_samples // k_members)
    horizon = models.dims.horizon

    @jax.jit
    def plan(params, s_norm: jnp.ndarray, prev_plan: jnp.ndarray, key: jax.Array):
        s = jnp.broadcast_to(s_norm, (k_members, per, s_norm.shape[0]))

        def step(s, inputs):
            t, k = inputs
            a = bc(params["bc"], s) + cfg.sigma * jax.random.normal(k, (k_members, per, prev_plan.shape[1]))
            a = jnp.clip((1 - cfg.beta) * a + cfg.beta * prev_plan[t], -1, 1)
            s_next, r = ens.step(params["ensemble"], s, a)
            return s_next, (a, r, s_next)

        keys = jax.random.split(key, horizon)
        _, (acts, rews, states) = jax.lax.scan(step, s, (jnp.arange(horizon), keys))
        acts = acts.transpose(1, 2, 0, 3).reshape(k_members * per, horizon, -1)
        rews = rews.transpose(1, 2, 0).reshape(k_members * per, horizon)
        states = states.transpose(1, 2, 0, 3).reshape(k_members * per, horizon, -1)
        values = value(params["value"], states) * models.normalizer.value_scale if cfg.value_weight \
            else jnp.zeros(rews.shape[:1])
        if healthy_fn is not None:
            rews, values, _ = terminate(rews, values, healthy_fn(states * std + mean))
        returns = rews @ (cfg.gamma ** jnp.arange(horizon)) + cfg.value_weight * cfg.gamma**horizon * values
        weights = jax.nn.softmax(cfg.kappa * (returns - returns.max()) / (jnp.std(returns) + 1e-6))
        return jnp.einsum("n,nfa->fa", weights, acts), returns

    return plan
