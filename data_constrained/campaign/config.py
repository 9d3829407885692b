"""The campaign's own settings (`campaign.*` of a sweep config): the search space, the replicates, the extra
experiments, where its state lives, and the cost model a chunk schedules with."""

from __future__ import annotations

from dataclasses import dataclass, field

from common.config import ConfigError, check_range
from data_constrained.data import DataConfig
from data_constrained.presets import model_preset


@dataclass
class AxisConfig:
    """One hyper-parameter's lattice: start * factor^k for integer k, kept within [low, high]."""

    start: float = 1.0
    factor: float = 2.0
    low: float = 0.0
    high: float = 0.0

    def check(self, name: str) -> None:
        check_range(f"campaign.{name}.factor", self.factor, 1.0, low_open=True)
        check_range(f"campaign.{name}.start", self.start, 0.0, low_open=True)
        if not self.low <= self.start <= self.high:
            raise ConfigError(f"campaign.{name}: start={self.start} must lie in [low, high] = "
                              f"[{self.low}, {self.high}]")


@dataclass
class CampaignConfig:
    """A resumable campaign, run as chunks (`python -m data_constrained.sweep harness=chunked time_budget_s=...`).

    Search (coordinate descent to a local optimum, data_constrained.campaign.plan): the tuned recipe per size over
    (weight_decay, epochs, lr); the default recipe (weight decay `default_weight_decay`) per size at D0 over
    (epochs, lr), and at every other data budget `data_scales` x D0 over (size, epochs, lr). Replicates at each
    optimum use fresh seeds 1..n (the search runs seed 0), so what is reported was not selected on."""

    state_dir: str = ""  # finished runs + index.json; "": <results_root>/experiments/data_constrained/results/<scale>_runs
    results_out: str = ""  # "": write runs into state_dir; else: this chunk's runs as tar bundles here ($OUT)
    sizes: list[str] = field(default_factory=lambda: ["c32", "c64", "c96"])  # ascending N
    default_weight_decay: float = 0.1
    weight_decay: AxisConfig = field(default_factory=lambda: AxisConfig(0.8, 2.0, 0.05, 25.6))
    epochs: AxisConfig = field(default_factory=lambda: AxisConfig(8.0, 2.0, 1.0, 64.0))
    lr: AxisConfig = field(default_factory=lambda: AxisConfig(3e-3, 2.0, 3e-4, 3e-2))
    default_epochs_start: float = 4.0
    data_scales: list[float] = field(default_factory=lambda: [0.25, 0.5, 2.0])  # besides D0 itself
    members: int = 4  # seeds 1..members at each size's tuned optimum: replicates and ensemble members
    ensemble_k: list[int] = field(default_factory=lambda: [1, 2])
    data_law_seeds: int = 2  # seeds 1..n at each data budget's default-recipe optimum
    distill_teacher_size: str = ""  # "": skip distillation
    distill_teacher_members: int = 2
    distill_student_sizes: list[str] = field(default_factory=list)  # first: the headline retained fraction
    distill_students: int = 2  # student seeds (fresh initializations) per student size
    distill_alpha: float = 0.9
    distill_temperature: float = 1.0
    self_distill_size: str = ""  # "": skip self-distillation
    self_distill_students: int = 2
    cpt_size: str = ""  # "": skip continued pre-training; else pre-trained = member 1 of this size's tuned optimum
    cpt_data: DataConfig = field(default_factory=lambda: DataConfig(corpus="code", token_budget=4096))
    cpt_scales: list[float] = field(default_factory=lambda: [0.5, 2.0])  # besides the cpt budget itself
    cpt_members: int = 2
    # the cost model a chunk schedules with (measured rates of finished runs replace the priors)
    max_run_s: float = 480.0  # a run estimated longer than this is not started (its grid edge is flagged)
    assumed_mfu: dict[str, float] = field(default_factory=lambda: {"default": 0.3})  # prior per size name
    scoring_tflops: float = 40.0  # float32 scoring throughput prior (TFLOP/s); 0.0002 on a CPU
    run_overhead_s: float = 5.0  # model build, data, bookkeeping per run
    compile_s: float = 60.0  # first run of a model shape in a process (torch.compile); 0 without compile
    stop_margin_s: float = 20.0  # kept free at the end of a chunk for writing its results
    bundle_max_bytes: int = 15 * 2**20  # per tar in results_out (the transfer takes files <= 16 MiB, 8 at most)
    max_bundles: int = 3  # <= 45 MiB: with the chunk log and the compile cache within the 64 MiB (8 files) $OUT returns
    n_boot: int = 400  # bootstrap draws (over seeds) of the analysis

    def check(self) -> None:
        if len(self.sizes) < 1:
            raise ConfigError("campaign.sizes must name at least one model preset")
        for name in self.sizes:
            model_preset(name)
        extras = [(self.distill_teacher_size, "distill_teacher_size"), (self.self_distill_size, "self_distill_size"),
                  (self.cpt_size, "cpt_size"), *((s, "distill_student_sizes[]") for s in self.distill_student_sizes)]
        for extra, key in extras:
            if extra and extra not in self.sizes:
                raise ConfigError(f"campaign.{key}={extra!r} must be one of campaign.sizes={self.sizes}")
        if bool(self.distill_teacher_size) != bool(self.distill_student_sizes):
            raise ConfigError("campaign.distill_teacher_size and campaign.distill_student_sizes go together")
        self.weight_decay.check("weight_decay")
        self.epochs.check("epochs")
        self.lr.check("lr")
        check_range("campaign.default_weight_decay", self.default_weight_decay, 0.0)
        check_range("campaign.default_epochs_start", self.default_epochs_start, self.epochs.low, self.epochs.high)
        for scale in [*self.data_scales, *self.cpt_scales]:
            check_range("campaign.data_scales[]/cpt_scales[]", scale, 0.0, low_open=True)
        check_range("campaign.members", self.members, 1)
        for k in self.ensemble_k:
            check_range("campaign.ensemble_k[]", k, 1, self.members)
        for key in ("data_law_seeds", "distill_teacher_members", "distill_students", "self_distill_students",
                    "cpt_members", "max_bundles"):
            check_range(f"campaign.{key}", getattr(self, key), 1)
        if self.distill_teacher_members > self.members:
            raise ConfigError(f"campaign.distill_teacher_members={self.distill_teacher_members} exceeds "
                              f"campaign.members={self.members} (the teachers are members 1..n)")
        check_range("campaign.distill_alpha", self.distill_alpha, 0.0, 1.0)
        check_range("campaign.distill_temperature", self.distill_temperature, 0.0, low_open=True)
        for key in ("max_run_s", "scoring_tflops"):
            check_range(f"campaign.{key}", getattr(self, key), 0.0, low_open=True)
        for key in ("run_overhead_s", "compile_s", "stop_margin_s", "n_boot"):
            check_range(f"campaign.{key}", getattr(self, key), 0)
        check_range("campaign.bundle_max_bytes", self.bundle_max_bytes, 2**16)
        for name, mfu in self.assumed_mfu.items():
            check_range(f"campaign.assumed_mfu.{name}", mfu, 0.0, 1.0, low_open=True)
