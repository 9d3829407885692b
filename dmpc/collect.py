"""`python -m dmpc.collect task=hopper`: train our SAC behaviour policy and write D4RL-style datasets.

mode=behaviour: SAC -> actor snapshots (`<workspace>/policies/`), expert (best) and medium (~1/3 of expert)
policies, then datasets `random`, `medium`, `medium-replay` (replay buffer up to the medium snapshot),
`medium-expert` (medium + expert rollouts), `expert`, each with a sha256 manifest in `<workspace>/datasets/`.
`policies_dir=<dir with levels.json + checkpoints>` skips SAC and regenerates the rollout datasets from those
(small, committed) checkpoints by seed, e.g. experiments/dmpc/policies/hopper_cpu.
mode=play: noisy rollouts of a behaviour policy in `task` (e.g. walker2d_broken_ankle) -> `<task>-play.npz`.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from common.config import ConfigError, as_dict, hydra_app, run_dir
from common.logging import RunLogger
from common.seed import seed_everything
from dmpc.agents.sac import SACConfig
from dmpc.config import CollectConfig, workspace_dir
from dmpc.data.behaviour import (
    load_policy,
    noisy_policy_fn,
    rollout,
    train_behaviour_policy,
    uniform_policy_fn,
)
from dmpc.data.dataset import concat_datasets, save_dataset, sha256_file
from dmpc.envs import TASK_ENV_IDS, make_env


@hydra_app("dmpc", "collect", CollectConfig)
def main(cfg: CollectConfig) -> dict:
    seed_everything(cfg.seed)
    out = workspace_dir(cfg.workspace, cfg.task, cfg.scale)
    with RunLogger(cfg.logger, run_dir(), config=as_dict(cfg), name=f"dmpc-collect-{cfg.task}") as log:
        if cfg.mode == "play":
            return collect_play(cfg, out, log)
        return collect_behaviour(cfg, out, log)


def collect_behaviour(cfg: CollectConfig, out: Path, log: RunLogger) -> dict:
    sizes = cfg.sizes
    start = time.perf_counter()
    if cfg.policies_dir:
        run, levels = None, read_levels(Path(cfg.policies_dir))
        if "medium-replay" in cfg.datasets:
            raise ConfigError("datasets contains medium-replay, which needs the SAC replay buffer; with "
                              "policies_dir set only rollout datasets (random, medium, expert, medium-expert) "
                              "can be regenerated")
    else:
        sac = SACConfig(hidden=tuple(sizes.sac_hidden), batch_size=sizes.batch_size)
        run = train_behaviour_policy(cfg.task, sizes.sac_steps, cfg.seed, out, sac, start_steps=sizes.start_steps,
                                     update_every=sizes.update_every, eval_every=sizes.eval_every,
                                     eval_episodes=sizes.eval_episodes, max_episode_steps=sizes.max_episode_steps,
                                     progress=log.progress, log=log.log)
        levels = {"expert": run.expert, "medium": run.medium}
        (out / "policies").mkdir(parents=True, exist_ok=True)
        record = {k: {**v, "path": Path(v["path"]).name} for k, v in levels.items()}
        (out / "policies" / "levels.json").write_text(json.dumps({**record, "snapshots": run.snapshots}, indent=2))
        if cfg.export_policies:
            export_policies(out / "policies", Path(cfg.export_policies), record)
    act_dim = make_env(cfg.task).action_space.shape[0]
    base = {"env": TASK_ENV_IDS[cfg.task], "seed": cfg.seed, "scale": cfg.scale,
            "max_episode_steps": sizes.max_episode_steps}
    written, rollouts = {}, {}

    def policy_rollout(level: str, seed: int):
        if level not in rollouts:
            policy, _ = load_policy(levels[level]["path"])
            rollouts[level] = rollout(cfg.task, policy, sizes.n_transitions, seed, sizes.max_episode_steps)
        return rollouts[level]

    def policy_meta(level: str) -> dict:
        snap = levels[level]
        return {"policy": {"level": level, "checkpoint": str(snap["path"]),
                           "sha256": sha256_file(snap["path"]), "sac_step": snap["step"],
                           "eval_return": snap["eval_return"]}}

    for kind in cfg.datasets:
        if kind == "random":
            data = rollout(cfg.task, uniform_policy_fn(act_dim), sizes.n_transitions, cfg.seed + 1,
                           sizes.max_episode_steps)
            meta = {"policy": {"level": "random", "checkpoint": None}}
        elif kind in ("medium", "expert"):
            data = policy_rollout(kind, cfg.seed + (2 if kind == "medium" else 3))
            meta = policy_meta(kind)
        elif kind == "medium-replay":
            n = run.medium["step"]
            data = {k: v[:n].copy() for k, v in run.replay.items()}
            data["timeouts"][-1] = data["timeouts"][-1] or not data["terminals"][-1]
            meta = {"policy": {"level": "sac replay buffer up to the medium snapshot", "sac_steps": n}}
        else:  # medium-expert
            data = concat_datasets(policy_rollout("medium", cfg.seed + 2), policy_rollout("expert", cfg.seed + 3))
            meta = {"policy": {"level": "medium + expert", **{k: policy_meta(k)["policy"] for k in levels}}}
        path = save_dataset(out / "datasets", cfg.task, kind, data, {**base, **meta})
        written[kind] = str(path)
        returns = json.loads(path.with_suffix(".json").read_text())["returns"]
        log.summary({f"{kind}/return_mean": returns["mean"], f"{kind}/n": len(data["rewards"])})
    summary = {"workspace": str(out), "datasets": written, "expert_return": levels["expert"]["eval_return"],
               "medium_return": levels["medium"]["eval_return"], "wall_s": time.perf_counter() - start}
    log.summary({k: v for k, v in summary.items() if isinstance(v, float)})
    return summary


def export_policies(source: Path, target: Path, record: dict) -> None:
    """Copy the medium and expert checkpoints + levels.json (small files, meant to be committed) to `target`."""
    target.mkdir(parents=True, exist_ok=True)
    for snap in record.values():
        shutil.copy2(source / snap["path"], target / snap["path"])
    (target / "levels.json").write_text(json.dumps(record, indent=2) + "\n")


def read_levels(policies_dir: Path) -> dict:
    """{"expert": snapshot, "medium": snapshot} from `<policies_dir>/levels.json`, paths made absolute."""
    levels_file = policies_dir / "levels.json"
    if not levels_file.is_file():
        raise ConfigError(f"no behaviour policies at {levels_file}; run `python -m dmpc.collect` (mode=behaviour)")
    record = json.loads(levels_file.read_text())
    return {k: {**record[k], "path": str(policies_dir / Path(record[k]["path"]).name)} for k in ("expert", "medium")}


def collect_play(cfg: CollectConfig, out: Path, log: RunLogger) -> dict:
    sizes = cfg.sizes
    policy_path = cfg.play_policy
    if not policy_path:
        policy_path = read_levels(workspace_dir("", cfg.play_source_task, cfg.scale) / "policies")["medium"]["path"]
    policy, _ = load_policy(policy_path)
    data = rollout(cfg.task, noisy_policy_fn(policy, cfg.play_noise_std), sizes.play_transitions, cfg.seed + 7,
                   sizes.max_episode_steps)
    meta = {"env": TASK_ENV_IDS[cfg.task], "seed": cfg.seed, "scale": cfg.scale,
            "policy": {"level": "play", "checkpoint": str(policy_path), "sha256": sha256_file(policy_path),
                       "noise_std": cfg.play_noise_std}}
    path = save_dataset(out / "datasets", cfg.task, "play", data, meta)
    log.summary({"play/n": len(data["rewards"]), "play/return_mean": float(np.mean(data["rewards"]))})
    return {"workspace": str(out), "datasets": {"play": str(path)}}


if __name__ == "__main__":
    main()
