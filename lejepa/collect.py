"""Generate an offline pixel dataset with a behaviour policy: `python -m lejepa.collect env=two_room`.

Writes `<out_dir>/{frames,actions,states}.npy` and `manifest.json` (env, policy, seed, sizes, sha256, policy
statistics such as Push-T's block-pose coverage); default out_dir is `<data_dir>/lejepa/<env>`. `workers > 1`
spreads episodes over spawned processes (same bytes as one worker).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from common.config import LoggerConfig, as_dict, check_choice, check_range, hydra_app, run_dir
from common.logging import RunLogger
from common.paths import data_dir
from lejepa.envs import ENVS, POLICIES
from lejepa.envs.dataset import collect_dataset


@dataclass
class CollectConfig:
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    env: str = "two_room"
    policy: str = "mixed"
    episodes: int = 300
    steps: int = 24
    image_size: int = 32
    noise: float | None = None  # None: the policy's default
    seed: int = 0
    workers: int = 1
    out_dir: str = ""
    scale: str = "cpu"

    def __post_init__(self) -> None:
        check_choice("env", self.env, ENVS)
        check_choice("policy", self.policy, POLICIES)
        check_choice("scale", self.scale, ("tiny", "cpu", "gpu"))
        check_range("episodes", self.episodes, 1)
        check_range("steps", self.steps, 1)
        check_range("image_size", self.image_size, 8)
        if self.noise is not None:
            check_range("noise", self.noise, 0.0)
        check_range("seed", self.seed, 0)
        check_range("workers", self.workers, 1)


def output_dir(cfg: CollectConfig) -> Path:
    return Path(cfg.out_dir) if cfg.out_dir else data_dir() / "lejepa" / cfg.env


@hydra_app("lejepa", "collect", CollectConfig)
def main(cfg: CollectConfig) -> dict:
    with RunLogger(cfg.logger, run_dir(), config=as_dict(cfg), name=f"collect-{cfg.env}") as log:
        manifest = collect_dataset(cfg.env, cfg.policy, cfg.episodes, cfg.steps, cfg.seed, cfg.image_size,
                                   output_dir(cfg), progress=log.progress, noise=cfg.noise, workers=cfg.workers)
        log.summary({"episodes": manifest["episodes"], "steps": manifest["steps"]})
    print(f"wrote {output_dir(cfg)} (frames sha256 {manifest['files']['frames']['sha256'][:12]}); policy stats "
          f"{json.dumps(manifest['policy_stats'])}")
    return manifest


if __name__ == "__main__":
    main()
