"""`python -m dmpc.evaluate task=hopper dataset=medium`: D-MPC vs baselines in the env, results JSON.

Methods: `dmpc` (multi-step diffusion proposal + dynamics, sample-score-rank), `dmpc_1step` (ablation:
single-step diffusion dynamics rolled out autoregressively), `mbop` (single-step ensemble + BC proposal),
`bc`, `behaviour` (the policy that generated the dataset), `dmpc_distilled` (the planner distilled into BC's network by
`python -m dmpc.distill`, saved in the model dir as `distilled`). `extra_model_dirs={label: dir}` adds D-MPC runs with
other model sets (e.g. dynamics fine-tuned on broken-ankle play data) as `dmpc_<label>`.
`env=walker2d_jump reward=jump` passes the jump reward to the planner at run time (novel reward, no retraining);
`compare_model_reward=true` adds `dmpc_original`, the same models planning for the learned (walking) reward.
Metrics: undiscounted return, D4RL-normalized score (standard tasks), torso height mean/max (obs[0] for
hopper and walker2d: the jump task's quantity), planning latency in ms per action
(excluding the first call, which includes jit compilation; reported separately as compile_s).
`termination=true` gives the planners (D-MPC and MBOP alike) the task's healthy-state rule (dmpc/envs/termination.py);
`proposal_steps` / `proposal_eta` override the trained proposal's DDIM sampler at planning time.
`diagnostics=true` adds, for every D-MPC controller, the true-simulator replay diagnostic of its candidates
(dmpc/diagnostics.py: score/return rank correlation, dynamics error per horizon step, proposal vs behaviour spread,
terminating fraction) under metrics["diagnostics"][<method>].
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from common.checkpoint import CheckpointError
from common.config import as_dict, hydra_app, run_dir
from common.logging import RunLogger
from common.results import write_result
from common.seed import seed_everything
from dmpc.config import EvaluateConfig, workspace_dir
from dmpc.controllers import BCController, DMPCController, MBOPController, PolicyController
from dmpc.data.dataset import load_dataset
from dmpc.data.policy import load_policy, uniform_policy_fn
from dmpc.diagnostics import dmpc_candidates, replay_diagnostic
from dmpc.envs import JumpReward, make_env, normalized_score, task_of
from dmpc.envs.termination import healthy_rule
from dmpc.mbop import MBOPConfig
from dmpc.models.model_set import ModelSet
from dmpc.planner import PlannerConfig

PAPER = {
    "source": "Zhou et al., Diffusion Model Predictive Control, TMLR 05/2025 (arXiv 2410.05364), Table 1 / Sec. 5",
    "claims": [
        "D4RL locomotion (halfcheetah/hopper/walker2d x medium/medium-replay/medium-expert): D-MPC is "
        "significantly better than MBOP and competitive with CQL/IQL/Diffuser-style offline RL",
        "multi-step diffusion dynamics beat single-step autoregressive dynamics (less compounding error)",
        "novel rewards (Walker2d jump) are optimized at run time without retraining; novel dynamics (broken "
        "ankle) are handled by fine-tuning only the dynamics model on a little play data",
    ],
    "numbers": "per-task Table 1 values not transcribed here (not verifiable offline); compare the ranking",
    "d4rl_reference_returns": {"halfcheetah": [-280.178953, 12135.0], "hopper": [-20.272305, 3234.3],
                               "walker2d": [1.629008, 4592.3]},
}


@hydra_app("dmpc", "evaluate", EvaluateConfig)
def main(cfg: EvaluateConfig) -> dict:
    seed_everything(cfg.seed)
    with RunLogger(cfg.logger, run_dir(), config=as_dict(cfg), name=f"dmpc-eval-{cfg.task}-{cfg.dataset}") as log:
        return evaluate(cfg, log)


def evaluate(cfg: EvaluateConfig, log: RunLogger, results_root: Path | None = None) -> dict:
    start = time.perf_counter()
    sizes = cfg.sizes
    ws = workspace_dir(cfg.workspace, cfg.task, cfg.scale)
    model_dir = Path(cfg.model_dir) if cfg.model_dir else ws / "models" / cfg.dataset
    env_name = cfg.env or cfg.task
    reward_fn = JumpReward(cfg.jump.height_weight, cfg.jump.vertical_velocity_weight) if cfg.reward == "jump" \
        else None
    env_kwargs = {"height_weight": cfg.jump.height_weight,
                  "vertical_velocity_weight": cfg.jump.vertical_velocity_weight} if env_name == "walker2d_jump" else {}
    planner_cfg = PlannerConfig(num_samples=sizes.num_samples, gamma=cfg.gamma, value_weight=cfg.value_weight,
                                proposal_steps=cfg.proposal_steps, proposal_eta=cfg.proposal_eta)
    healthy = healthy_rule(env_name) if cfg.termination else None
    models = None
    if any(m in cfg.methods for m in ("dmpc", "dmpc_1step", "mbop", "bc", "dmpc_distilled")) or cfg.extra_model_dirs:
        models = ModelSet.load(model_dir)
    if "dmpc_distilled" in cfg.methods and "distilled" not in models.params:
        raise CheckpointError(f"methods=[dmpc_distilled] needs a distilled policy: none at {model_dir / 'distilled'}; "
                              f"run `python -m dmpc.distill task={cfg.task} dataset={cfg.dataset}` first")
    controllers = {}
    for method in cfg.methods:
        if method == "dmpc":
            controllers[method] = DMPCController(models, planner_cfg, cfg.seed, cfg.execute, reward_fn, healthy)
        elif method == "dmpc_1step":
            controllers[method] = DMPCController(models, PlannerConfig(**{**planner_cfg.__dict__,
                                                                          "autoregressive": True}),
                                                 cfg.seed, cfg.execute, reward_fn, healthy)
        elif method == "mbop":
            if reward_fn is not None:
                continue  # MBOP's ensemble predicts the training reward only
            controllers[method] = MBOPController(models, MBOPConfig(sizes.num_samples, cfg.mbop_sigma, cfg.mbop_beta,
                                                                    cfg.mbop_kappa, cfg.gamma, cfg.value_weight),
                                                 cfg.seed, healthy)
        elif method == "bc":
            controllers[method] = BCController(models)
        elif method == "dmpc_distilled":
            controllers[method] = BCController(models, "distilled")
        else:
            controllers[method] = PolicyController(behaviour_policy(ws, cfg.dataset), cfg.seed)
    if cfg.reward != "model" and cfg.compare_model_reward and "dmpc" in cfg.methods:
        controllers["dmpc_original"] = DMPCController(models, planner_cfg, cfg.seed, cfg.execute, None, healthy)
    for label, directory in cfg.extra_model_dirs.items():
        controllers[f"dmpc_{label}"] = DMPCController(ModelSet.load(directory), planner_cfg, cfg.seed, cfg.execute,
                                                      reward_fn, healthy)
    metrics: dict = {}
    score_task = task_of(env_name) if cfg.reward == "model" else None
    for name, controller in controllers.items():
        result = run_episodes(env_name, controller, sizes.episodes, sizes.max_episode_steps, cfg.seed + 1000,
                              env_kwargs, log.progress, name)
        if score_task:
            scores = normalized_score(score_task, np.asarray(result["returns"]))
            result["normalized_mean"], result["normalized_std"] = float(scores.mean()), float(scores.std())
        metrics[name] = result
        log.summary({f"{name}/return_mean": result["return_mean"], f"{name}/ms_per_action": result["ms_per_action"]})
    planners = {name: c for name, c in controllers.items() if isinstance(c, DMPCController)}
    if cfg.diagnostics and planners:
        actions = load_dataset(ws / "datasets" / f"{cfg.task}-{cfg.dataset}.npz", verify=False)[0]["actions"]
        metrics["diagnostics"] = {}
        for name, controller in planners.items():
            diag = replay_diagnostic(
                make_env(env_name, max_episode_steps=sizes.max_episode_steps, **env_kwargs),
                make_env(env_name, max_episode_steps=10**9, **env_kwargs), controller, dmpc_candidates(controller),
                states=sizes.diagnostic_states, every=sizes.diagnostic_every, seed=cfg.seed + 2000, gamma=cfg.gamma,
                state_std=controller.models.normalizer.std, behaviour_std=actions.std(0))
            metrics["diagnostics"][name] = diag
            log.summary({f"{name}/rank_corr": diag["rank_corr"], f"{name}/spread_ratio": diag["spread_ratio"]})
    manifest = json.loads((ws / "datasets" / f"{cfg.task}-{cfg.dataset}.json").read_text())
    metrics["dataset"] = {"name": f"{cfg.task}-{cfg.dataset}", "n_transitions": manifest["n_transitions"],
                          "return_mean": manifest["returns"]["mean"], "sha256": manifest["sha256"],
                          "policy": manifest.get("policy")}
    if score_task:
        metrics["dataset"]["normalized_mean"] = float(normalized_score(score_task, manifest["returns"]["mean"]))
    experiment = cfg.experiment or f"d4rl_{cfg.task}_{cfg.dataset}"
    wall = time.perf_counter() - start
    path = None
    if cfg.write_results:
        path = write_result("dmpc", experiment, cfg.scale, metrics, paper=PAPER, config=as_dict(cfg),
                            wall_s=wall, root=results_root)
    return {"metrics": metrics, "results_path": str(path) if path else None}


def behaviour_policy(ws: Path, dataset: str):
    """The policy that generated `dataset` (expert for medium-expert/expert, medium otherwise, uniform for random)."""
    if dataset == "random":
        return uniform_policy_fn(_act_dim(ws))
    levels_file = ws / "policies" / "levels.json"
    if not levels_file.is_file():
        raise CheckpointError(f"behaviour policies not found: {levels_file} (run `python -m dmpc.collect`)")
    level = "expert" if dataset in ("expert", "medium-expert") else "medium"
    return load_policy(ws / "policies" / Path(json.loads(levels_file.read_text())[level]["path"]).name)[0]


def _act_dim(ws: Path) -> int:
    meta = json.loads((ws / "models").glob("*/model_set.json").__next__().read_text())
    return meta["dims"]["act_dim"]


def run_episodes(env_name: str, controller, episodes: int, max_steps: int, seed: int, env_kwargs: dict,
                 progress=None, desc: str = "") -> dict:
    """Returns, lengths and latency (ms per action after the first, jit-compiling call) of `episodes` runs."""
    env = make_env(env_name, max_episode_steps=max_steps, **env_kwargs)
    returns, lengths, task_returns, times, heights = [], [], [], [], []
    compile_s = None
    bar = progress(range(episodes), total=episodes, desc=f"eval {desc}") if progress else range(episodes)
    for ep in bar:
        obs, _ = env.reset(seed=seed + ep)
        controller.reset(obs)
        total, task_total, steps, done = 0.0, 0.0, 0, False
        while not done:
            t0 = time.perf_counter()
            action = controller.act(obs)
            dt = time.perf_counter() - t0
            if compile_s is None:
                compile_s = dt
            else:
                times.append(dt)
            obs, reward, terminated, truncated, info = env.step(action)
            heights.append(float(obs[0]))
            total += float(reward)
            task_total += float(info.get("task_reward", reward))
            steps += 1
            done = terminated or truncated
        returns.append(total)
        task_returns.append(task_total)
        lengths.append(steps)
    return {"returns": returns, "return_mean": float(np.mean(returns)), "return_std": float(np.std(returns)),
            "episode_lengths": lengths, "original_task_returns": task_returns,
            "ms_per_action": 1000.0 * float(np.mean(times)) if times else None, "compile_s": compile_s,
            "torso_height_mean": float(np.mean(heights)), "torso_height_max": float(np.max(heights))}


if __name__ == "__main__":
    main()
