"""`python -m dmpc.distill task=hopper dataset=medium`: the D-MPC planner distilled into a fast MLP policy (DAgger).

The teacher is the planner exactly as `dmpc.evaluate` runs it (sample-score-rank over N candidates with the task's
termination rule; tens of ms per action on a CPU). The student is the BC baseline's network a = tanh(MLP(s))
(dmpc/models/bc.py, the model set's `mlp_hidden`), which sees only the current state: one small forward pass per
action. With pi_plan(h) the first action of the plan the planner picks at history h (the last H states):

    round 0   D_0 = {(h, pi_plan(h))} for `dataset_states` states of the dataset's training episodes
    round r   run the student pi_{r-1} in the env for `states_per_round` steps and label every state it visits:
              D_r = D_{r-1} + {(h, pi_plan(h)) : h visited by pi_{r-1}}     (DAgger, Ross et al. 2011)
    fit       pi_r = argmin_pi mean_{(h, a) in D_r} ||pi(s_t) - a||^2, `steps` AdamW steps starting from pi_{r-1}

Scored after every round: the student's return in the env next to the planner's (the same reset seeds as
`dmpc.evaluate`; the planner is run once), label agreement (MSE to the planner's actions on `val_states` labelled
states of held-out episodes: `val_mse`; on a round's newly visited states before they are trained on:
`visited_mse`), and actions/s of the student and of the planner, both closed loop (one action per call, after the
compiling call) in this run. The held-out episodes are dmpc.train's for the same seed and `val_fraction`, so the
planner's models did not train on them either. The final student is saved into the model set as `distilled`
(`<model_dir>/distilled/`), which `dmpc.evaluate methods=[dmpc_distilled]` runs; with `write_results=true` the
scores go to experiments/dmpc/results/distill_<scale>.json.
"""

from __future__ import annotations

import functools
import json
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from common.config import as_dict, hydra_app, run_dir
from common.logging import RunLogger
from common.results import write_result
from common.seed import seed_everything
from dmpc.config import D4RL_TASKS, DistillConfig, DistillSizes, workspace_dir
from dmpc.controllers import BCController, DMPCController
from dmpc.data.dataset import load_dataset, windows
from dmpc.envs import make_env, normalized_score
from dmpc.envs.termination import healthy_rule
from dmpc.evaluate import run_episodes
from dmpc.models.bc import BCPolicy
from dmpc.models.model_set import ModelSet
from dmpc.planner import PlannerConfig
from dmpc.train import training_arrays
from dmpc.training import fit

PAPER = {
    "source": "Zhou et al., Diffusion Model Predictive Control, TMLR 05/2025 (arXiv 2410.05364)",
    "claims": ["the D-MPC planner is slow per action; it can be distilled into a fast reactive policy for "
               "high-frequency control (the paper's policy-distillation experiment)"],
    "numbers": "not transcribed here (not verifiable offline); compare student vs planner return and actions/s",
}

LabelFn = Callable[[np.ndarray, jax.Array], np.ndarray]  # histories (M, H, S), key -> the planner's actions (M, A)
VisitFn = Callable[[Any, int, int], np.ndarray]  # student params, n states, round -> visited histories (n, H, S)
ScoreFn = Callable[[Any], dict]  # student params -> its closed-loop metrics in the env


class Distilled(NamedTuple):
    """The final student's `params`, one record per round, and the labelled training set (hists (M, H, S)
    normalized, labels (M, A)): the dataset's states first, then each DAgger round's visited states in order."""

    params: Any
    rounds: list[dict]
    hists: np.ndarray
    labels: np.ndarray


@hydra_app("dmpc", "distill", DistillConfig)
def main(cfg: DistillConfig) -> dict:
    seed_everything(cfg.seed)
    with RunLogger(cfg.logger, run_dir(), config=as_dict(cfg), name=f"dmpc-distill-{cfg.task}-{cfg.dataset}") as log:
        summary = distill(cfg, log)
    print(json.dumps(summary, indent=1))
    return summary


def distill(cfg: DistillConfig, log: RunLogger, results_root: Path | None = None) -> dict:
    """Label, run the DAgger rounds, score, save `distilled` into the model set; returns the metrics and paths."""
    start = time.perf_counter()
    sizes = cfg.sizes
    ws = workspace_dir(cfg.workspace, cfg.task, cfg.scale)
    model_dir = Path(cfg.model_dir) if cfg.model_dir else ws / "models" / cfg.dataset
    models = ModelSet.load(model_dir)
    data, manifest = load_dataset(ws / "datasets" / f"{cfg.task}-{cfg.dataset}.npz", verify=False)
    planner_cfg = PlannerConfig(num_samples=sizes.num_samples, gamma=cfg.gamma, value_weight=cfg.value_weight,
                                proposal_steps=cfg.proposal_steps, proposal_eta=cfg.proposal_eta)
    healthy = healthy_rule(cfg.task) if cfg.termination else None
    policy = models.models["distilled"]
    k_init, k_label, k_val, k_dagger = jax.random.split(jax.random.key(cfg.seed), 4)
    init = models.params["distilled"] = policy.init(k_init)  # from here on the same pytree: one planner compile
    planner = DMPCController(models, planner_cfg, cfg.seed, 1, None, healthy)
    label = planner_labeller(planner.plan_fn, models.params, sizes.label_batch)
    rows, val = dataset_states(data, models, sizes, cfg.gamma, cfg.seed)
    score_task = cfg.task if cfg.task in D4RL_TASKS else None

    def score(controller) -> dict:
        result = run_episodes(cfg.task, controller, sizes.episodes, sizes.max_episode_steps, cfg.seed + 1000, {},
                              log.progress, "distill")
        return episode_metrics(result, score_task)

    student = BCController(models, "distilled")

    def with_params(params):
        models.params["distilled"] = params
        return student

    def visit(params, n: int, round_: int) -> np.ndarray:
        return student_visits(make_env(cfg.task, max_episode_steps=sizes.max_episode_steps), with_params(params),
                              models.normalizer.norm, models.dims.history, n, seed=cfg.seed + 3000 + 1000 * round_)

    label_start = time.perf_counter()
    labels, val_labels = label(rows["hist"], k_label), label(val["hist"], k_val)
    label_s = time.perf_counter() - label_start
    out = dagger(label, policy, init, rows["hist"], labels, val["hist"], val_labels, visit,
                 lambda params: score(with_params(params)), sizes, k_dagger, log)
    planner_metrics = score(planner)
    for record in out.rounds:
        record["planner_return_mean"] = planner_metrics["return_mean"]
    student_speed, planner_speed = out.rounds[-1]["actions_per_s"], planner_metrics["actions_per_s"]
    metrics = {"student": out.rounds[-1], "planner": planner_metrics, "rounds": out.rounds,
               "speedup": student_speed / planner_speed if student_speed and planner_speed else None,
               "untrained_val_mse": label_mse(policy, init, val["hist"], val_labels),
               "dataset_action_val_mse": float(np.mean((val["actions"][:, 0] - val_labels) ** 2)),
               "bc_val_mse": label_mse(models.models["bc"], models.params["bc"], val["hist"], val_labels)
               if "bc" in models.params else None,
               "n_labels": len(out.labels), "n_val_labels": len(val_labels),
               "label_s": label_s + sum(r["label_s"] for r in out.rounds),
               "dataset": {"name": f"{cfg.task}-{cfg.dataset}", "sha256": manifest["sha256"]},
               "model_dir": str(model_dir)}
    models.params["distilled"] = out.params
    models.save(model_dir, names=["distilled"])
    log.summary({"distill/return_mean": metrics["student"]["return_mean"],
                 "distill/planner_return_mean": planner_metrics["return_mean"], "distill/speedup": metrics["speedup"],
                 "distill/val_mse": metrics["student"]["val_mse"]})
    path = None
    if cfg.write_results:
        path = write_result("dmpc", "distill", cfg.scale, metrics, paper=PAPER, config=as_dict(cfg),
                            wall_s=time.perf_counter() - start, root=results_root)
    return {"metrics": metrics, "model_dir": str(model_dir), "results_path": str(path) if path else None}


def dagger(label: LabelFn, policy: BCPolicy, params, hists: np.ndarray, labels: np.ndarray, val_hists: np.ndarray,
           val_labels: np.ndarray, visit: VisitFn, score: ScoreFn, sizes: DistillSizes, key: jax.Array,
           log: RunLogger | None = None) -> Distilled:
    """Round 0 on the labelled (hists (M, H, S), labels (M, A)), then `sizes.rounds` DAgger rounds (module
    docstring); each round's record has its label counts, `visited_mse` (None in round 0), `val_mse`, the fit's
    first/last training loss and `score(params)` of the round's student."""
    records = []
    for round_ in range(sizes.rounds + 1):
        k_label, k_fit = jax.random.split(jax.random.fold_in(key, round_))
        record: dict[str, Any] = {"round": round_, "new_states": 0, "visited_mse": None, "label_s": 0.0}
        if round_:
            visited = visit(params, sizes.states_per_round, round_)
            t0 = time.perf_counter()
            new_labels = label(visited, k_label)
            record["label_s"] = time.perf_counter() - t0
            record["new_states"], record["visited_mse"] = len(visited), label_mse(policy, params, visited, new_labels)
            hists, labels = np.concatenate([hists, visited]), np.concatenate([labels, new_labels])
        state = fit(policy.loss, params, {"hist": hists, "actions": labels[:, None]}, steps=sizes.steps,
                    batch_size=sizes.batch_size, lr=sizes.lr, key=k_fit, chunk=sizes.chunk,
                    val_arrays={"hist": val_hists, "actions": val_labels[:, None]},
                    progress=log.progress if log else None, name=f"distill_r{round_}",
                    log=functools.partial(log.log, series=f"distill_r{round_}") if log else None)
        params = state.params
        record.update(n_labels=len(labels), val_mse=label_mse(policy, params, val_hists, val_labels),
                      loss_first=state.history["loss"][0], loss_last=state.history["loss"][-1], **score(params))
        if log:
            log.log({f"distill/{k}": v for k, v in record.items() if isinstance(v, int | float)}, round_,
                    series="distill")
        records.append(record)
    return Distilled(params, records, hists, labels)


def planner_labeller(plan_fn, params, batch: int) -> LabelFn:
    """`label(hists, key)`: the first action (M, A) of the plan `plan_fn` (dmpc.planner.make_planner) picks at
    each normalized history (M, H, S), state i with key i of `jax.random.split(key, M)`. `batch` > 1: that many
    histories per compiled call (vmap, the last batch padded), what a GPU wants. `batch` = 1 calls `plan_fn` itself
    per state, sharing its compilation with the closed-loop controller: on 2 CPU cores a vmap of 64 (N=32) costs
    as much per label (5.6 vs 6.1 ms) and a minute more of compilation (68 vs 15 s), measured on the hopper-medium
    cpu models."""
    if batch == 1:
        def label_each(hists: np.ndarray, key: jax.Array) -> np.ndarray:
            keys = jax.random.split(key, len(hists))
            return np.stack([np.asarray(plan_fn(params, jnp.asarray(h), k).best_actions[0])
                             for h, k in zip(hists, keys, strict=True)]).astype(np.float32)

        return label_each

    @jax.jit
    def first_actions(params, hists, keys):
        return jax.vmap(lambda h, k: plan_fn(params, h, k).best_actions[0])(hists, keys)

    def label(hists: np.ndarray, key: jax.Array) -> np.ndarray:
        n, pad = len(hists), -len(hists) % batch
        padded = np.concatenate([hists, np.repeat(hists[-1:], pad, axis=0)]).astype(np.float32)
        keys = jax.random.split(key, n)
        keys = jnp.concatenate([keys, jnp.repeat(keys[-1:], pad, axis=0)])
        out = [np.asarray(first_actions(params, jnp.asarray(padded[i:i + batch]), keys[i:i + batch]))
               for i in range(0, len(padded), batch)]
        return np.concatenate(out)[:n].astype(np.float32)

    return label


def dataset_states(data: dict[str, np.ndarray], models: ModelSet, sizes: DistillSizes, gamma: float,
                   seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(training, held-out) states of the dataset: `hist` (M, H, S) normalized and the dataset's `actions`
    (M, F, A), `sizes.dataset_states` of the training episodes and `sizes.val_states` of the held-out ones
    (dmpc.train's split), drawn without replacement (all of them when there are fewer)."""
    win = windows(data, models.dims.history, models.dims.horizon, gamma)
    rows, val, _ = training_arrays(win, models.normalizer, sizes.val_fraction, seed)
    rng = np.random.default_rng(seed)

    def pick(split: dict[str, np.ndarray], count: int) -> dict[str, np.ndarray]:
        idx = np.sort(rng.choice(len(split["hist"]), min(count, len(split["hist"])), replace=False))
        return {"hist": split["hist"][idx], "actions": split["actions"][idx]}

    return pick(rows, sizes.dataset_states), pick(val, sizes.val_states)


def student_visits(env, controller, norm: Callable[[np.ndarray], np.ndarray], history: int, n_states: int,
                   seed: int) -> np.ndarray:
    """The normalized histories (n_states, H, S) (current state last; the first state repeated before an episode's
    start, as DMPCController keeps them) of the states `controller` visits in `env`, episode e reset with seed + e."""
    hists: list[np.ndarray] = []
    episode = 0
    while len(hists) < n_states:
        obs, _ = env.reset(seed=seed + episode)
        controller.reset(obs)
        hist = deque([norm(obs)] * history, maxlen=history)
        done = False
        while not done and len(hists) < n_states:
            hists.append(np.stack(hist))
            obs, _, terminated, truncated, _ = env.step(controller.act(obs))
            hist.append(norm(obs))
            done = terminated or truncated
        episode += 1
    return np.asarray(hists, np.float32)


def label_mse(policy: BCPolicy, params, hists: np.ndarray, labels: np.ndarray) -> float:
    """Mean squared error of the policy's actions at the histories' current states to `labels` (M, A)."""
    return float(jnp.mean((policy(params, jnp.asarray(hists[:, -1])) - labels) ** 2))


def episode_metrics(result: dict, score_task: str | None) -> dict:
    """Return, normalized score (standard tasks), episode lengths and closed-loop speed of `run_episodes`' result."""
    ms = result["ms_per_action"]
    out = {"return_mean": result["return_mean"], "return_std": result["return_std"],
           "episode_lengths": result["episode_lengths"], "ms_per_action": ms,
           "actions_per_s": 1000.0 / ms if ms else None}
    if score_task:
        scores = normalized_score(score_task, np.asarray(result["returns"]))
        out["normalized_mean"], out["normalized_std"] = float(scores.mean()), float(scores.std())
    return out


if __name__ == "__main__":
    main()
