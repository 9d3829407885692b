"""Soft Actor-Critic (Haarnoja et al. 2018) in JAX: twin critics, tanh-Gaussian actor, learned temperature.

Used only to train behaviour policies for the datasets. `SACAgent.update` is one jit-compiled gradient step on
a (B, ...) batch; `act` is jit-compiled too. Parameters are plain pytrees, saved with `policy_state`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dmpc.models.mlp import MLP

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


@dataclass(frozen=True)
class SACConfig:
    hidden: tuple[int, ...] = (128, 128)
    lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    batch_size: int = 128
    init_temperature: float = 0.1


class Actor(nn.Module):
    hidden: tuple[int, ...]
    act_dim: int

    @nn.compact
    def __call__(self, obs):
        out = MLP(self.hidden, 2 * self.act_dim, activation="relu")(obs)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


class TwinCritic(nn.Module):
    hidden: tuple[int, ...]

    @nn.compact
    def __call__(self, obs, act):
        x = jnp.concatenate([obs, act], axis=-1)
        q1 = MLP(self.hidden, 1, activation="relu")(x)[..., 0]
        q2 = MLP(self.hidden, 1, activation="relu")(x)[..., 0]
        return q1, q2


def sample_tanh_gaussian(mean, log_std, key):
    """(action in (-1, 1), log-probability) of a tanh-squashed Gaussian sample."""
    std = jnp.exp(log_std)
    u = mean + std * jax.random.normal(key, mean.shape)
    logp = jnp.sum(-0.5 * ((u - mean) / std) ** 2 - log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)
    action = jnp.tanh(u)
    logp -= jnp.sum(jnp.log(1.0 - action**2 + 1e-6), axis=-1)
    return action, logp


class SACAgent:
    """Holds the SAC networks' definitions and jit-compiled update/act functions (state is a dict pytree)."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: SACConfig) -> None:
        self.cfg = cfg
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.actor = Actor(tuple(cfg.hidden), act_dim)
        self.critic = TwinCritic(tuple(cfg.hidden))
        self.opt = optax.adam(cfg.lr)
        self.target_entropy = -float(act_dim)
        self.update = jax.jit(self._update)
        self.update_many = jax.jit(self._update_many)
        self._act = jax.jit(self._act_impl, static_argnames="deterministic")

    def init(self, key) -> dict[str, Any]:
        k1, k2 = jax.random.split(key)
        obs = jnp.zeros((1, self.obs_dim))
        act = jnp.zeros((1, self.act_dim))
        actor = self.actor.init(k1, obs)
        critic = self.critic.init(k2, obs, act)
        log_alpha = jnp.log(jnp.asarray(self.cfg.init_temperature))
        return {"actor": actor, "critic": critic, "target": critic, "log_alpha": log_alpha,
                "opt_actor": self.opt.init(actor), "opt_critic": self.opt.init(critic),
                "opt_alpha": self.opt.init(log_alpha)}

    def act(self, actor_params, obs: np.ndarray, key, deterministic: bool = False) -> np.ndarray:
        """Action(s) for obs (obs_dim,) or (B, obs_dim)."""
        return np.asarray(self._act(actor_params, jnp.asarray(obs, jnp.float32), key, deterministic=deterministic))

    def _act_impl(self, actor_params, obs, key, deterministic: bool):
        mean, log_std = self.actor.apply(actor_params, obs)
        if deterministic:
            return jnp.tanh(mean)
        return sample_tanh_gaussian(mean, log_std, key)[0]

    def _update_many(self, state, batches, key):
        """K sequential updates on stacked batches (K, B, ...) in one compiled call (few dispatches on CPU)."""
        keys = jax.random.split(key, batches["rewards"].shape[0])

        def body(carry, inputs):
            batch, k = inputs
            carry, metrics = self._update(carry, batch, k)
            return carry, metrics

        state, metrics = jax.lax.scan(body, state, (batches, keys))
        return state, jax.tree_util.tree_map(lambda m: m[-1], metrics)

    def _update(self, state, batch, key):
        cfg = self.cfg
        k1, k2 = jax.random.split(key)
        alpha = jnp.exp(state["log_alpha"])

        mean, log_std = self.actor.apply(state["actor"], batch["next_observations"])
        next_a, next_logp = sample_tanh_gaussian(mean, log_std, k1)
        tq1, tq2 = self.critic.apply(state["target"], batch["next_observations"], next_a)
        not_done = 1.0 - batch["terminals"]
        target = batch["rewards"] + cfg.gamma * not_done * (jnp.minimum(tq1, tq2) - alpha * next_logp)
        target = jax.lax.stop_gradient(target)

        def critic_loss(p):
            q1, q2 = self.critic.apply(p, batch["observations"], batch["actions"])
            return jnp.mean((q1 - target) ** 2 + (q2 - target) ** 2)

        c_loss, c_grad = jax.value_and_grad(critic_loss)(state["critic"])
        c_upd, opt_critic = self.opt.update(c_grad, state["opt_critic"])
        critic = optax.apply_updates(state["critic"], c_upd)

        def actor_loss(p):
            m, ls = self.actor.apply(p, batch["observations"])
            a, logp = sample_tanh_gaussian(m, ls, k2)
            q1, q2 = self.critic.apply(critic, batch["observations"], a)
            return jnp.mean(alpha * logp - jnp.minimum(q1, q2)), logp

        (a_loss, logp), a_grad = jax.value_and_grad(actor_loss, has_aux=True)(state["actor"])
        a_upd, opt_actor = self.opt.update(a_grad, state["opt_actor"])
        actor = optax.apply_updates(state["actor"], a_upd)

        def alpha_loss(log_alpha):
            return -jnp.mean(log_alpha * jax.lax.stop_gradient(logp + self.target_entropy))

        al_loss, al_grad = jax.value_and_grad(alpha_loss)(state["log_alpha"])
        al_upd, opt_alpha = self.opt.update(al_grad, state["opt_alpha"])
        log_alpha = optax.apply_updates(state["log_alpha"], al_upd)

        target_params = optax.incremental_update(critic, state["target"], cfg.tau)
        new_state = {"actor": actor, "critic": critic, "target": target_params, "log_alpha": log_alpha,
                     "opt_actor": opt_actor, "opt_critic": opt_critic, "opt_alpha": opt_alpha}
        return new_state, {"critic_loss": c_loss, "actor_loss": a_loss, "alpha": alpha}


@partial(jax.jit, static_argnames=("hidden", "act_dim", "deterministic"))
def policy_action(actor_params, obs, key, hidden: tuple[int, ...], act_dim: int, deterministic: bool = False):
    """Stateless action function for a saved actor (used when replaying a behaviour-policy checkpoint)."""
    mean, log_std = Actor(hidden, act_dim).apply(actor_params, obs)
    if deterministic:
        return jnp.tanh(mean)
    return sample_tanh_gaussian(mean, log_std, key)[0]
