"""Generate an offline pixel dataset with a behaviour policy: `python -m lejepa.collect env=two_room`.

Writes `<out_dir>/episodes.npz` and `manifest.json` (env, policy, seed, sizes, sha256); default out_dir is
`<data_dir>/lejepa/<env>`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from common.config import LoggerConfig, as_dict, check_choice, check_range, hydra_app, run_dir
from common.logging import RunLogger
from common.paths import data_dir
from lejepa.envs import ENVS
from lejepa.envs.dataset import POLICIES, collect_dataset


@dataclass
class CollectConfig:
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    env: str = "two_room"
    policy: str = "mixed"
    episodes: int = 300
    steps: int = 24
    image_size: int = 32
    noise: float = 0.3
    seed: int = 0
    out_dir: str = ""
    scale: str = "cpu"

    def __post_init__(self) -> None:
        check_choice("env", self.env, ENVS)
        check_choice("policy", self.policy, POLICIES)
        check_choice("scale", self.scale, ("tiny", "cpu", "gpu"))
        check_range("episodes", self.episodes, 1)
        check_range("steps", self.steps, 1)
        check_range("image_size", self.image_size, 8)
        check_range("noise", self.noise, 0.0)
        check_range("seed", self.seed, 0)


def output_dir(cfg: CollectConfig) -> Path:
    return Path(cfg.out_dir) if cfg.out_dir else data_dir() / "lejepa" / cfg.env


@hydra_app("lejepa", "collect", CollectConfig)
def main(cfg: CollectConfig) -> dict:
    with RunLogger(cfg.logger, run_dir(), config=as_dict(cfg), name=f"collect-{cfg.env}") as log:
        manifest = collect_dataset(cfg.env, cfg.policy, cfg.episodes, cfg.steps, cfg.seed, cfg.image_size,
                                   output_dir(cfg), progress=log.progress, noise=cfg.noise)
        log.summary({"episodes": manifest["episodes"], "steps": manifest["steps"]})
    print(f"wrote {output_dir(cfg)} (sha256 {manifest['sha256'][:12]})")
    return manifest


if __name__ == "__main__":
    main()
