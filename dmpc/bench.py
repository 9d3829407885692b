"""`python -m dmpc.bench [scale=gpu]`: what a gradient update and an env step cost, per trainer.

Measured as wall time and as CPU time of the process (the fastest of `repeats` timed calls after a compiling
warm-up call; CPU time counts all threads, so on a loaded machine it is the steadier cost):
- ours (agents/sac.py): ms per population update, with `fused` updates per dispatch (one `lax.scan`) and with one
  update per dispatch, for a population of 1 task and of all `tasks`; per member-update = that / members;
- env side (data/acting.py): us per env step of each task with random actions, and with our float64 NumPy actor
  (what a training env worker does per step), and the actor's forward pass alone;
- sbx-rl (JAX Stable-Baselines, if importable): SAC, TQC and CrossQ on Hopper-v5 with their default networks:
  ms per update with `sbx_fused` gradient steps per `train` call (sbx fuses them in a `fori_loop`, minibatches
  sampled on the host), and us per env step of `learn` with the policy acting and no updates.
Writes experiments/dmpc/results/trainer_costs_<scale>.json.
"""

from __future__ import annotations

import functools
import importlib.metadata
import time
from collections.abc import Callable

import jax
import numpy as np

from common.config import as_dict, hydra_app, run_dir
from common.logging import RunLogger
from common.results import write_result
from dmpc.agents.sac import SACConfig, population
from dmpc.config import BenchConfig
from dmpc.data.acting import MemberEnv
from dmpc.data.policy import actor_action
from dmpc.envs import TASK_ENV_IDS, make_env


@hydra_app("dmpc", "bench", BenchConfig)
def main(cfg: BenchConfig) -> dict:
    start = time.perf_counter()
    sac = SACConfig(hidden=tuple(cfg.hidden), batch_size=cfg.batch_size)
    metrics = {"ours": {"updates": bench_ours(cfg, sac), "env_steps": bench_envs(cfg, sac)},
               "sbx": bench_sbx(cfg)}
    device = f"{jax.devices()[0].platform}: {jax.devices()[0].device_kind}"
    path = write_result("dmpc", "trainer_costs", cfg.scale, metrics, config=as_dict(cfg), device=device,
                        wall_s=time.perf_counter() - start, paper={"note": "no paper quantity: trainer choice"})
    with RunLogger(cfg.logger, run_dir(), config=as_dict(cfg), name="dmpc-bench") as log:
        log.summary({"results": str(path)})
    print(path)
    return metrics


def best_s(repeats: int, fn: Callable[..., object], *args) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all its threads) of fn(*args): the shortest of `repeats`
    calls after one untimed (compiling) call. Other load on a shared machine only ever adds time, so the
    minimum is the estimate it disturbs least; CPU time is what the work costs, whatever the load."""
    fn(*args)
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn(*args)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return min(wall), min(cpu)


def _train_and_wait(pop, state, buffer, n_valid: int, n_updates: int) -> None:
    jax.block_until_ready(pop.train(state, buffer, n_valid, jax.random.key(1), n_updates)[0])


def _forward_1000(layers, obs, noise, act_dim: int) -> None:
    for _ in range(1000):
        actor_action(layers, obs, noise, act_dim)


def _sbx_train(model, gradient_steps: int, batch_size: int) -> None:
    model.train(gradient_steps=gradient_steps, batch_size=batch_size)
    jax.block_until_ready(model.policy.actor_state.params)  # the last thing an update writes


def bench_ours(cfg: BenchConfig, sac: SACConfig) -> dict:
    out = {}
    for tasks in ([cfg.tasks[0]], list(cfg.tasks)):
        envs = [make_env(t) for t in tasks]
        pop = population(tuple(e.observation_space.shape[0] for e in envs),
                         tuple(e.action_space.shape[0] for e in envs), sac)
        state = pop.init(0)
        rng = np.random.default_rng(0)
        n = 10_000
        blocks = [{"observations": rng.standard_normal((n, e.observation_space.shape[0])),
                   "actions": rng.uniform(-1, 1, (n, e.action_space.shape[0])), "rewards": rng.standard_normal(n),
                   "terminals": np.zeros(n), "next_observations": rng.standard_normal((n, e.observation_space.shape[0]))}
                  for e in envs]
        buffer = pop.insert(pop.empty_buffer(n), pop.pad_block(blocks), 0)
        for fused in (cfg.sizes.fused, 1):
            wall, cpu = best_s(cfg.sizes.repeats, _train_and_wait, pop, state, buffer, n, fused)
            out[f"{len(tasks)}_tasks_fused_{fused}"] = {
                "tasks": tasks, "updates_per_dispatch": fused,
                "ms_per_population_update": 1e3 * wall / fused,
                "ms_per_member_update": 1e3 * wall / fused / len(tasks),
                "cpu_ms_per_member_update": 1e3 * cpu / fused / len(tasks)}
    return out


def bench_envs(cfg: BenchConfig, sac: SACConfig) -> dict:
    out = {}
    for task in cfg.tasks:
        env = MemberEnv(task, 0, 0, None)
        obs_dim = env.env.observation_space.shape[0]
        rng = np.random.default_rng(0)
        sizes = [obs_dim, *sac.hidden, 2 * env.act_dim]
        layers = [(rng.standard_normal((a, b)).astype(np.float32) / np.sqrt(a), np.zeros(b, np.float32))
                  for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        n = cfg.sizes.env_steps
        random_s = np.asarray(best_s(cfg.sizes.repeats, env.step_block, None, 0, 0, n)) / n
        actor_s = np.asarray(best_s(cfg.sizes.repeats, env.step_block, layers, 1, 0, n)) / n
        obs = rng.standard_normal(obs_dim)
        noise = rng.standard_normal(env.act_dim)
        forward_s = np.asarray(best_s(cfg.sizes.repeats, _forward_1000, layers, obs, noise, env.act_dim)) / 1000
        out[task] = {"env": TASK_ENV_IDS[task], "us_per_step_random_actions": 1e6 * random_s[0],
                     "us_per_step_with_actor": 1e6 * actor_s[0], "us_actor_forward": 1e6 * forward_s[0],
                     "cpu_us_per_step_with_actor": 1e6 * actor_s[1]}
    return out


def bench_sbx(cfg: BenchConfig) -> dict:
    try:
        import sbx
    except ImportError as err:
        return {"installed": False, "error": str(err)}
    import gymnasium as gym

    out: dict = {"installed": True, "version": importlib.metadata.version("sbx-rl"),
                 "task": cfg.tasks[0], "env": TASK_ENV_IDS[cfg.tasks[0]]}
    for name in cfg.sbx_algorithms:
        algo = getattr(sbx, name)
        env = gym.make(TASK_ENV_IDS[cfg.tasks[0]])
        model = algo("MlpPolicy", env, learning_starts=0, batch_size=cfg.batch_size, gradient_steps=0, seed=0,
                     verbose=0)
        model.learn(total_timesteps=cfg.sizes.env_steps)  # fills the buffer (policy acting, no updates)
        steps = cfg.sizes.env_steps
        learn_more = functools.partial(model.learn, total_timesteps=steps, reset_num_timesteps=False)
        step_s = np.asarray(best_s(cfg.sizes.repeats, learn_more)) / steps
        update_s = np.asarray(best_s(cfg.sizes.repeats, _sbx_train, model, cfg.sizes.sbx_fused,
                                     cfg.batch_size)) / cfg.sizes.sbx_fused
        policy = model.policy
        arch = {"pi": getattr(policy, "net_arch_pi", None), "qf": getattr(policy, "net_arch_qf", None)}
        out[name] = {"ms_per_update": 1e3 * update_s[0], "cpu_ms_per_update": 1e3 * update_s[1],
                     "updates_per_train_call": cfg.sizes.sbx_fused, "us_per_env_step_with_policy": 1e6 * step_s[0],
                     "cpu_us_per_env_step_with_policy": 1e6 * step_s[1], "net_arch": arch}
    return out


if __name__ == "__main__":
    main()
