"""Model-predictive control in latent space: CEM (and MPPI) over action-chunk sequences, batched over problems.

    plan = cem(cost, batch=B, horizon=H, action_dim=A)     # cost: candidates (B, S, H, A) -> (B, S)

The evaluation loop `plan_episodes` is the authors' (stable-worldmodel policy.py `WorldModelPolicy`, solver/cem.py
`CEMSolver`, planning/objective.py `GoalMSE`, world.py `_evaluate_from_dataset`; their scripts/plan/config/*.yaml):

1. every env starts from a held-out dataset state; the goal is the dataset frame `goal_offset` env steps later;
2. a plan is H = 5 model steps of `frameskip` = 5 env actions each (the solver's action dim is 5 x A), in the
   standardised action space of training; CEM draws 300 samples from N(mean, std^2) (std starts at 1, the first
   sample is the mean), refits mean and std to the 30 lowest-cost samples, 30 iterations, and returns the mean;
3. the cost is the squared distance, summed over the latent, between the last predicted state and the goal's
   embedding; predictions roll out from up to `history` = 3 real context frames at block boundaries (fewer at the
   start of an episode) and the executed action chunks between them;
4. `receding` = 5 blocks of the plan are executed (de-standardised, clipped to the env's [-1, 1]) before re-planning,
   warm-starting from the unexecuted rest of the plan (zeros when all of it ran);
5. success is checked after every env step and counts once reached (the env then stops: swm's `terminate_at_goal`
   with reset mode 'wait'); an episode ends after `eval_budget` env steps.

The wall time of each planning call is recorded, synchronised with the accelerator.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from lejepa.evaluation import Problems, to_tensor

Cost = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class PlannerConfig:
    method: str = "cem"
    horizon: int = 5  # model steps (action blocks)
    receding: int = 5  # blocks executed before re-planning
    samples: int = 300
    elites: int = 30
    iterations: int = 30
    init_std: float = 1.0  # swm CEMSolver var_scale
    min_std: float = 0.0
    temperature: float = 0.1  # MPPI
    history: int = 3  # real context frames fed to the model (the training history)
    warm_start: bool = True
    cost_chunk: int = 32768  # candidate sequences per model call (memory bound for patch-token models)


def cem(cost: Cost, batch: int, horizon: int, action_dim: int, samples: int = 300, elites: int = 30,
        iterations: int = 30, init_std: float = 1.0, min_std: float = 0.0, low: float | None = None,
        high: float | None = None, generator: torch.Generator | None = None, device: str | torch.device = "cpu",
        init_mean: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy method: a diagonal Gaussian over sequences, refit to the `elites` lowest-cost samples each
    iteration; sample 0 is the current mean. Returns the final mean (B, H, A). `low`/`high` clip candidates (None:
    no clipping, the authors' CEM in standardised action space)."""
    mean = torch.zeros(batch, horizon, action_dim, device=device) if init_mean is None else init_mean.clone()
    std = torch.full_like(mean, init_std)
    for _ in range(iterations):
        noise = torch.randn(batch, samples, horizon, action_dim, generator=generator, device=device)
        cand = mean.unsqueeze(1) + std.unsqueeze(1) * noise
        cand[:, 0] = mean
        if low is not None or high is not None:
            cand = cand.clamp(low, high)
        costs = cost(cand)
        idx = costs.topk(elites, dim=1, largest=False).indices
        elite = torch.gather(cand, 1, idx[..., None, None].expand(-1, -1, horizon, action_dim))
        mean, std = elite.mean(1), elite.std(1).clamp_min(min_std)
    return mean if low is None and high is None else mean.clamp(low, high)


def mppi(cost: Cost, batch: int, horizon: int, action_dim: int, samples: int = 300, iterations: int = 10,
         init_std: float = 1.0, temperature: float = 0.1, min_std: float = 0.05, low: float | None = None,
         high: float | None = None, generator: torch.Generator | None = None, device: str | torch.device = "cpu",
         init_mean: torch.Tensor | None = None) -> torch.Tensor:
    """MPPI with covariance adaptation (as in TD-MPC): the mean and a diagonal std are refit each iteration to all
    samples, weighted by softmax(-(cost - min) / (temperature * std(cost)))."""
    mean = torch.zeros(batch, horizon, action_dim, device=device) if init_mean is None else init_mean.clone()
    std = torch.full_like(mean, init_std)
    for _ in range(iterations):
        noise = torch.randn(batch, samples, horizon, action_dim, generator=generator, device=device)
        cand = mean.unsqueeze(1) + std.unsqueeze(1) * noise
        cand[:, 0] = mean
        if low is not None or high is not None:
            cand = cand.clamp(low, high)
        costs = cost(cand)
        costs = costs - costs.min(1, keepdim=True).values
        scale = costs.std(1, keepdim=True).clamp_min(1e-8)
        w = torch.softmax(-costs / (temperature * scale), dim=1)[..., None, None]
        mean = (w * cand).sum(1)
        std = (w * (cand - mean.unsqueeze(1)).square()).sum(1).sqrt().clamp_min(min_std)
    return mean if low is None and high is None else mean.clamp(low, high)


def goal_cost(model, z_hist: torch.Tensor, a_hist: torch.Tensor, z_goal: torch.Tensor, history: int,
              chunk: int = 32768) -> Cost:
    """Cost of candidates (B, S, H, A): `model.state_cost` between the last predicted state and the goal's
    (swm GoalMSE, reduction 'sum'). z_hist (B, K, *S) context states, a_hist (B, K-1, A) executed chunks,
    z_goal (B, *S)."""

    def cost(cand: torch.Tensor) -> torch.Tensor:
        b, s, h, a = cand.shape
        flat = cand.reshape(b * s, h, a)
        rows = torch.arange(b * s, device=cand.device) // s
        out = []
        for i in range(0, b * s, chunk):
            r = rows[i: i + chunk]
            pred = model.rollout(z_hist[r], a_hist[r], flat[i: i + chunk], history)[:, -1]
            out.append(model.state_cost(pred, z_goal[r]))
        return torch.cat(out).view(b, s)

    return cost


@torch.no_grad()
def plan_episodes(model, envs: list, problems: Problems, cfg: PlannerConfig, frameskip: int,
                  action_mean: np.ndarray, action_std: np.ndarray, goal_offset: int = 25, eval_budget: int = 50,
                  seed: int = 0, device: str = "cpu") -> dict:
    """Receding-horizon latent MPC on `problems`, one env per problem (all planned as one batch).

    Returns the success rate and per-problem successes (reached at any env step), the step of first success, the
    goal distance (env units) at the start and at the end, the fraction of problems already solved at their start,
    and the mean seconds per planning call (whole batch) and per problem."""
    model.eval()
    n = len(envs)
    gen = torch.Generator(device=device).manual_seed(seed)
    mean_t = torch.as_tensor(np.tile(action_mean, frameskip), dtype=torch.float32, device=device)
    std_t = torch.as_tensor(np.tile(action_std, frameskip), dtype=torch.float32, device=device)
    for env, start in zip(envs, problems.start_states, strict=True):
        env.set_state(start)
    trivial = np.array([env.is_success(g) for env, g in zip(envs, problems.goal_states, strict=True)])
    start_distance = np.array([env.goal_distance(g) for env, g in zip(envs, problems.goal_states, strict=True)])
    z_goal = model.encode_state(to_tensor(problems.goal_frames, device))
    frames_hist = [np.stack([env.render() for env in envs])]
    actions_hist: list[torch.Tensor] = []
    success = np.zeros(n, dtype=bool)
    first = np.full(n, -1)
    plan_times, init, t = [], None, 0
    block_dim = frameskip * envs[0].action_dim
    planner = cem if cfg.method == "cem" else mppi
    while t < eval_budget:
        k = min(cfg.history, len(frames_hist))
        z_hist = model.encode_state(to_tensor(np.concatenate(frames_hist[-k:]), device))
        z_hist = z_hist.view(k, n, *z_hist.shape[1:]).transpose(0, 1)
        a_hist = (torch.stack(actions_hist[-(k - 1):], dim=1) if k > 1
                  else torch.zeros(n, 0, block_dim, device=device))
        cost = goal_cost(model, z_hist, a_hist, z_goal, cfg.history, cfg.cost_chunk)
        kwargs = dict(samples=cfg.samples, iterations=cfg.iterations, init_std=cfg.init_std, generator=gen,
                      device=device, init_mean=init, min_std=cfg.min_std)
        if cfg.method == "cem":
            kwargs["elites"] = cfg.elites
        else:
            kwargs["temperature"] = cfg.temperature
        _sync(device)
        t0 = time.perf_counter()
        plan = planner(cost, n, cfg.horizon, block_dim, **kwargs)
        _sync(device)
        plan_times.append(time.perf_counter() - t0)
        for b in range(cfg.receding):
            chunk = (plan[:, b] * std_t + mean_t).clamp(-1.0, 1.0).view(n, frameskip, -1).cpu().numpy()
            for j in range(frameskip):
                if t >= eval_budget:
                    break
                t += 1
                for i, env in enumerate(envs):
                    if success[i]:
                        continue  # reached: the env waits (terminate_at_goal)
                    env.step(chunk[i, j], render=False)  # frames are rendered at block ends
                    if env.is_success(problems.goal_states[i]):
                        success[i], first[i] = True, t
            frames_hist.append(np.stack([env.render() for env in envs]))
            actions_hist.append((torch.as_tensor(chunk.reshape(n, -1), device=device) - mean_t) / std_t)
            if t >= eval_budget:
                break
        rest = plan[:, cfg.receding:]
        init = (torch.cat([rest, torch.zeros(n, cfg.horizon - rest.shape[1], block_dim, device=device)], dim=1)
                if cfg.warm_start else None)
    final = np.array([env.goal_distance(g) for env, g in zip(envs, problems.goal_states, strict=True)])
    return {"success_rate": float(success.mean()), "success": success.tolist(), "first_success_step": first.tolist(),
            "final_distance_mean": float(final.mean()), "start_distance_mean": float(start_distance.mean()),
            "trivial_start_fraction": float(trivial.mean()),
            "plan_s_per_call": float(np.mean(plan_times)), "plan_s_per_problem": float(np.mean(plan_times) / n),
            "planning_calls": len(plan_times), "problems": n, "goal_offset": goal_offset,
            "eval_budget": eval_budget}


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
