"""Soft Actor-Critic (Haarnoja et al. 2018) for a population of tasks trained in one XLA program.

Twin critics with Polyak-averaged targets, a tanh-Gaussian actor, a learned temperature alpha with target
entropy -|A| (per member), Adam for all three. The population is M members (one task and seed each); every
member's observations and actions are zero-padded to the widest member's (D, A) and its networks are the
unpadded networks embedded in padded weights:

    padded inputs are always 0          -> their first-layer weights get zero gradients and stay 0 (Adam: m=v=0)
    padded actor outputs are masked     -> mean = 0, log-std = 0, no log-prob, action 0 on padded dimensions

so a member trains exactly as it would alone (up to float summation order), and all members share one
`jax.vmap`-ed update. `train` runs n updates of every member in one `lax.scan`, minibatches gathered on the device
from a device-resident replay buffer (M, capacity, W) of packed transitions, all random numbers of the n updates
drawn before the loop: one dispatch does n x M gradient steps with few kernels per step (GPU: latency-bound).
The twin critics' parameters are stacked on a leading axis of 2 (one batched matmul for both).

Determinism: the update has no non-deterministic op (minibatches are gathers and no gradient flows into the
buffer, so there is no scatter-add), so the same inputs give the same bits, in this process or another, on the
CPU. On a GPU, XLA's autotuner times GEMM algorithms when it compiles and may pick others in another process
(another chunk of a resumed run); `XLA_FLAGS=--xla_gpu_autotune_level=0` (set by the GPU chunk commands,
mk/dmpc.mk) keeps the choice fixed.

Parameters are plain pytrees: `{"0": {"w": (in, out), "b": (out,)}, "1": ...}` per MLP; the actor's last layer
has 2A outputs (mean, log-std). `actor_layers` returns each member's unpadded float32 actor for the NumPy
forward pass that acts in the envs (data/policy.py computes the same function in float64).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dmpc.data.policy import LOG_STD_MAX, LOG_STD_MIN

HIGHEST = jax.lax.Precision.HIGHEST


@dataclass(frozen=True)
class SACConfig:
    hidden: tuple[int, ...] = (256, 256)
    lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    batch_size: int = 256
    init_temperature: float = 1.0


def mlp(params: dict, x: jnp.ndarray) -> jnp.ndarray:
    """ReLU MLP (..., in) -> (..., out); float32 matmuls at full precision (no TF32)."""
    n = len(params)
    for i in range(n):
        x = jnp.dot(x, params[str(i)]["w"], precision=HIGHEST) + params[str(i)]["b"]
        if i < n - 1:
            x = jax.nn.relu(x)
    return x


def actor_dist(actor: dict, obs: jnp.ndarray, act_mask: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(mean, log-std) (..., A); padded dimensions (act_mask 0) are N(0, 1) placeholders."""
    mean, log_std = jnp.split(mlp(actor, obs), 2, axis=-1)
    log_std = jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)
    return mean * act_mask, jnp.where(act_mask > 0, log_std, 0.0)


def sample_action(mean, log_std, noise, act_mask) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(tanh-Gaussian action (..., A), its log-probability (...,)) for standard-normal `noise`, counting real
    dimensions only."""
    u = mean + jnp.exp(log_std) * noise
    gauss = -0.5 * noise**2 - log_std - 0.5 * jnp.log(2 * jnp.pi)
    log_det = 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u))  # log(1 - tanh(u)^2), stable
    logp = jnp.sum((gauss - log_det) * act_mask, axis=-1)
    return jnp.tanh(u) * act_mask, logp


def twin_q(critic: dict, obs, act) -> jnp.ndarray:
    """(2, ...) Q-values of the twin critics, whose parameters are stacked on a leading axis of 2."""
    x = jnp.concatenate([obs, act], axis=-1)
    return jax.vmap(mlp, in_axes=(0, None))(critic, x)[..., 0]


def sac_update(state: dict, batch: dict, noise: tuple, act_mask, target_entropy, cfg: SACConfig,
               opt) -> tuple[dict, dict]:
    """One SAC gradient step of one member on a (B, ...) batch; `noise`: two (B, A) standard-normal draws."""
    noise_next, noise_pi = noise
    alpha = jnp.exp(state["log_alpha"])
    next_a, next_logp = sample_action(*actor_dist(state["actor"], batch["next_observations"], act_mask),
                                      noise_next, act_mask)
    soft_v = jnp.min(twin_q(state["target"], batch["next_observations"], next_a), axis=0) - alpha * next_logp
    target = jax.lax.stop_gradient(batch["rewards"] + cfg.gamma * (1.0 - batch["terminals"]) * soft_v)

    def critic_loss(p):
        return 0.5 * jnp.sum(jnp.mean((twin_q(p, batch["observations"], batch["actions"]) - target) ** 2, axis=-1))

    c_loss, c_grad = jax.value_and_grad(critic_loss)(state["critic"])
    c_upd, opt_critic = opt.update(c_grad, state["opt_critic"])
    critic = optax.apply_updates(state["critic"], c_upd)

    def actor_loss(p):
        a, logp = sample_action(*actor_dist(p, batch["observations"], act_mask), noise_pi, act_mask)
        return jnp.mean(alpha * logp - jnp.min(twin_q(critic, batch["observations"], a), axis=0)), logp

    (a_loss, logp), a_grad = jax.value_and_grad(actor_loss, has_aux=True)(state["actor"])
    a_upd, opt_actor = opt.update(a_grad, state["opt_actor"])
    actor = optax.apply_updates(state["actor"], a_upd)

    entropy_gap = jax.lax.stop_gradient(logp + target_entropy)
    al_grad = jax.grad(lambda la: -jnp.mean(la * entropy_gap))(state["log_alpha"])
    al_upd, opt_alpha = opt.update(al_grad, state["opt_alpha"])
    log_alpha = optax.apply_updates(state["log_alpha"], al_upd)

    new = {"actor": actor, "critic": critic, "target": optax.incremental_update(critic, state["target"], cfg.tau),
           "log_alpha": log_alpha, "opt_actor": opt_actor, "opt_critic": opt_critic, "opt_alpha": opt_alpha}
    return new, {"critic_loss": c_loss, "actor_loss": a_loss, "alpha": alpha, "entropy": -jnp.mean(logp)}


@functools.lru_cache(maxsize=8)
def population(obs_dims: tuple[int, ...], act_dims: tuple[int, ...], cfg: SACConfig) -> SACPopulation:
    """The (cached: compiled once per process) population of these member dimensions and config."""
    return SACPopulation(list(obs_dims), list(act_dims), cfg)


class SACPopulation:
    """M members (obs_dims[m], act_dims[m]) padded to (D, A); holds the jit-compiled population functions."""

    def __init__(self, obs_dims: list[int], act_dims: list[int], cfg: SACConfig) -> None:
        self.cfg, self.obs_dims, self.act_dims = cfg, list(obs_dims), list(act_dims)
        self.members = len(obs_dims)
        self.obs_pad, self.act_pad = max(obs_dims), max(act_dims)
        self.act_mask = jnp.asarray(np.arange(self.act_pad)[None, :] < np.asarray(act_dims)[:, None], jnp.float32)
        self.target_entropy = -jnp.asarray(act_dims, jnp.float32)
        self.opt = optax.adam(cfg.lr)
        self._train = jax.jit(self._train_block, static_argnames="n_updates")
        self._insert = jax.jit(self._insert_block)  # no donation: a pending `train` may still read the buffer

    # --- state -------------------------------------------------------------------------------------------
    def init(self, seed: int) -> dict[str, Any]:
        """Stacked (M, ...) state on the device; member m's networks drawn from `default_rng([seed, m])`."""
        states = [self._init_member(np.random.default_rng([seed, m]), m) for m in range(self.members)]
        return jax.device_put(jax.tree.map(lambda *xs: np.stack(xs), *states))

    def empty_buffer(self, capacity: int) -> jnp.ndarray:
        """The replay buffer (M, capacity, W) float32, each row a transition packed as
        [obs (D), action (A), reward, terminal, next obs (D)]."""
        return jax.device_put(np.zeros((self.members, capacity, 2 * self.obs_pad + self.act_pad + 2), np.float32))

    def pad_block(self, blocks: list[dict[str, np.ndarray]]) -> np.ndarray:
        """Members' transitions (K, obs_dim/act_dim ...) -> one packed, padded (M, K, W) float32 block."""
        d, a = self.obs_pad, self.act_pad
        rows = []
        for block in blocks:
            obs, act = np.asarray(block["observations"], np.float32), np.asarray(block["actions"], np.float32)
            nxt = np.asarray(block["next_observations"], np.float32)
            rows.append(np.concatenate([
                np.pad(obs, ((0, 0), (0, d - obs.shape[1]))), np.pad(act, ((0, 0), (0, a - act.shape[1]))),
                np.asarray(block["rewards"], np.float32)[:, None], np.asarray(block["terminals"], np.float32)[:, None],
                np.pad(nxt, ((0, 0), (0, d - nxt.shape[1])))], axis=1))
        return np.stack(rows)

    def unpack(self, rows: jnp.ndarray) -> dict[str, jnp.ndarray]:
        """Packed transitions (..., W) -> the batch dict of `sac_update`."""
        d, a = self.obs_pad, self.act_pad
        return {"observations": rows[..., :d], "actions": rows[..., d:d + a], "rewards": rows[..., d + a],
                "terminals": rows[..., d + a + 1], "next_observations": rows[..., d + a + 2:]}

    def insert(self, buffer: jnp.ndarray, block: np.ndarray, start: int) -> jnp.ndarray:
        """The buffer with `block` (M, K, W) written at rows [start, start + K)."""
        return self._insert(buffer, jnp.asarray(block), jnp.int32(start))

    def train(self, state: dict, buffer: dict, n_valid: int, key, n_updates: int) -> tuple[dict, dict]:
        """`n_updates` SAC steps of every member on minibatches from buffer[:, :n_valid]; dispatches, returns
        without waiting (JAX async dispatch)."""
        return self._train(state, buffer, jnp.int32(n_valid), key, n_updates=n_updates)

    def actor_layers(self, state: dict) -> list[list[tuple[np.ndarray, np.ndarray]]]:
        """Each member's unpadded float32 actor [(W, b), ...] (waits for the state to be computed)."""
        actor = jax.device_get(state["actor"])
        out = []
        for m in range(self.members):
            n = len(actor)
            layers = [(np.asarray(actor[str(i)]["w"][m]), np.asarray(actor[str(i)]["b"][m])) for i in range(n)]
            out.append(unpad_actor(layers, self.obs_dims[m], self.act_dims[m], self.act_pad))
        return out

    # --- compiled bodies ---------------------------------------------------------------------------------
    def _train_block(self, state, buffer, n_valid, key, n_updates: int):
        m, b, a = self.members, self.cfg.batch_size, self.act_pad
        k_idx, k_next, k_pi = jax.random.split(key, 3)
        # every random number of the block in three draws, outside the loop (fewer kernels per update)
        xs = (jax.random.randint(k_idx, (n_updates, m, b), 0, n_valid),
              jax.random.normal(k_next, (n_updates, m, b, a)), jax.random.normal(k_pi, (n_updates, m, b, a)))
        update = functools.partial(sac_update, cfg=self.cfg, opt=self.opt)

        def member_step(st, buf, idx, noise_next, noise_pi, mask, target_entropy):
            return update(st, self.unpack(buf[idx]), (noise_next, noise_pi), mask, target_entropy)

        def body(st, x):
            return jax.vmap(member_step)(st, buffer, *x, self.act_mask, self.target_entropy)

        state, metrics = jax.lax.scan(body, state, xs)
        return state, jax.tree.map(lambda x: x[-1], metrics)

    @staticmethod
    def _insert_block(buffer, block, start):
        return jax.lax.dynamic_update_slice_in_dim(buffer, block, start, axis=1)

    def _init_member(self, rng: np.random.Generator, m: int) -> dict[str, Any]:
        """Member m's state as NumPy arrays (Adam moments zero, temperature `init_temperature`)."""
        hidden = tuple(self.cfg.hidden)
        d, a, D, A = self.obs_dims[m], self.act_dims[m], self.obs_pad, self.act_pad
        actor = _init_mlp(rng, [d, *hidden, 2 * a], [D, *hidden, 2 * A], out_split=(a, A))
        twins = [_init_mlp(rng, [d + a, *hidden, 1], [D + A, *hidden, 1], in_split=(d, D, a)) for _ in range(2)]
        critic = jax.tree.map(lambda *xs: np.stack(xs), *twins)
        log_alpha = np.log(np.float32(self.cfg.init_temperature))

        def zeros_like_opt_state(params):
            shapes = jax.eval_shape(self.opt.init, params)
            return jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), shapes)

        return {"actor": actor, "critic": critic, "target": jax.tree.map(np.copy, critic), "log_alpha": log_alpha,
                "opt_actor": zeros_like_opt_state(actor), "opt_critic": zeros_like_opt_state(critic),
                "opt_alpha": zeros_like_opt_state(log_alpha)}


def unpad_actor(layers, obs_dim: int, act_dim: int, act_pad: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """A padded actor's layers cut to (obs_dim inputs, 2 * act_dim outputs: mean, log-std)."""
    out = [(w, b) for w, b in layers]
    out[0] = (out[0][0][:obs_dim], out[0][1])
    cols = np.r_[0:act_dim, act_pad:act_pad + act_dim]
    out[-1] = (out[-1][0][:, cols], out[-1][1][cols])
    return [(np.ascontiguousarray(w, np.float32), np.ascontiguousarray(b, np.float32)) for w, b in out]


def _init_mlp(rng: np.random.Generator, sizes: list[int], padded: list[int], in_split=None, out_split=None) -> dict:
    """PyTorch-default init U(+-1/sqrt(fan_in)) of the unpadded MLP `sizes`, embedded in zeros of shape `padded`.

    in_split (d, D, a): the input is [obs (d of D), act (a of A)]; out_split (a, A): the output is
    [mean (a of A), log-std (a of A)]."""
    params = {}
    for i in range(len(sizes) - 1):
        fan_in, fan_out = sizes[i], sizes[i + 1]
        bound = 1.0 / np.sqrt(fan_in)
        w = rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32)
        b = rng.uniform(-bound, bound, fan_out).astype(np.float32)
        rows, cols = np.arange(fan_in), np.arange(fan_out)
        if i == 0 and in_split is not None:
            d, D, a = in_split
            rows = np.r_[0:d, D:D + a]
        if i == len(sizes) - 2 and out_split is not None:
            a, A = out_split
            cols = np.r_[0:a, A:A + a]
        wp = np.zeros((padded[i], padded[i + 1]), np.float32)
        bp = np.zeros((padded[i + 1],), np.float32)
        wp[np.ix_(rows, cols)] = w
        bp[cols] = b
        params[str(i)] = {"w": wp, "b": bp}
    return params
