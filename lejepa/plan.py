"""Goal-conditioned planning with a trained world model: `python -m lejepa.plan ckpt=<dir>`.

The authors' evaluation protocol (lejepa/planning.py, lejepa/evaluation.py): `episodes` problems drawn from the
held-out episodes of the model's dataset (default 50, swm scripts/plan/config/*.yaml `num_eval`), goal
`goal_offset` = 25 env steps ahead on the trajectory, `eval_budget` = 50 env steps, CEM 300 x 30 iterations, top 30,
horizon 5 blocks of 5 env actions, receding horizon 5, success counted at any step. Frame skip, history and the
action standardisation come from the checkpoint. Writes success rate, time per plan and distances to a results JSON
(`experiments/lejepa/results/<result_name>_<scale>.json`, default result_name `plan_<env>_<run name>`) and to
`<run dir>/plan.json`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from common.config import LoggerConfig, as_dict, check_choice, check_range, hydra_app, run_dir
from common.device import choose_device, describe_device
from common.logging import RunLogger
from common.results import write_result
from common.seed import seed_everything
from lejepa.envs import make_env
from lejepa.envs.dataset import load_dataset
from lejepa.evaluation import dataset_problems, load_world_model
from lejepa.planning import PlannerConfig, plan_episodes
from lejepa.train import dataset_dir

PAPER_SUCCESS = {"push_t": 0.96, "reacher": 0.86, "two_room": 0.87, "cube": 0.74}


@dataclass
class PlanConfig:
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    ckpt: str = "???"
    data_dir: str = ""  # the dataset whose held-out episodes give the problems (default: the env's)
    val_episodes: int = 40  # the held-out tail; the checkpoint's data.val_episodes when it records one
    scale: str = "cpu"
    seed: int = 0
    device: str = "auto"
    episodes: int = 50
    goal_offset: int = 25
    eval_budget: int = 50
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    precision: str = "fp32"  # fp32 | bf16 (autocast on CUDA; swm eval_wm.py has the same `bf16` switch)
    result_name: str = ""
    write_results: bool = True

    def __post_init__(self) -> None:
        check_choice("scale", self.scale, ("tiny", "cpu", "gpu"))
        check_choice("planner.method", self.planner.method, ("cem", "mppi"))
        check_choice("precision", self.precision, ("fp32", "bf16"))
        check_range("seed", self.seed, 0)
        check_range("val_episodes", self.val_episodes, 1)
        check_range("episodes", self.episodes, 1)
        check_range("goal_offset", self.goal_offset, 1)
        check_range("eval_budget", self.eval_budget, 1)
        check_range("planner.horizon", self.planner.horizon, 1)
        check_range("planner.receding", self.planner.receding, 1, self.planner.horizon)
        check_range("planner.samples", self.planner.samples, 2)
        check_range("planner.iterations", self.planner.iterations, 1)
        check_range("planner.init_std", self.planner.init_std, 0.0, low_open=True)
        check_range("planner.min_std", self.planner.min_std, 0.0, self.planner.init_std)
        check_range("planner.temperature", self.planner.temperature, 0.0, low_open=True)
        check_range("planner.history", self.planner.history, 1)
        check_range("planner.cost_chunk", self.planner.cost_chunk, 1)
        if self.planner.method == "cem":
            check_range("planner.elites", self.planner.elites, 2, self.planner.samples)


def run_planning(cfg: PlanConfig) -> dict:
    start = time.perf_counter()
    seed_everything(cfg.seed)
    device = choose_device(cfg.device)
    model, extra = load_world_model(cfg.ckpt, device)
    data = load_dataset(dataset_dir(cfg.data_dir, extra["env"]))
    problems = dataset_problems(data, extra.get("val_episodes", cfg.val_episodes), cfg.episodes, cfg.goal_offset,
                                cfg.seed)
    envs = [make_env(extra["env"], model.cfg.encoder.image_size) for _ in range(cfg.episodes)]
    frameskip = extra.get("frameskip", 1)
    if cfg.planner.horizon * frameskip > cfg.eval_budget:
        raise ValueError(f"planner.horizon x frameskip = {cfg.planner.horizon * frameskip} env steps exceeds "
                         f"eval_budget={cfg.eval_budget} (the authors' eval_wm.py asserts the same)")
    cuda = device.startswith("cuda")
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and cfg.precision == "bf16"):
        out = plan_episodes(model, envs, problems, cfg.planner, frameskip, np.asarray(extra["action_mean"]),
                            np.asarray(extra["action_std"]), cfg.goal_offset, cfg.eval_budget, cfg.seed, device)
    if extra["env"] == "two_room":
        cross = (problems.start_states[:, 0] < 0.5) != (problems.goal_states[:, 0] < 0.5)
        out["cross_room_fraction"] = float(cross.mean())
    out.update(model=extra["name"], objective=extra["model_config"]["objective"], env=extra["env"],
               precision=cfg.precision if cuda else "fp32",
               train_seed=extra.get("seed"), train_step=extra["step"], frameskip=frameskip,
               history=cfg.planner.history, wall_s=time.perf_counter() - start)
    return out


@hydra_app("lejepa", "plan", PlanConfig)
def main(cfg: PlanConfig) -> dict:
    out = run_planning(cfg)
    with RunLogger(cfg.logger, run_dir(), config=as_dict(cfg), name=f"plan-{out['model']}") as log:
        log.summary({k: v for k, v in out.items() if isinstance(v, int | float)})
    (run_dir() / "plan.json").write_text(json.dumps(out, indent=2) + "\n")
    if cfg.write_results:
        paper = {"success_rate": PAPER_SUCCESS.get(out["env"]), "note": "LeWM paper, full-scale model and data"}
        write_result("lejepa", cfg.result_name or f"plan_{out['env']}_{out['model']}", cfg.scale, out, paper=paper,
                     config=as_dict(cfg), device=describe_device(choose_device(cfg.device)), wall_s=out["wall_s"])
    print({k: v for k, v in out.items() if not isinstance(v, list)})
    return out


if __name__ == "__main__":
    main()
