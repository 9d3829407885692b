"""Model-predictive control in latent space: CEM and MPPI over action sequences, batched over problems.

    actions = cem(cost, batch=B, horizon=H, action_dim=A, ...)     # cost: (B, S, H, A) -> (B, S)
    cost = latent_goal_cost(model, z_start (B, D), z_goal (B, D))  # ||rollout(z, a)[-1] - z_goal||^2

`plan_episodes` runs receding-horizon MPC for a batch of start/goal pairs in real environments: encode the current
frame, plan H actions toward the goal frame's embedding, execute the first `execute` of them, re-plan; success is
the env's own criterion at the end; the wall time of each planning call is recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

Cost = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class PlannerConfig:
    method: str = "cem"
    horizon: int = 5
    samples: int = 300
    elites: int = 30
    iterations: int = 10
    init_std: float = 1.0
    min_std: float = 0.05
    temperature: float = 0.1  # MPPI
    execute: int = 1
    max_steps: int = 40
    context: int = 1  # latents of history the predictor sees during rollouts


def cem(cost: Cost, batch: int, horizon: int, action_dim: int, samples: int = 300, elites: int = 30,
        iterations: int = 10, init_std: float = 1.0, min_std: float = 0.05, low: float = -1.0, high: float = 1.0,
        generator: torch.Generator | None = None, device: str | torch.device = "cpu",
        init_mean: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy method: Gaussian over sequences, refit to the `elites` lowest-cost samples each iteration.
    Returns the final mean (B, H, A), clipped to [low, high]."""
    mean = torch.zeros(batch, horizon, action_dim, device=device) if init_mean is None else init_mean.clone()
    std = torch.full_like(mean, init_std)
    for _ in range(iterations):
        noise = torch.randn(batch, samples, horizon, action_dim, generator=generator, device=device)
        cand = (mean.unsqueeze(1) + std.unsqueeze(1) * noise).clamp(low, high)
        cand[:, 0] = mean.clamp(low, high)  # keep the incumbent
        costs = cost(cand)
        idx = costs.topk(elites, dim=1, largest=False).indices
        elite = torch.gather(cand, 1, idx[..., None, None].expand(-1, -1, horizon, action_dim))
        mean, std = elite.mean(1), elite.std(1).clamp_min(min_std)
    return mean.clamp(low, high)


def mppi(cost: Cost, batch: int, horizon: int, action_dim: int, samples: int = 300, iterations: int = 10,
         init_std: float = 1.0, temperature: float = 0.1, min_std: float = 0.05, low: float = -1.0,
         high: float = 1.0, generator: torch.Generator | None = None, device: str | torch.device = "cpu",
         init_mean: torch.Tensor | None = None) -> torch.Tensor:
    """MPPI with covariance adaptation (as in TD-MPC): the mean and a diagonal std are refit each iteration to all
    samples, weighted by softmax(-(cost - min) / (temperature * std(cost)))."""
    mean = torch.zeros(batch, horizon, action_dim, device=device) if init_mean is None else init_mean.clone()
    std = torch.full_like(mean, init_std)
    for _ in range(iterations):
        noise = torch.randn(batch, samples, horizon, action_dim, generator=generator, device=device)
        cand = (mean.unsqueeze(1) + std.unsqueeze(1) * noise).clamp(low, high)
        cand[:, 0] = mean.clamp(low, high)
        costs = cost(cand)
        costs = costs - costs.min(1, keepdim=True).values
        scale = costs.std(1, keepdim=True).clamp_min(1e-8)
        w = torch.softmax(-costs / (temperature * scale), dim=1)[..., None, None]
        mean = (w * cand).sum(1)
        std = (w * (cand - mean.unsqueeze(1)).square()).sum(1).sqrt().clamp_min(min_std)
    return mean.clamp(low, high)


def latent_goal_cost(model, z_start: torch.Tensor, z_goal: torch.Tensor, context: int = 1) -> Cost:
    """Cost of candidate sequences (B, S, H, A): squared distance of the final predicted latent to the goal's
    embedding (+ a 0.1-weighted sum over intermediate steps, which favours direct paths)."""

    def cost(cand: torch.Tensor) -> torch.Tensor:
        b, s, h, a = cand.shape
        z0 = z_start.unsqueeze(1).expand(b, s, -1).reshape(b * s, -1)
        preds = model.predictor.rollout(z0, cand.reshape(b * s, h, a), context).view(b, s, h, -1)
        dist = (preds - z_goal[:, None, None]).square().sum(-1)
        return dist[..., -1] + 0.1 * dist[..., :-1].sum(-1)

    return cost


@torch.no_grad()
def plan_episodes(model, envs: list, starts: np.ndarray, goals: np.ndarray, cfg: PlannerConfig, seed: int = 0,
                  device: str = "cpu") -> dict:
    """Receding-horizon latent MPC from start states to goal states, one env per pair (batched planning).

    Returns success rate, per-pair success, final distances in state space and mean seconds per planning call
    (for the whole batch) and per problem."""
    model.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    frames_goal = []
    for env, start, goal in zip(envs, starts, goals, strict=True):
        env.set_state(goal)
        frames_goal.append(env.render())
        env.set_state(start)
    z_goal = model.encode(_to_tensor(np.stack(frames_goal), device))
    plan_times, mean = [], None
    planner = cem if cfg.method == "cem" else mppi
    for step in range(0, cfg.max_steps, cfg.execute):
        frames = np.stack([env.render() for env in envs])
        z = model.encode(_to_tensor(frames, device))
        cost = latent_goal_cost(model, z, z_goal, cfg.context)
        t0 = time.perf_counter()
        kwargs = dict(samples=cfg.samples, iterations=cfg.iterations, init_std=cfg.init_std, generator=gen,
                      device=device, init_mean=mean)
        if cfg.method == "cem":
            kwargs.update(elites=cfg.elites, min_std=cfg.min_std)
        else:
            kwargs.update(temperature=cfg.temperature, min_std=cfg.min_std)
        actions = planner(cost, len(envs), cfg.horizon, envs[0].action_dim, **kwargs)
        plan_times.append(time.perf_counter() - t0)
        for k in range(min(cfg.execute, cfg.max_steps - step)):
            for env, act in zip(envs, actions[:, k].cpu().numpy(), strict=True):
                env.step(act)
        mean = torch.cat([actions[:, cfg.execute:], torch.zeros_like(actions[:, : cfg.execute])], dim=1)
    success = np.array([env.is_success(goal) for env, goal in zip(envs, goals, strict=True)])
    final = np.array([env.goal_distance(goal) if hasattr(env, "goal_distance")
                      else np.linalg.norm(env.state()[:2] - goal[:2]) for env, goal in zip(envs, goals, strict=True)])
    return {"success_rate": float(success.mean()), "success": success.tolist(),
            "final_distance_mean": float(final.mean()), "plan_s_per_call": float(np.mean(plan_times)),
            "plan_s_per_problem": float(np.mean(plan_times) / len(envs)), "planning_calls": len(plan_times)}


def _to_tensor(frames: np.ndarray, device: str) -> torch.Tensor:
    """(N, S, S, 3) uint8 -> (N, 3, S, S) float in [0, 1]."""
    return torch.from_numpy(frames).to(device).permute(0, 3, 1, 2).float().div(255.0)
