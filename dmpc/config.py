"""Config schemas of the entry points (Hydra structured configs; YAML roots in configs/dmpc/).

Sizes that differ between a 2-core CPU and one H200 live in `scales.cpu` / `scales.gpu`; `scale=gpu` on the
command line picks the other block, so GPU runs need no code change. `__post_init__` checks raise ConfigError
naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from common.config import ConfigError, LoggerConfig, check_choice, check_range
from common.paths import data_dir

TASKS = ("hopper", "halfcheetah", "walker2d", "walker2d_jump", "walker2d_broken_ankle")
D4RL_TASKS = ("hopper", "halfcheetah", "walker2d")  # the tasks with D4RL reference returns (behaviour policies)
DATASETS = ("random", "medium", "medium-replay", "medium-expert", "expert", "play")
METHODS = ("dmpc", "dmpc_1step", "mbop", "bc", "behaviour", "dmpc_distilled")
SCALES = ("cpu", "gpu")


def workspace_dir(workspace: str, task: str, scale: str) -> Path:
    """Where policies, datasets and models of a task live: `workspace` ('{task}' replaced by the task), or
    data/dmpc/<task>_<scale>."""
    return Path(workspace.format(task=task)) if workspace else data_dir() / "dmpc" / f"{task}_{scale}"


@dataclass
class CollectSizes:
    """Behaviour-policy training (data/behaviour.py) and dataset sizes; step counts are env steps per task."""

    sac_steps: int = 10_000
    start_steps: int = 1_000  # uniform random actions, no updates, before this step
    block: int = 250  # env steps per task between two fused update dispatches (K)
    utd: int = 1  # gradient updates per env step
    snapshot_every: int = 1_000  # actor snapshot + evaluation every this many steps
    eval_episodes: int = 2  # per snapshot (full episodes)
    ladder_bin: float = 2.5  # D4RL-normalized points per bin of kept medium candidates (data/ladder.py)
    sac_hidden: list[int] = field(default_factory=lambda: [64, 64])
    batch_size: int = 64
    sac_lr: float = 3e-4
    init_temperature: float = 1.0
    n_transitions: int = 10_000  # per rollout dataset (random, medium, expert; medium-expert has 2x)
    max_episode_steps: int = 1000
    play_transitions: int = 10_000
    env_workers: bool = False  # one process per task env during training (else in this process)
    workers: int = 0  # processes for evaluation, replay regeneration and dataset rollouts (0: this process)
    save_every_s: float = 300.0  # training checkpoint interval (and always at the end of a command)

    def check(self, prefix: str) -> None:
        check_range(f"{prefix}.sac_steps", self.sac_steps, 1)
        check_range(f"{prefix}.block", self.block, 1, self.sac_steps)
        check_range(f"{prefix}.start_steps", self.start_steps, 0, self.sac_steps)
        check_range(f"{prefix}.utd", self.utd, 1)
        check_range(f"{prefix}.snapshot_every", self.snapshot_every, 1, self.sac_steps)
        for key in ("sac_steps", "start_steps", "snapshot_every"):
            if getattr(self, key) % self.block:
                raise ConfigError(f"{prefix}.{key}={getattr(self, key)} is not allowed; expected a multiple of "
                                  f"{prefix}.block={self.block}")
        if self.sac_steps % self.snapshot_every:
            raise ConfigError(f"{prefix}.sac_steps={self.sac_steps} is not allowed; expected a multiple of "
                              f"{prefix}.snapshot_every={self.snapshot_every} (the last step is a snapshot)")
        check_range(f"{prefix}.eval_episodes", self.eval_episodes, 1)
        check_range(f"{prefix}.ladder_bin", self.ladder_bin, 0.0, low_open=True)
        for width in self.sac_hidden:
            check_range(f"{prefix}.sac_hidden[]", width, 1)
        check_range(f"{prefix}.batch_size", self.batch_size, 1)
        check_range(f"{prefix}.sac_lr", self.sac_lr, 0.0, 1.0, low_open=True)
        check_range(f"{prefix}.init_temperature", self.init_temperature, 0.0, low_open=True)
        check_range(f"{prefix}.n_transitions", self.n_transitions, 1)
        check_range(f"{prefix}.max_episode_steps", self.max_episode_steps, 1)
        check_range(f"{prefix}.play_transitions", self.play_transitions, 1)
        check_range(f"{prefix}.workers", self.workers, 0)
        check_range(f"{prefix}.save_every_s", self.save_every_s, 0.0)


@dataclass
class CollectConfig:
    task: str = "hopper"
    tasks: list[str] = field(default_factory=list)  # several tasks trained in one run (default: [task])
    scale: str = "cpu"
    seed: int = 0
    workspace: str = ""
    # behaviour: train SAC to the end, export policies, write datasets; train: train for at most time_budget_s
    # (resumable, exports when done); datasets: datasets from exported policies; play: noisy-policy data in `task`
    mode: str = "behaviour"
    time_budget_s: float = 0.0  # mode train/behaviour: stop (after a checkpoint) once this much time has passed
    run_dir: str = ""  # the SAC run's checkpoint folder (default data/dmpc/sac_<scale>_<tasks>_s<seed>)
    policies_dir: str = ""  # datasets from these exported policies ('{task}' is replaced; default <workspace>/policies)
    export_policies: str = ""  # also copy the exported policies here, to commit ('{task}' is replaced)
    datasets: list[str] = field(default_factory=lambda: ["random", "medium", "medium-replay", "medium-expert"])
    results_name: str = ""  # mode datasets: also write experiments/dmpc/results/<results_name>.json
    play_policy: str = ""  # play mode: behaviour-policy checkpoint (default: <source workspace>/policies medium)
    play_source_task: str = "walker2d"
    play_noise_std: float = 0.3
    scales: dict[str, CollectSizes] = field(default_factory=lambda: {"cpu": CollectSizes(), "gpu": CollectSizes()})
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def __post_init__(self) -> None:
        check_choice("task", self.task, TASKS)
        check_choice("scale", self.scale, SCALES)
        check_choice("mode", self.mode, ("behaviour", "train", "datasets", "play"))
        if self.mode != "play":
            check_choice("task", self.task, D4RL_TASKS)
            for name in self.tasks:
                check_choice("tasks[]", name, D4RL_TASKS)
            if len(set(self.run_tasks)) != len(self.run_tasks):
                raise ConfigError(f"tasks={self.tasks} is not allowed; expected each task at most once")
        check_range("seed", self.seed, 0)
        check_range("time_budget_s", self.time_budget_s, 0.0)
        for name in self.datasets:
            check_choice("datasets[]", name, DATASETS[:5])
        check_choice("play_source_task", self.play_source_task, TASKS)
        check_range("play_noise_std", self.play_noise_std, 0.0)
        _check_scales(self.scales)
        self.sizes.check(f"scales.{self.scale}")

    @property
    def sizes(self) -> CollectSizes:
        return self.scales[self.scale]

    @property
    def run_tasks(self) -> list[str]:
        return list(self.tasks) or [self.task]

    def sac_run_dir(self) -> Path:
        if self.run_dir:
            return Path(self.run_dir)
        return data_dir() / "dmpc" / f"sac_{self.scale}_{'-'.join(self.run_tasks)}_s{self.seed}"


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
    val_fraction: float = 0.1  # episodes held out for the validation loss (whole episodes: windows overlap)

    def check(self, prefix: str) -> None:
        check_range(f"{prefix}.steps", self.steps, 1)
        check_range(f"{prefix}.val_fraction", self.val_fraction, 0.0, 0.5)
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
    # several datasets of the task trained side by side (each model's fits vmapped into one compiled call), each into
    # <workspace>/models/<dataset>; replaces `dataset`; not with model_dir or finetune_from
    datasets: list[str] = field(default_factory=list)
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
    ckpt_every_s: float = 60.0  # training-state checkpoint interval (also when a model is done or the budget ends)
    time_budget_s: float = 0.0  # > 0: stop after this many seconds (with a checkpoint); the same command resumes
    force_resume: bool = False  # continue a run's checkpoints under a config that differs from its run_config.json
    scales: dict[str, TrainSizes] = field(default_factory=lambda: {"cpu": TrainSizes(), "gpu": TrainSizes()})
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def __post_init__(self) -> None:
        check_choice("task", self.task, TASKS)
        check_choice("dataset", self.dataset, DATASETS)
        for name in self.datasets:
            check_choice("datasets[]", name, DATASETS)
        if len(set(self.datasets)) < len(self.datasets):
            raise ConfigError(f"datasets={self.datasets} is not allowed; expected each dataset at most once")
        if len(self.datasets) > 1 and (self.model_dir or self.finetune_from):
            raise ConfigError(f"datasets={self.datasets} with model_dir / finetune_from is not allowed; several "
                              "datasets train into <workspace>/models/<dataset> each, from scratch")
        check_choice("scale", self.scale, SCALES)
        check_range("ckpt_every_s", self.ckpt_every_s, 0.0)
        check_range("time_budget_s", self.time_budget_s, 0.0)
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

    @property
    def dataset_names(self) -> list[str]:
        """The datasets this run trains: `datasets`, or `[dataset]`."""
        return list(self.datasets) or [self.dataset]


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
    diagnostic_states: int = 6  # states of the true-simulator replay diagnostic (dmpc/diagnostics.py)
    diagnostic_every: int = 10  # closed-loop steps between two of them

    def check(self, prefix: str) -> None:
        check_range(f"{prefix}.episodes", self.episodes, 1)
        check_range(f"{prefix}.max_episode_steps", self.max_episode_steps, 1)
        check_range(f"{prefix}.num_samples", self.num_samples, 1)
        check_range(f"{prefix}.diagnostic_states", self.diagnostic_states, 1)
        check_range(f"{prefix}.diagnostic_every", self.diagnostic_every, 1)


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
    termination: bool = True  # planners count no reward after a predicted fall (healthy rule: envs/termination.py)
    proposal_steps: int | None = None  # DDIM steps of the proposal at planning time (None: the trained spec's)
    proposal_eta: float | None = None  # its DDIM eta, 0 deterministic .. 1 ancestral (None: the trained spec's)
    diagnostics: bool = True  # true-simulator replay of the D-MPC planners' candidates -> metrics["diagnostics"]
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
        _check_planner(self)
        check_range("mbop_sigma", self.mbop_sigma, 0.0)
        check_range("mbop_kappa", self.mbop_kappa, 0.0)
        check_range("mbop_beta", self.mbop_beta, 0.0, 1.0)
        _check_scales(self.scales)
        self.sizes.check(f"scales.{self.scale}")

    @property
    def sizes(self) -> EvalSizes:
        return self.scales[self.scale]


@dataclass
class DistillSizes:
    """Labelled states, DAgger rounds and the student's fit (dmpc/distill.py)."""

    dataset_states: int = 1000  # dataset states of training episodes labelled by the planner (round 0)
    val_states: int = 200  # labelled states of held-out episodes: label agreement
    val_fraction: float = 0.1  # episodes held out (dmpc.train's split for the same seed and fraction)
    rounds: int = 2  # DAgger rounds after round 0
    states_per_round: int = 300  # states the student visits in the env, labelled and added per DAgger round
    label_batch: int = 1  # states labelled per compiled planner call (> 1: vmap over states, for a GPU)
    steps: int = 2000  # AdamW steps per round
    batch_size: int = 128
    lr: float = 1e-3
    chunk: int = 500
    num_samples: int = 32  # the planner's N
    episodes: int = 2  # evaluation episodes: the student after every round, the planner once
    max_episode_steps: int = 300  # evaluation and DAgger episodes

    def check(self, prefix: str) -> None:
        for key in ("dataset_states", "val_states", "states_per_round", "label_batch", "steps", "batch_size",
                    "chunk", "num_samples", "episodes", "max_episode_steps"):
            check_range(f"{prefix}.{key}", getattr(self, key), 1)
        check_range(f"{prefix}.rounds", self.rounds, 0)
        check_range(f"{prefix}.val_fraction", self.val_fraction, 0.0, 0.5, low_open=True)
        check_range(f"{prefix}.lr", self.lr, 0.0, 1.0, low_open=True)


@dataclass
class DistillConfig:
    """`python -m dmpc.distill`: the D-MPC planner (as `dmpc.evaluate` runs it) distilled into an MLP policy."""

    task: str = "hopper"
    dataset: str = "medium"
    scale: str = "cpu"
    seed: int = 0
    workspace: str = ""
    model_dir: str = ""  # default <workspace>/models/<dataset>; the student is saved here as `distilled`
    gamma: float = 0.99
    value_weight: float = 1.0
    termination: bool = True  # the planner's healthy rule (as in dmpc.evaluate)
    proposal_steps: int | None = None
    proposal_eta: float | None = None
    write_results: bool = False  # experiments/dmpc/results/distill_<scale>.json (the make target sets it)
    scales: dict[str, DistillSizes] = field(default_factory=lambda: {"cpu": DistillSizes(), "gpu": DistillSizes()})
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def __post_init__(self) -> None:
        check_choice("task", self.task, TASKS)
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("scale", self.scale, SCALES)
        check_range("seed", self.seed, 0)
        _check_planner(self)
        _check_scales(self.scales)
        self.sizes.check(f"scales.{self.scale}")

    @property
    def sizes(self) -> DistillSizes:
        return self.scales[self.scale]


def _check_planner(cfg: EvaluateConfig | DistillConfig) -> None:
    """The planner settings evaluate and distill share: gamma, value weight, the proposal's DDIM steps and eta."""
    check_range("gamma", cfg.gamma, 0.0, 1.0, high_open=True)
    check_range("value_weight", cfg.value_weight, 0.0)
    if cfg.proposal_steps is not None:
        check_range("proposal_steps", cfg.proposal_steps, 1)
    if cfg.proposal_eta is not None:
        check_range("proposal_eta", cfg.proposal_eta, 0.0, 1.0)


def _check_scales(scales: dict) -> None:
    missing = [s for s in SCALES if s not in scales]
    if missing:
        raise ConfigError(f"scales lacks block(s) {missing}; expected one block per scale in {SCALES}")


@dataclass
class BenchSizes:
    fused: int = 20  # updates per dispatch (the fused measurement; 1 is measured too)
    repeats: int = 3
    env_steps: int = 1000
    sbx_fused: int = 10

    def check(self, prefix: str) -> None:
        for key in ("fused", "repeats", "env_steps", "sbx_fused"):
            check_range(f"{prefix}.{key}", getattr(self, key), 1)


@dataclass
class BenchConfig:
    """`python -m dmpc.bench`: cost per gradient update and per env step of our SAC and of sbx-rl."""

    scale: str = "cpu"
    tasks: list[str] = field(default_factory=lambda: ["hopper", "walker2d", "halfcheetah"])
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    batch_size: int = 256
    sbx_algorithms: list[str] = field(default_factory=lambda: ["SAC", "TQC", "CrossQ"])
    scales: dict[str, BenchSizes] = field(default_factory=lambda: {"cpu": BenchSizes(), "gpu": BenchSizes()})
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def __post_init__(self) -> None:
        check_choice("scale", self.scale, SCALES)
        if not self.tasks:
            raise ConfigError("tasks=[] is not allowed; expected at least one task")
        for name in self.tasks:
            check_choice("tasks[]", name, D4RL_TASKS)
        for name in self.sbx_algorithms:
            check_choice("sbx_algorithms[]", name, ("SAC", "TQC", "CrossQ"))
        _check_scales(self.scales)
        self.sizes.check(f"scales.{self.scale}")

    @property
    def sizes(self) -> BenchSizes:
        return self.scales[self.scale]
