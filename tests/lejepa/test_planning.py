"""CEM and MPPI against known optima; the evaluation protocol (goal k steps ahead on a held-out trajectory,
success counted during the episode, receding horizon in frame-skip blocks); probes and AUROC against references."""

import numpy as np
import pytest
import torch

from lejepa.evaluation import dataset_problems
from lejepa.planning import PlannerConfig, cem, mppi, plan_episodes
from lejepa.probing import auroc, ridge_r2


def quadratic(target: torch.Tensor):
    def cost(cand):  # (B, S, H, A)
        return (cand - target[:, None]).square().sum((-1, -2))
    return cost


@pytest.mark.parametrize("planner", ["cem", "mppi"])
def test_planner_finds_quadratic_optimum(planner):
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(3, 4, 2, generator=gen) * 1.6 - 0.8
    if planner == "cem":
        best = cem(quadratic(target), 3, 4, 2, samples=300, elites=30, iterations=30, generator=gen)
    else:
        best = mppi(quadratic(target), 3, 4, 2, samples=200, iterations=12, temperature=0.1, min_std=0.01,
                    generator=gen)
    assert torch.allclose(best, target, atol=0.05)


def test_cem_respects_action_bounds_when_asked():
    target = torch.full((1, 3, 2), 5.0)
    best = cem(quadratic(target), 1, 3, 2, samples=100, elites=10, iterations=8, low=-1.0, high=1.0,
               generator=torch.Generator().manual_seed(1))
    assert float(best.max()) <= 1.0 and float(best.min()) > 0.97
    free = cem(quadratic(target), 1, 3, 2, samples=100, elites=10, iterations=30,
               generator=torch.Generator().manual_seed(1))
    assert float(free.max()) > 1.5  # the authors' CEM does not clip (it plans in standardised action space)


def test_goal_is_the_dataset_state_k_steps_ahead_on_a_held_out_trajectory():
    e, t = 10, 61
    states = np.arange(e * t, dtype=np.float64).reshape(e, t, 1) * np.ones(3)
    frames = (np.arange(e * t).reshape(e, t, 1, 1, 1) % 251).astype(np.uint8) * np.ones((1, 1, 2, 2, 3), np.uint8)
    data = {"states": states, "frames": frames}
    p = dataset_problems(data, val_episodes=4, count=50, goal_offset=25, seed=3)
    assert set(p.episodes) <= {6, 7, 8, 9}  # held-out episodes only
    assert p.starts.max() <= t - 1 - 25  # swm: start <= episode length - goal_offset - 1
    assert np.array_equal(p.start_states, states[p.episodes, p.starts])
    assert np.array_equal(p.goal_states, states[p.episodes, p.starts + 25])
    assert np.array_equal(p.goal_frames, frames[p.episodes, p.starts + 25])
    again = dataset_problems(data, val_episodes=4, count=50, goal_offset=25, seed=3)
    assert np.array_equal(again.starts, p.starts) and len(set(zip(p.episodes, p.starts, strict=True))) == 50
    with pytest.raises(ValueError, match="valid start rows"):
        dataset_problems(data, val_episodes=1, count=50, goal_offset=25, seed=0)


class Clock:
    """A fake env whose goal is reached only at env steps [3, 5]: success must count during the episode, and the
    env must not be stepped after it (the evaluation waits, as swm's terminate_at_goal + reset mode 'wait')."""

    name, action_dim = "clock", 1

    def __init__(self, reach=(3, 5)) -> None:
        self.t, self.reach, self.actions = 0, reach, []

    def set_state(self, state):
        self.t = 0

    def render(self):
        return np.full((4, 4, 3), self.t, dtype=np.uint8)

    def step(self, action, render=True):
        self.t += 1
        self.actions.append(float(action[0]))
        return self.render()

    def is_success(self, goal):
        return self.reach[0] <= self.t <= self.reach[1]

    def goal_distance(self, goal):
        return float(self.t)


class Integrator(torch.nn.Module):
    """A fake world model: state = mean pixel / 255; rollout adds the (mean of each) action chunk."""

    def encode_state(self, frames):
        return frames.mean((1, 2, 3), keepdim=False)[:, None]

    def rollout(self, z_hist, a_hist, actions, context):
        return z_hist[:, -1:, :] + actions.mean(-1, keepdim=True).cumsum(1)

    @staticmethod
    def state_cost(pred, goal):
        return (pred - goal).square().sum(-1)


def problems(n):
    from lejepa.evaluation import Problems

    return Problems(np.zeros(n, int), np.zeros(n, int), np.zeros((n, 1)), np.zeros((n, 1)),
                    np.zeros((n, 4, 4, 3), np.uint8))


@pytest.mark.parametrize("receding,calls", [(5, 2), (1, 10)])
def test_success_is_counted_during_the_episode_in_frame_skip_blocks(receding, calls):
    envs = [Clock(), Clock(reach=(99, 99))]
    cfg = PlannerConfig(horizon=5, receding=receding, samples=8, elites=2, iterations=2)
    out = plan_episodes(Integrator(), envs, problems(2), cfg, frameskip=5, action_mean=np.zeros(1),
                        action_std=np.ones(1), goal_offset=25, eval_budget=50)
    assert out["success"] == [True, False] and out["first_success_step"] == [3, -1]
    assert envs[0].t == 3  # frozen once the goal was reached
    assert envs[1].t == 50  # the budget is in env steps
    assert out["planning_calls"] == calls  # 50 env steps / (receding blocks x 5 env steps per block)
    assert len(envs[1].actions) == 50  # each block: 5 env actions, one per env step (the solver plans 5 x A)


def test_ridge_r2_recovers_linear_targets_and_rejects_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 8))
    w = rng.normal(size=(8, 2))
    y = x @ w + 0.01 * rng.normal(size=(600, 2))
    r2 = ridge_r2(x[:400], y[:400], x[400:], y[400:], ridge=1e-6)
    assert np.all(r2 > 0.999)
    noise = rng.normal(size=(600, 1))
    assert ridge_r2(x[:400], noise[:400], x[400:], noise[400:])[0] < 0.05


def test_auroc_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    pos, neg = rng.normal(1, 1, 50), np.r_[rng.normal(0, 1, 49), 1.0]
    pos[0] = 1.0
    ref = roc_auc_score(np.r_[np.ones(50), np.zeros(50)], np.r_[pos, neg])
    assert auroc(pos, neg) == pytest.approx(ref)
