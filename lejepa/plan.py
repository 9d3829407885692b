"""Goal-conditioned planning with a trained world model: `python -m lejepa.plan ckpt=<dir>`.

Latent CEM (or MPPI) toward the goal frame's embedding with receding horizon, on held-out start/goal pairs of the
model's environment; writes success rate, final distance and planning time to a results JSON
(`experiments/lejepa/results/<experiment>_<scale>.json`) and to `<run dir>/plan.json`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from common.config import LoggerConfig, as_dict, check_choice, check_range, hydra_app, run_dir
from common.device import choose_device, describe_device
from common.logging import RunLogger
from common.results import write_result
from common.seed import seed_everything
from lejepa.envs import make_env
from lejepa.evaluation import load_world_model, start_goal_pairs
from lejepa.planning import PlannerConfig, plan_episodes

PAPER_SUCCESS = {"push_t": 0.96, "reacher": 0.86, "two_room": 0.87, "cube": 0.74}


@dataclass
class PlanConfig:
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    ckpt: str = "???"
    scale: str = "cpu"
    seed: int = 0
    device: str = "auto"
    pairs: int = 20
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    result_name: str = "plan"
    write_results: bool = True

    def __post_init__(self) -> None:
        check_choice("scale", self.scale, ("tiny", "cpu", "gpu"))
        check_choice("planner.method", self.planner.method, ("cem", "mppi"))
        check_range("seed", self.seed, 0)
        check_range("pairs", self.pairs, 1)
        check_range("planner.horizon", self.planner.horizon, 1)
        check_range("planner.samples", self.planner.samples, 2)
        check_range("planner.iterations", self.planner.iterations, 1)
        check_range("planner.init_std", self.planner.init_std, 0.0, low_open=True)
        check_range("planner.min_std", self.planner.min_std, 0.0, self.planner.init_std)
        check_range("planner.temperature", self.planner.temperature, 0.0, low_open=True)
        check_range("planner.execute", self.planner.execute, 1, self.planner.horizon)
        check_range("planner.max_steps", self.planner.max_steps, 1)
        check_range("planner.context", self.planner.context, 1)
        if self.planner.method == "cem":
            check_range("planner.elites", self.planner.elites, 2, self.planner.samples)


def run_planning(cfg: PlanConfig) -> dict:
    start = time.perf_counter()
    seed_everything(cfg.seed)
    device = choose_device(cfg.device)
    model, extra = load_world_model(cfg.ckpt, device)
    image_size = model.cfg.encoder.image_size
    envs = [make_env(extra["env"], image_size) for _ in range(cfg.pairs)]
    starts, goals = start_goal_pairs(envs[0], cfg.pairs, cfg.seed)
    out = plan_episodes(model, envs, starts, goals, cfg.planner, seed=cfg.seed, device=device)
    if extra["env"] == "two_room":
        cross = (starts[:, 0] < 0.5) != (goals[:, 0] < 0.5)
        succ = [bool(s) for s in out["success"]]
        out["success_same_room"] = _mean([s for s, c in zip(succ, cross, strict=True) if not c])
        out["success_cross_room"] = _mean([s for s, c in zip(succ, cross, strict=True) if c])
        out["start_goal_distance_mean"] = float(((starts - goals) ** 2).sum(1).mean() ** 0.5)
    out.update(model=extra["name"], env=extra["env"], train_step=extra["step"], wall_s=time.perf_counter() - start)
    return out


def _mean(values: list) -> float | None:
    return float(sum(values) / len(values)) if values else None


@hydra_app("lejepa", "plan", PlanConfig)
def main(cfg: PlanConfig) -> dict:
    out = run_planning(cfg)
    with RunLogger(cfg.logger, run_dir(), config=as_dict(cfg), name=f"plan-{out['model']}") as log:
        log.summary({k: v for k, v in out.items() if isinstance(v, int | float)})
    (run_dir() / "plan.json").write_text(json.dumps(out, indent=2) + "\n")
    if cfg.write_results:
        paper = {"success_rate": PAPER_SUCCESS.get(out["env"]), "note": "LeWM paper, full-scale model and data"}
        write_result("lejepa", cfg.result_name, cfg.scale, out, paper=paper, config=as_dict(cfg),
                     device=describe_device(choose_device(cfg.device)), wall_s=out["wall_s"])
    return out


if __name__ == "__main__":
    main()
