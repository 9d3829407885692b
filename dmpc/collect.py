"""`python -m dmpc.collect`: behaviour policies (our SAC) and the D4RL-style datasets they generate.

mode=train     train one SAC member per task of `tasks` (one jit-compiled population, data/behaviour.py) for at
               most `time_budget_s` seconds, checkpointing to `run_dir`; the same command continues the run. When
               the run reaches `sac_steps` it exports each task's policies (ladder, rule, medium and expert actors,
               medium-replay action codes) to `<workspace>/policies/` (+ `export_policies`, to commit).
mode=datasets  from exported policies (`policies_dir`, else the committed `export_policies`, else
               `<workspace>/policies`): `random`, `medium`,
               `medium-replay` (re-simulated from the training run's recorded actions), `medium-expert` (medium +
               expert), `expert`, each a `<task>-<kind>.npz` with a sha256 manifest in `<workspace>/datasets/`,
               regenerated bit-identically by seed (checked against the manifests in the policies' folder,
               `<policies>/datasets/`, recorded there the first time when `export_policies` is set); with
               `results_name`, the levels' results JSON.
mode=behaviour train to the end, export, then datasets (what `make reproduce-dmpc` runs at the cpu scale).
mode=play      noisy rollouts of a behaviour policy in `task` (e.g. walker2d_broken_ankle) -> `<task>-play.npz`.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from pathlib import Path

import numpy as np

from common.config import ConfigError, as_dict, hydra_app, run_dir
from common.logging import RunLogger
from common.results import write_result
from common.seed import seed_everything
from dmpc.agents.sac import SACConfig
from dmpc.config import CollectConfig, CollectSizes, workspace_dir
from dmpc.data.behaviour import LoopConfig, export_levels, regenerate_replay, train_behaviour_policies
from dmpc.data.dataset import (
    DatasetError,
    complete_episode_returns,
    concat_datasets,
    save_dataset,
    sha256_file,
)
from dmpc.data.ladder import LevelsError, d4rl_task
from dmpc.data.policy import load_actor
from dmpc.data.rollouts import PolicySpec, collect_transitions, stream_id, worker_pool
from dmpc.envs import D4RL_REF_RETURNS, TASK_ENV_IDS, make_env, normalized_score

PAPER = {
    "source": "Fu et al., D4RL: Datasets for Deep Data-Driven Reinforcement Learning (arXiv 2004.07219); "
              "reference returns: d4rl/infos.py REF_MIN_SCORE (random policy) / REF_MAX_SCORE (expert), "
              "dmpc/envs/scores.py",
    "reference_returns": {k: list(v) for k, v in D4RL_REF_RETURNS.items()},
    "definitions": {
        "random": "uniform random actions, 1M steps (normalized 0 by the definition of REF_MIN_SCORE)",
        "medium": "a SAC policy stopped at about 1/3 of the expert's performance, 1M steps",
        "medium-replay": "the SAC replay buffer until the policy reached the medium level",
        "medium-expert": "medium + expert data in equal amounts, 2M steps",
        "expert": "a fully trained SAC policy, 1M steps (normalized 100 by the definition of REF_MAX_SCORE)",
    },
    "levels_note": "`<task>_<kind>_normalized` here are the levels implied by these definitions and the reference "
                   "returns (medium: 1/3 of REF_MAX_SCORE's return; medium-expert: the mean of medium and expert); "
                   "D4RL's measured per-dataset levels are not transcribed",
}
KIND_KEYS = {"random": "random", "medium": "medium", "medium-replay": "medium_replay",
             "medium-expert": "medium_expert", "expert": "expert"}


@hydra_app("dmpc", "collect", CollectConfig)
def main(cfg: CollectConfig) -> dict:
    seed_everything(cfg.seed)
    name = f"dmpc-collect-{cfg.mode}-{'-'.join(cfg.run_tasks)}"
    with RunLogger(cfg.logger, run_dir(), config=as_dict(cfg), name=name) as log:
        if cfg.mode == "play":
            return collect_play(cfg, log)
        if cfg.mode == "datasets":
            return collect_datasets(cfg, log)
        summary = train(cfg, log)
        if summary["done"] and cfg.mode == "behaviour":
            summary.update(collect_datasets(cfg, log))
        return summary


def train(cfg: CollectConfig, log: RunLogger) -> dict:
    """Train (or continue) the run; export every task's policies once it is done."""
    sizes = cfg.sizes
    status = train_behaviour_policies(cfg.run_tasks, cfg.seed, cfg.sac_run_dir(), loop_config(sizes),
                                      sac_config(sizes), time_budget_s=cfg.time_budget_s, log=log.log)
    summary = {"run_dir": str(cfg.sac_run_dir()), "step": status.step, "sac_steps": sizes.sac_steps,
               "done": status.done, "wall_s": status.wall_s, "updates_per_s": status.updates_per_s,
               "env_steps_per_s": status.env_steps_per_s,
               "best_normalized": {t: max((r["normalized"] for r in lad), default=None)
                                   for t, lad in status.ladders.items()}}
    failed = []
    if status.done:
        for task in cfg.run_tasks:
            target = workspace_dir(cfg.workspace, task, cfg.scale) / "policies"
            try:
                record = export_levels(cfg.sac_run_dir(), task, target)
            except LevelsError as err:
                failed.append(str(err))
                continue
            if cfg.export_policies:
                copy_policies(target, Path(cfg.export_policies.format(task=task)))
            summary[f"{task}/expert_normalized"] = record["expert"]["normalized"]
            summary[f"{task}/medium_normalized"] = record["medium"]["normalized"]
            summary[f"{task}/levels_ok"] = record["expert_ok"] and record["medium_ok"]
    log.summary({k: v for k, v in summary.items() if isinstance(v, float | int) and not isinstance(v, bool)})
    print(json.dumps(summary, indent=1, default=str))
    if failed:
        raise LevelsError("; ".join(failed))
    return summary


def loop_config(sizes: CollectSizes) -> LoopConfig:
    return LoopConfig(sac_steps=sizes.sac_steps, start_steps=sizes.start_steps, block=sizes.block, utd=sizes.utd,
                      snapshot_every=sizes.snapshot_every, eval_episodes=sizes.eval_episodes,
                      ladder_bin=sizes.ladder_bin,
                      max_episode_steps=sizes.max_episode_steps, env_workers=sizes.env_workers,
                      eval_workers=sizes.workers, save_every_s=sizes.save_every_s)


def sac_config(sizes: CollectSizes) -> SACConfig:
    return SACConfig(hidden=tuple(sizes.sac_hidden), lr=sizes.sac_lr, batch_size=sizes.batch_size,
                     init_temperature=sizes.init_temperature)


def collect_datasets(cfg: CollectConfig, log: RunLogger) -> dict:
    """Every task's `datasets` from its exported policies; the levels' results JSON with `results_name`."""
    start = time.perf_counter()
    metrics: dict = {}
    written = {}
    for task in cfg.run_tasks:
        policies = policies_dir(cfg, task)
        out = workspace_dir(cfg.workspace, task, cfg.scale) / "datasets"
        for kind, (path, manifest) in write_task_datasets(task, cfg.datasets, policies, out, cfg.seed,
                                                          cfg.sizes, cfg.scale, log.progress).items():
            check_or_record_manifest(path, policies / "datasets", record=bool(cfg.export_policies))
            written[f"{task}-{kind}"] = str(path)
            key = f"{task}_{KIND_KEYS[kind]}"
            metrics[f"{key}_normalized"] = manifest["normalized"]
            metrics[f"{key}_return_mean"] = manifest["returns"]["mean"]
            metrics[f"{key}_n_transitions"] = manifest["n_transitions"]
            metrics[f"{key}_n_episodes"] = manifest["n_episodes"]
            metrics.setdefault("sha256", {})[f"{task}-{kind}"] = manifest["sha256"]
            log.summary({f"{task}-{kind}/normalized": manifest["normalized"]})
        levels = read_levels(policies)
        metrics[f"{task}_levels_ok"] = bool(levels["expert_ok"] and levels["medium_ok"])
        for level in ("expert", "medium"):
            metrics[f"{task}_{level}_policy_normalized"] = levels[level]["normalized"]
            metrics[f"{task}_{level}_policy_step"] = levels[level]["step"]
            metrics[f"{task}_{level}_policy_episodes"] = len(levels[level]["returns"])
    summary = {"datasets": written, "wall_s": time.perf_counter() - start}
    if cfg.results_name:
        paper = {**PAPER, **implied_levels(cfg.run_tasks)}
        summary["results"] = str(write_result("dmpc", "datasets", cfg.scale, metrics, paper=paper,
                                              config=as_dict(cfg), wall_s=summary["wall_s"],
                                              name=cfg.results_name))
    print(json.dumps({k: v for k, v in metrics.items() if k != "sha256"}, indent=1))
    return summary


def policies_dir(cfg: CollectConfig, task: str) -> Path:
    """Where `task`'s exported policies are read from: `policies_dir`, else `export_policies` (the committed
    copy), else `<workspace>/policies` ('{task}' replaced)."""
    if cfg.policies_dir or cfg.export_policies:
        return Path((cfg.policies_dir or cfg.export_policies).format(task=task))
    return workspace_dir(cfg.workspace, task, cfg.scale) / "policies"


def check_or_record_manifest(npz: Path, committed: Path, record: bool = True) -> None:
    """Compare a regenerated dataset with its committed manifest (`committed/<name>.json`, beside the policies
    that generated it); without one, record it there when `record`. DatasetError names both sha256 and both
    machines' software when they differ."""
    manifest = json.loads(npz.with_suffix(".json").read_text())
    target = committed / npz.with_suffix(".json").name
    if target.is_file():
        expected = json.loads(target.read_text())
        if expected["sha256"] != manifest["sha256"]:
            raise DatasetError(f"{npz} was regenerated with sha256 {manifest['sha256'][:12]}... but {target} "
                               f"records {expected['sha256'][:12]}... (recorded with {expected.get('software')}, "
                               f"regenerated with {manifest.get('software')})")
        return
    if record:
        committed.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(manifest, indent=2) + "\n")


def write_task_datasets(task: str, kinds: list[str], policies: Path, out: Path, seed: int, sizes: CollectSizes,
                        scale: str, progress=None) -> dict[str, tuple[Path, dict]]:
    """{kind: (npz path, manifest)} of one task's datasets from the exported policies in `policies`, rolled out
    by `sizes.workers` processes; `progress` (RunLogger.progress) draws a bar over the datasets."""
    with worker_pool(sizes.workers) as pool:
        return _write_task_datasets(task, kinds, policies, out, seed, sizes, scale, pool, progress)


def _write_task_datasets(task, kinds, policies: Path, out: Path, seed: int, sizes: CollectSizes, scale: str,
                         pool, progress) -> dict[str, tuple[Path, dict]]:
    levels = read_levels(policies)
    act_dim = make_env(task).action_space.shape[0]
    base = {"env": TASK_ENV_IDS[task], "seed": seed, "scale": scale, "max_episode_steps": sizes.max_episode_steps,
            "software": software_versions()}
    rollouts: dict[str, dict] = {}

    def policy_rollout(level: str) -> dict:
        if level not in rollouts:
            layers, _ = load_actor(levels[level]["path"])
            spec = PolicySpec("actor", act_dim, tuple(layers))
            rollouts[level] = collect_transitions(task, spec, sizes.n_transitions, seed, stream_id(level),
                                                  sizes.max_episode_steps, pool)
        return rollouts[level]

    def policy_meta(level: str) -> dict:
        snap = levels[level]
        return {"level": level, "checkpoint": Path(snap["path"]).name, "policies_dir": str(policies),
                "sha256": sha256_file(snap["path"]), "sac_step": snap["step"],
                "eval_return_mean": snap["return_mean"], "eval_normalized": snap["normalized"],
                "eval_episodes": len(snap["returns"]), "stream": stream_id(level)}

    written = {}
    for kind in progress(kinds, total=len(kinds), desc=f"{task} datasets") if progress else kinds:
        if kind == "random":
            data = collect_transitions(task, PolicySpec("uniform", act_dim), sizes.n_transitions, seed,
                                       stream_id("random"), sizes.max_episode_steps, pool)
            meta = {"policy": {"level": "random", "checkpoint": None, "stream": stream_id("random")}}
        elif kind in ("medium", "expert"):
            data, meta = policy_rollout(kind), {"policy": policy_meta(kind)}
        elif kind == "medium-replay":
            data = regenerate_replay(policies, task, sizes.max_episode_steps, pool)
            replay = levels["replay"]
            meta = {"policy": {"level": "SAC replay buffer before the medium snapshot", "file": replay["file"],
                               "sha256": replay["sha256"], "sac_steps": replay["n_transitions"],
                               "stream": replay["stream"], "medium": policy_meta("medium")}}
        else:  # medium-expert
            data = concat_datasets(policy_rollout("medium"), policy_rollout("expert"))
            meta = {"policy": {"level": "medium + expert", "medium": policy_meta("medium"),
                               "expert": policy_meta("expert")}}
        parts = [policy_rollout("medium"), policy_rollout("expert")] if kind == "medium-expert" else [data]
        complete = np.concatenate([complete_episode_returns(part, sizes.max_episode_steps) for part in parts])
        level = {"normalized": float(normalized_score(d4rl_task(task), complete.mean())),
                 "complete_episodes": int(len(complete))}
        path = save_dataset(out, task, kind, data, {**base, **meta, **level})
        written[kind] = (path, json.loads(path.with_suffix(".json").read_text()))
    return written


def implied_levels(tasks: list[str]) -> dict[str, float | None]:
    """D4RL's levels as its definitions put them, in normalized points (see PAPER['levels_note'])."""
    out: dict[str, float | None] = {}
    for task in tasks:
        medium = float(normalized_score(d4rl_task(task), D4RL_REF_RETURNS[d4rl_task(task)][1] / 3.0))
        out.update({f"{task}_random_normalized": 0.0, f"{task}_medium_normalized": medium,
                    f"{task}_medium_replay_normalized": None, f"{task}_medium_expert_normalized": (medium + 100) / 2,
                    f"{task}_expert_normalized": 100.0})
    return out


def software_versions() -> dict[str, str]:
    """What the bytes of a dataset depend on besides the seed and the policy."""
    import gymnasium
    import mujoco

    return {"numpy": np.__version__, "mujoco": mujoco.__version__, "gymnasium": gymnasium.__version__,
            "machine": platform.machine()}


def copy_policies(source: Path, target: Path) -> None:
    """Copy exported policies (levels.json, the two actors, replay_actions.npz: small, meant to be committed) over
    the previous ones, whose dataset manifests go too."""
    target.mkdir(parents=True, exist_ok=True)
    for old in target.iterdir():
        if old.is_file():
            old.unlink()
    shutil.rmtree(target / "datasets", ignore_errors=True)  # manifests of the previous policies' datasets
    for file in source.iterdir():
        if file.is_file():
            shutil.copy2(file, target / file.name)


def read_levels(policies_dir: Path) -> dict:
    """`<policies_dir>/levels.json` with the expert/medium checkpoint paths made absolute."""
    levels_file = policies_dir / "levels.json"
    if not levels_file.is_file():
        raise ConfigError(f"no behaviour policies at {levels_file}; run `python -m dmpc.collect mode=train` first")
    record = json.loads(levels_file.read_text())
    for level in ("expert", "medium"):
        record[level] = {**record[level], "path": str(policies_dir / Path(record[level]["path"]).name)}
    return record


def collect_play(cfg: CollectConfig, log: RunLogger) -> dict:
    sizes = cfg.sizes
    policy_path = cfg.play_policy
    if not policy_path:
        policy_path = read_levels(workspace_dir("", cfg.play_source_task, cfg.scale) / "policies")["medium"]["path"]
    layers, record = load_actor(policy_path)
    spec = PolicySpec("actor", int(record["act_dim"]), tuple(layers), noise_std=cfg.play_noise_std)
    with worker_pool(sizes.workers) as pool:
        data = collect_transitions(cfg.task, spec, sizes.play_transitions, cfg.seed, stream_id("play"),
                                   sizes.max_episode_steps, pool)
    meta = {"env": TASK_ENV_IDS[cfg.task], "seed": cfg.seed, "scale": cfg.scale,
            "policy": {"level": "play", "checkpoint": str(policy_path), "sha256": sha256_file(policy_path),
                       "noise_std": cfg.play_noise_std, "stream": stream_id("play")}}
    out = workspace_dir(cfg.workspace, cfg.task, cfg.scale)
    path = save_dataset(out / "datasets", cfg.task, "play", data, meta)
    log.summary({"play/n": len(data["rewards"]), "play/return_mean": float(np.mean(data["rewards"]))})
    return {"workspace": str(out), "datasets": {"play": str(path)}}


if __name__ == "__main__":
    main()
