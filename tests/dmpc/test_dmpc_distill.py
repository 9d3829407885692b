"""Distillation of the planner: labels are the plan the planner picks (batched or one by one, the same), the student
fits them on held-out states far better than an untrained policy, DAgger rounds add exactly the states the student
visits, the end-to-end run saves `distilled` into the model set for `dmpc.evaluate`, which without it fails with
one line naming the path; the GPU make target trains one model per call under the 420 s budget."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.config import LoggerConfig
from common.logging import RunLogger
from common.results import read_result
from dmpc.config import DistillConfig, DistillSizes, EvalSizes, EvaluateConfig
from dmpc.data.dataset import save_dataset, windows
from dmpc.data.rollouts import PolicySpec, collect_transitions
from dmpc.distill import dagger, distill, label_mse, planner_labeller, student_visits
from dmpc.envs import make_env
from dmpc.evaluate import evaluate
from dmpc.models.bc import BCPolicy
from dmpc.models.conditional_diffusion import DiffusionSpec
from dmpc.models.model_set import ModelDims, ModelHyper, ModelSet, Normalizer
from dmpc.planner import sample_score_rank

REPO = Path(__file__).resolve().parents[2]
QUIET = LoggerConfig(backend="jsonl", mode="disabled", progress=False)
W = 0.5 * np.random.default_rng(0).standard_normal((11, 3)).astype(np.float32)


def target(states):
    """The action the oracle planner aims at: tanh(s W), (..., 11) -> (..., 3)."""
    return jnp.tanh(states @ W)


def oracle_plan(num_samples: int = 256):
    """A planner over 256 uniform one-step candidates rewarded by -|a - target(s)|^2: its label is learnable."""

    def propose(hists, key):
        return jax.random.uniform(key, (hists.shape[0], 1, 3), minval=-1, maxval=1)

    def predict(hists, actions, key):
        return hists[:, -1:]

    def reward(prev, actions, states):
        return -jnp.sum((actions - target(prev)) ** 2, axis=-1)

    return jax.jit(lambda params, hist, key: sample_score_rank(key, hist, propose, predict, reward, None,
                                                               num_samples, 0.99, 0.0))


@pytest.fixture(scope="module")
def data():
    return collect_transitions("hopper", PolicySpec("uniform", 3), 400, seed=0, stream=1, max_episode_steps=50)


@pytest.fixture(scope="module")
def states(data):
    """Normalized hopper histories (W, 2, 11) and their normalizer."""
    norm = Normalizer(data["observations"].mean(0), data["observations"].std(0) + 1e-3)
    return norm.norm(windows(data, 2, 4, 0.99)["hist"]).astype(np.float32), norm


def test_labels_batched_equal_one_by_one_and_pick_the_best_candidate(states):
    hists = states[0][:10]
    one, batched = planner_labeller(oracle_plan(), {}, 1), planner_labeller(oracle_plan(), {}, 4)  # 10 -> 12 padded
    key = jax.random.key(3)
    labels = one(hists, key)
    assert labels.shape == (10, 3) and labels.dtype == np.float32
    np.testing.assert_allclose(batched(hists, key), labels, atol=1e-6)
    assert np.mean(np.abs(labels - np.asarray(target(hists[:, -1])))) < 0.2  # the best of 256 in [-1, 1]^3
    assert not np.allclose(one(hists, jax.random.key(4)), labels)  # a random sample per key


def test_student_matches_the_planner_labels_on_held_out_states(states):
    """Round 0 only: held-out label MSE far below the untrained policy's, and the held-out loss falls."""
    hists, _ = states
    label = planner_labeller(oracle_plan(), {}, 1)
    train, val = hists[:200], hists[-60:]
    labels, val_labels = label(train, jax.random.key(0)), label(val, jax.random.key(1))
    policy = BCPolicy(11, 3, (32, 32))
    init = policy.init(jax.random.key(2))
    sizes = DistillSizes(rounds=0, steps=300, batch_size=64, lr=3e-3, chunk=100)
    out = dagger(label, policy, init, train, labels, val, val_labels, lambda *a: None, lambda p: {}, sizes,
                 jax.random.key(5))
    untrained = label_mse(policy, init, val, val_labels)
    record = out.rounds[0]
    assert record["val_mse"] < 0.3 * untrained, (record["val_mse"], untrained)
    assert record["loss_last"] < record["loss_first"] and len(out.labels) == 200 and record["visited_mse"] is None


class StudentController:
    """A policy net acting on normalized observations (what BCController does with a model set)."""

    def __init__(self, policy, params, norm) -> None:
        self.policy, self.params, self.norm = policy, params, norm

    def reset(self, obs) -> None:
        pass

    def act(self, obs) -> np.ndarray:
        return np.asarray(self.policy(self.params, jnp.asarray(self.norm(obs), jnp.float32)), np.float32)


def test_student_visits_are_the_states_the_policy_reaches(states):
    """30 states over episodes of at most 20 steps: replaying the policy from the same resets gives them back."""
    _, norm = states
    policy = BCPolicy(11, 3, (16,))
    controller = StudentController(policy, policy.init(jax.random.key(0)), norm.norm)
    hists = student_visits(make_env("hopper", max_episode_steps=20), controller, norm.norm, 2, 30, seed=7)
    assert hists.shape == (30, 2, 11)
    env, replayed, episode = make_env("hopper", max_episode_steps=20), [], 0
    while len(replayed) < 30:
        obs, _ = env.reset(seed=7 + episode)
        prev, done = obs, False
        while not done and len(replayed) < 30:
            replayed.append(np.stack([norm.norm(prev), norm.norm(obs)]))
            prev = obs
            obs, _, terminated, truncated, _ = env.step(controller.act(obs))
            done = terminated or truncated
        episode += 1
    assert episode >= 2  # the states span more than one episode
    np.testing.assert_allclose(hists, np.asarray(replayed, np.float32), rtol=1e-5, atol=1e-5)


def test_dagger_rounds_add_the_students_visited_states(states):
    hists, norm = states
    label = planner_labeller(oracle_plan(), {}, 1)
    train, val = hists[:40], hists[-20:]
    labels, val_labels = label(train, jax.random.key(0)), label(val, jax.random.key(1))
    policy = BCPolicy(11, 3, (16,))
    visits = []

    def visit(params, n, round_):
        visits.append(student_visits(make_env("hopper", max_episode_steps=30), StudentController(policy, params,
                                     norm.norm), norm.norm, 2, n, seed=100 * round_))
        return visits[-1]

    sizes = DistillSizes(rounds=2, states_per_round=12, steps=20, batch_size=16, chunk=10)
    out = dagger(label, policy, policy.init(jax.random.key(2)), train, labels, val, val_labels, visit,
                 lambda p: {"return_mean": 0.0}, sizes, jax.random.key(3))
    assert [r["n_labels"] for r in out.rounds] == [40, 52, 64] and [r["new_states"] for r in out.rounds] == [0, 12, 12]
    np.testing.assert_array_equal(out.hists[:40], train)
    np.testing.assert_array_equal(out.hists[40:], np.concatenate(visits))  # in the order visited
    visited = np.concatenate(visits)
    assert np.mean(np.abs(out.labels[40:] - np.asarray(target(visited[:, -1])))) < 0.2  # the planner's labels
    assert all(r["visited_mse"] is not None for r in out.rounds[1:])
    assert not np.allclose(visits[0], visits[1])  # round 2 rolled the round-1 student, from other resets


@pytest.fixture(scope="module")
def base_workspace(tmp_path_factory, data):
    """A tiny dataset and tiny untrained models (no value model: value_weight 0) at <ws>/models/medium."""
    ws = tmp_path_factory.mktemp("ws")
    save_dataset(ws / "datasets", "hopper", "medium", data, {"env": "Hopper-v5"})
    spec = DiffusionSpec(hidden=16, layers=1, train_steps=10, sample_steps=3)
    models = ModelSet(ModelDims(11, 3, 2, 4), ModelHyper(spec, spec, (16,), 8, 1, 2),
                      Normalizer(data["observations"].mean(0), data["observations"].std(0) + 1e-3, 1.0))
    for i, name in enumerate(("proposal", "dynamics", "reward", "bc")):
        models.params[name] = jax.jit(models.models[name].init)(jax.random.key(i))
    models.save(ws / "models" / "medium")
    return ws


@pytest.fixture()
def workspace(base_workspace, tmp_path):
    """A copy of the base workspace per test (distill writes into its model set)."""
    return Path(shutil.copytree(base_workspace, tmp_path / "ws"))


def test_distill_saves_the_student_and_evaluate_runs_it(workspace, tmp_path):
    sizes = DistillSizes(dataset_states=16, val_states=8, val_fraction=0.2, rounds=1, states_per_round=8, steps=20,
                         batch_size=8, chunk=10, num_samples=4, episodes=1, max_episode_steps=8)
    cfg = DistillConfig(workspace=str(workspace), value_weight=0.0, write_results=True, logger=QUIET,
                        scales={"cpu": sizes, "gpu": DistillSizes()})
    with RunLogger(QUIET, tmp_path / "run") as log:
        out = distill(cfg, log, results_root=tmp_path / "results")
    assert out["results_path"] == str(tmp_path / "results" / "experiments" / "dmpc" / "results" / "distill_cpu.json")
    metrics = read_result(out["results_path"])["metrics"]
    assert [r["n_labels"] for r in metrics["rounds"]] == [16, 24] and metrics["n_val_labels"] == 8
    for record in metrics["rounds"]:
        assert record["actions_per_s"] > 0 and np.isfinite(record["val_mse"]) and "planner_return_mean" in record
        assert "normalized_mean" in record
    assert metrics["planner"]["actions_per_s"] > 0 and metrics["speedup"] > 0
    assert metrics["bc_val_mse"] is not None and metrics["untrained_val_mse"] > 0
    assert "distilled" in ModelSet.load(workspace / "models" / "medium").params

    eval_cfg = EvaluateConfig(workspace=str(workspace), methods=["dmpc_distilled", "bc"], write_results=False,
                              logger=QUIET, scales={"cpu": EvalSizes(episodes=1, max_episode_steps=8),
                                                    "gpu": EvalSizes()})
    with RunLogger(QUIET, tmp_path / "run_eval") as log:
        result = evaluate(eval_cfg, log)["metrics"]
    assert result["dmpc_distilled"]["episode_lengths"][0] >= 1 and np.isfinite(result["dmpc_distilled"]["return_mean"])


def test_evaluate_without_a_distilled_policy_fails_with_one_line_naming_the_path(workspace, tmp_path):
    env = {**{k: v for k, v in os.environ.items() if k not in ("PAPERCLUB_FULL_ERROR", "HYDRA_FULL_ERROR")},
           "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "dmpc.evaluate", f"workspace={workspace}",
                           "methods=[dmpc_distilled]", "logger=jsonl"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("error: ") and str(workspace / "models" / "medium" / "distilled") in lines[0]
    assert "python -m dmpc.distill" in lines[0]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_gpu_models_target_trains_one_model_per_call_under_the_budget():
    out = subprocess.run(["make", "-n", "-s", "dmpc-gpu-models", "OUT=/out", "DMPC_MODEL=value",
                          "DMPC_TASK=walker2d", "DMPC_DATASET=medium-replay"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    command = " ".join(out.replace("\\\n", " ").split())
    assert "-m dmpc.train task=walker2d dataset=medium-replay scale=gpu models=[value]" in command
    assert "model_dir=data/dmpc/walker2d_gpu/models/medium-replay time_budget_s=420" in command
    assert "datasets=[medium-replay] policies_dir=experiments/dmpc/policies/walker2d_gpu" in command
    assert "train_state/value/step_*.safetensors" in command and "/out/dmpc.tar." in command
    assert "XLA_FLAGS=--xla_gpu_autotune_level=0" in command


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_gpu_models_target_trains_several_datasets_side_by_side():
    out = subprocess.run(["make", "-n", "-s", "dmpc-gpu-models", "OUT=/out", "DMPC_MODEL=proposal",
                          "DMPC_DATASET=medium medium-replay"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    command = " ".join(out.replace("\\\n", " ").split())
    assert "-m dmpc.train task=hopper datasets=[medium,medium-replay] scale=gpu models=[proposal] time_budget_s=420" \
        in command and "model_dir=" not in command
    assert "mode=datasets datasets=[medium,medium-replay] policies_dir=experiments/dmpc/policies/hopper_gpu" in command
    dirs = "data/dmpc/hopper_gpu/models/medium data/dmpc/hopper_gpu/models/medium-replay"
    assert f"for m in {dirs}; do ls -d $m/train_state/proposal/step_*.safetensors" in command
    assert "data/dmpc/hopper_gpu/models/medium-replay/proposal data/dmpc/hopper_gpu/models/medium-replay/train" in command
    for d in ("medium", "medium-replay"):
        assert f"data/dmpc/hopper_gpu/datasets/hopper-{d}.npz" in command
    assert "-gt 44" in command  # checkpoints over 44 MiB stay on the node
