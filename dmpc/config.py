"""Config schemas of the three entry points (Hydra structured configs; YAML roots in configs/dmpc/).

Sizes that differ between a 2-core CPU and one H100 live in `scales.cpu` / `scales.gpu`; `scale=gpu` on the
command line picks the other block, so GPU runs need no code change. `__post_init__` checks raise ConfigError
naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from common.config import ConfigError, LoggerConfig, check_choice, check_range
from common.paths import data_dir

TASKS = ("hopper", "halfcheetah", "walker2d", "walker2d_jump", "walker2d_broken_ankle")
DATASETS = ("random", "medium", "medium-replay", "medium-expert", "expert", "play")
METHODS = ("dmpc", "dmpc_1step", "mbop", "bc", "behaviour")
SCALES = ("cpu", "gpu")


def workspace_dir(workspace: str, task: str, scale: str) -> Path:
    """Where policies, datasets and models of a task live: `workspace`, or data/dmpc/<task>_<scale>."""
    return Path(workspace) if workspace else data_dir() / "dmpc" / f"{task}_{scale}"


@dataclass
class CollectSizes:
    sac_steps: int = 10_000
    start_steps: int = 1_000
    update_every: int = 50
    eval_every: int = 1_000
    eval_episodes: int = 2
    sac_hidden: list[int] = field(default_factory=lambda: [64, 64])
    batch_size: int = 64
    n_transitions: int = 10_000  # per rollout dataset (random, medium, expert; medium-expert has 2x)
    max_episode_steps: int = 1000
    play_transitions: int = 10_000

    def check(self, prefix: str) -> None:
        check_range(f"{prefix}.sac_steps", self.sac_steps, 1)
        check_range(f"{prefix}.start_steps", self.start_steps, 0, self.sac_steps)
        check_range(f"{prefix}.eval_every", self.eval_every, 1, self.sac_steps)
        check_range(f"{prefix}.eval_episodes", self.eval_episodes, 1)
        for width in self.sac_hidden:
            check_range(f"{prefix}.sac_hidden[]", width, 1)
        check_range(f"{prefix}.batch_size", self.batch_size, 1)
        check_range(f"{prefix}.n_transitions", self.n_transitions, 1)
        check_range(f"{prefix}.update_every", self.update_every, 1)
        check_range(f"{prefix}.max_episode_steps", self.max_episode_steps, 1)
        check_range(f"{prefix}.play_transitions", self.play_transitions, 1)


@dataclass
class CollectConfig:
    task: str = "hopper"
    scale: str = "cpu"
    seed: int = 0
    workspace: str = ""
    mode: str = "behaviour"  # behaviour: train SAC + write datasets; play: noisy-policy data in `task`
    policies_dir: str = ""  # behaviour mode: reuse these policy checkpoints (levels.json) instead of SAC
    export_policies: str = ""  # behaviour mode: also copy the medium/expert checkpoints here (to commit)
    datasets: list[str] = field(default_factory=lambda: ["random", "medium", "medium-replay", "medium-expert"])
    play_policy: str = ""  # play mode: behaviour-policy checkpoint (default: <source workspace>/policies medium)
    play_source_task: str = "walker2d"
    play_noise_std: float = 0.3
    scales: dict[str, CollectSizes] = field(default_factory=lambda: {"cpu": CollectSizes(), "gpu": CollectSizes()})
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def __post_init__(self) -> None:
        check_choice("task", self.task, TASKS)
        check_choice("scale", self.scale, SCALES)
        check_choice("mode", self.mode, ("behaviour", "play"))
        check_range("seed", self.seed, 0)
        for name in self.datasets:
            check_choice("datasets[]", name, DATASETS[:5])
        check_choice("play_source_task", self.play_source_task, TASKS)
        check_range("play_noise_std", self.play_noise_std, 0.0)
        _check_scales(self.scales)
        self.sizes.check(f"scales.{self.scale}")

    @property
    def sizes(self) -> CollectSizes:
        return self.scales[self.scale]


@dataclass
class DiffusionSection:
    denoiser: str = "mlp"
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    train_steps: int = 50
    schedule: str = "cosine"
    sample_steps: int = 5
    eta: float = 0.0
    clip: float = 5.0
    prediction: str = "x0"

    def check(self, prefix: str) -> None:
        check_choice(f"{prefix}.denoiser", self.denoiser, ("mlp", "transformer"))
        check_choice(f"{prefix}.prediction", self.prediction, ("eps", "x0"))
        check_choice(f"{prefix}.schedule", self.schedule, ("cosine", "linear"))
        check_range(f"{prefix}.hidden", self.hidden, 1)
        check_range(f"{prefix}.layers", self.layers, 1)
        check_range(f"{prefix}.heads", self.heads, 1)
        if self.denoiser == "transformer" and self.hidden % self.heads:
            raise ConfigError(f"{prefix}.hidden={self.hidden} is not allowed; expected a multiple of "
                              f"{prefix}.heads={self.heads} (transformer denoiser)")
        check_range(f"{prefix}.train_steps", self.train_steps, 1)
        check_range(f"{prefix}.sample_steps", self.sample_steps, 1, self.train_steps)
        check_range(f"{prefix}.eta", self.eta, 0.0, 1.0)
        check_range(f"{prefix}.clip", self.clip, 0.0, low_open=True)


@dataclass
class TrainSizes:
    steps: int = 1500
    batch_size: int = 128
    lr: float = 1e-3
    chunk: int = 250
    proposal: DiffusionSection = field(default_factory=DiffusionSection)
    dynamics: DiffusionSection = field(default_factory=DiffusionSection)
    mlp_hidden: list[int] = field(default_factory=lambda: [128, 128])
    value_hidden: int = 64
    value_layers: int = 1
    ensemble_members: int = 3
    finetune_steps: int = 500

    def check(self, prefix: str) -> None:
        check_range(f"{prefix}.steps", self.steps, 1)
        check_range(f"{prefix}.batch_size", self.batch_size, 1)
        check_range(f"{prefix}.lr", self.lr, 0.0, 1.0, low_open=True)
        check_range(f"{prefix}.chunk", self.chunk, 1)
        for width in self.mlp_hidden:
            check_range(f"{prefix}.mlp_hidden[]", width, 1)
        check_range(f"{prefix}.value_hidden", self.value_hidden, 1)
        check_range(f"{prefix}.value_layers", self.value_layers, 1)
        check_range(f"{prefix}.ensemble_members", self.ensemble_members, 1)
        check_range(f"{prefix}.finetune_steps", self.finetune_steps, 1)
        self.proposal.check(f"{prefix}.proposal")
        self.dynamics.check(f"{prefix}.dynamics")


@dataclass
class TrainConfig:
    task: str = "hopper"
    dataset: str = "medium"
    scale: str = "cpu"
    seed: int = 0
    workspace: str = ""
    model_dir: str = ""  # default <workspace>/models/<dataset>
    models: list[str] = field(default_factory=lambda: ["proposal", "dynamics", "dynamics_1step", "reward",
                                                       "value", "bc", "ensemble"])
    finetune_from: str = ""  # a trained model dir: load it, keep its normalizer, fine-tune `models` only
    history: int = 2  # H
    horizon: int = 8  # F
    gamma: float = 0.99
    scales: dict[str, TrainSizes] = field(default_factory=lambda: {"cpu": TrainSizes(), "gpu": TrainSizes()})
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def __post_init__(self) -> None:
        check_choice("task", self.task, TASKS)
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("scale", self.scale, SCALES)
        for name in self.models:
            check_choice("models[]", name, ("proposal", "dynamics", "dynamics_1step", "reward", "value", "bc",
                                            "ensemble"))
        check_range("seed", self.seed, 0)
        check_range("history", self.history, 1)
        check_range("horizon", self.horizon, 1)
        check_range("gamma", self.gamma, 0.0, 1.0, high_open=True)
        _check_scales(self.scales)
        self.sizes.check(f"scales.{self.scale}")

    @property
    def sizes(self) -> TrainSizes:
        return self.scales[self.scale]


@dataclass
class JumpSection:
    height_weight: float = 1.0
    vertical_velocity_weight: float = 1.0

    def __post_init__(self) -> None:
        check_range("jump.height_weight", self.height_weight, 0.0)
        check_range("jump.vertical_velocity_weight", self.vertical_velocity_weight, 0.0)


@dataclass
class EvalSizes:
    episodes: int = 2
    max_episode_steps: int = 1000
    num_samples: int = 32  # N for D-MPC and MBOP

    def check(self, prefix: str) -> None:
        check_range(f"{prefix}.episodes", self.episodes, 1)
        check_range(f"{prefix}.max_episode_steps", self.max_episode_steps, 1)
        check_range(f"{prefix}.num_samples", self.num_samples, 1)


@dataclass
class EvaluateConfig:
    task: str = "hopper"  # the models' task (where they were trained)
    env: str = ""  # the env to act in (default: task), e.g. walker2d_jump, walker2d_broken_ankle
    dataset: str = "medium"
    scale: str = "cpu"
    seed: int = 0
    workspace: str = ""
    model_dir: str = ""  # default <workspace>/models/<dataset>
    extra_model_dirs: dict[str, str] = field(default_factory=dict)  # method label -> model dir (e.g. finetuned)
    methods: list[str] = field(default_factory=lambda: ["dmpc", "mbop", "bc", "behaviour"])
    reward: str = "model"  # model: learned reward; jump: JumpReward passed to the planner at run time
    jump: JumpSection = field(default_factory=JumpSection)
    compare_model_reward: bool = True  # with reward=jump: also plan with the learned reward (dmpc_original)
    execute: int = 1  # actions executed per plan
    gamma: float = 0.99
    value_weight: float = 1.0
    mbop_sigma: float = 0.2
    mbop_kappa: float = 3.0
    mbop_beta: float = 0.0
    experiment: str = ""  # results name stem (default d4rl_<task>_<dataset>)
    write_results: bool = True
    scales: dict[str, EvalSizes] = field(default_factory=lambda: {"cpu": EvalSizes(), "gpu": EvalSizes()})
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def __post_init__(self) -> None:
        check_choice("task", self.task, TASKS)
        if self.env:
            check_choice("env", self.env, TASKS)
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("scale", self.scale, SCALES)
        for name in self.methods:
            check_choice("methods[]", name, METHODS)
        check_choice("reward", self.reward, ("model", "jump"))
        check_range("seed", self.seed, 0)
        check_range("execute", self.execute, 1)
        check_range("gamma", self.gamma, 0.0, 1.0, high_open=True)
        check_range("value_weight", self.value_weight, 0.0)
        check_range("mbop_sigma", self.mbop_sigma, 0.0)
        check_range("mbop_kappa", self.mbop_kappa, 0.0)
        check_range("mbop_beta", self.mbop_beta, 0.0, 1.0)
        _check_scales(self.scales)
        self.sizes.check(f"scales.{self.scale}")

    @property
    def sizes(self) -> EvalSizes:
        return self.scales[self.scale]


def _check_scales(scales: dict) -> None:
    missing = [s for s in SCALES if s not in scales]
    if missing:
        raise ConfigError(f"scales lacks block(s) {missing}; expected one block per scale in {SCALES}")
