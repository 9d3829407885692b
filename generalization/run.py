"""Entry point: `python -m generalization.run experiment=<name>` runs one figure's sweep and writes its results
JSON (experiments/generalization/results/<name>_<scale>.json); `python -m generalization.plot` draws it.

    python -m generalization.run experiment=polynomial               # cpu scale (minutes on 2 cores)
    python -m generalization.run experiment=bound_gpu                # the larger sweep, one GPU
    python -m generalization.run experiment=bound bound.dims=[250,500] logger=jsonl

Experiments: polynomial, benign, double_descent, bound, flatness (and *_gpu). Every value is in the config
tree configs/generalization/; nothing is hard-coded here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from common.config import ConfigError, LoggerConfig, as_dict, check_choice, check_range, hydra_app, run_dir

EXPERIMENTS = ("polynomial", "benign", "double_descent", "bound", "flatness")


@dataclass
class DataConfig:
    name: str = "fashion_mnist"
    dir: str | None = None  # Fashion-MNIST IDX folder; default $PAPERCLUB_FASHION_MNIST or the Debian path
    downsample: int = 2  # average-pool 28x28 -> 14x14 for the image-vector models

    def __post_init__(self) -> None:
        from generalization.data import DATASETS

        check_choice("data.name", self.name, DATASETS)
        check_choice("data.downsample", self.downsample, (1, 2, 4))


@dataclass
class NetConfig:
    model: str = "resmlp"
    width: int = 128
    depth: int = 1
    epochs: int = 400  # full passes; training stops early once train accuracy >= target_train_acc
    batch_size: int = 500
    lr: float = 3e-3
    loss: str = "ce"
    target_train_acc: float = 1.0

    def check(self, prefix: str) -> None:
        """Range checks, keys named `<prefix>.<field>` (the net sits in several experiments' sections)."""
        from generalization.models import MODELS
        from generalization.train import LOSSES

        check_choice(f"{prefix}.model", self.model, MODELS)
        check_choice(f"{prefix}.loss", self.loss, LOSSES)
        check_range(f"{prefix}.width", self.width, 1)
        check_range(f"{prefix}.depth", self.depth, 0)
        check_range(f"{prefix}.epochs", self.epochs, 1)
        check_range(f"{prefix}.batch_size", self.batch_size, 1)
        check_range(f"{prefix}.lr", self.lr, 0, low_open=True)
        check_range(f"{prefix}.target_train_acc", self.target_train_acc, 0, 1)


@dataclass
class PolynomialConfig:
    order: int = 150
    n_train: int = 40
    n_test: int = 1000
    noise: float = 0.1
    lam: float = 1e-6
    lam_interpolate: float = 1e-12
    gamma: float = 3.0
    low_orders: list[int] = field(default_factory=lambda: [3, 10])
    gammas: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0])
    n_grid: int = 400
    seeds: int = 3

    def __post_init__(self) -> None:
        check_range("polynomial.order", self.order, 1)
        check_range("polynomial.n_train", self.n_train, 1)
        check_range("polynomial.n_test", self.n_test, 1)
        check_range("polynomial.noise", self.noise, 0)
        check_range("polynomial.lam", self.lam, 0, low_open=True)
        check_range("polynomial.lam_interpolate", self.lam_interpolate, 0, low_open=True)
        check_range("polynomial.gamma", self.gamma, 0)
        for k in self.low_orders:
            check_range("polynomial.low_orders[]", k, 0)
        for g in self.gammas:
            check_range("polynomial.gammas[]", g, 0)
        check_range("polynomial.n_grid", self.n_grid, 2)
        check_range("polynomial.seeds", self.seeds, 1)


@dataclass
class GaussianBoundConfig:
    """Gaussian-posterior PAC-Bayes bound of the benign net (generalization/pac_bayes/gaussian.py).

    sigma grid: 8 values per decade over [1e-4, 1] (fixed before seeing data: Jiang et al. search (0, 2];
    our weights' init scale, ~1/sqrt(fan_in), sits mid-grid); tolerance and samples as Jiang et al. (2020).
    """

    sigma_min: float = 1e-4
    sigma_max: float = 1.0
    grid: int = 33  # grid size G, paid for as ln G in the bound
    samples: int = 10  # K Monte-Carlo weight draws per sigma
    tolerance: float = 0.1  # largest sigma with MC train error of Q <= deterministic train error + tolerance
    delta: float = 0.05

    def __post_init__(self) -> None:
        check_range("benign.pac_bayes.sigma_min", self.sigma_min, 0, low_open=True)
        check_range("benign.pac_bayes.sigma_max", self.sigma_max, self.sigma_min)
        check_range("benign.pac_bayes.grid", self.grid, 1, 10_000)
        if self.grid > 1 and self.sigma_max == self.sigma_min:
            raise ConfigError(f"benign.pac_bayes.sigma_max={self.sigma_max!r} equals sigma_min; a grid of "
                              f"{self.grid} values needs sigma_max > sigma_min (or grid=1)")
        check_range("benign.pac_bayes.samples", self.samples, 2)
        check_range("benign.pac_bayes.tolerance", self.tolerance, 0, 1)
        check_range("benign.pac_bayes.delta", self.delta, 0, 1, low_open=True, high_open=True)


@dataclass
class BenignConfig:
    n_train: int = 1000
    n_test: int = 2000
    fractions: list[float] = field(default_factory=lambda: [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    kernel: str = "rbf"
    lengthscale: float = 0.0  # 0: the median pairwise distance of the training inputs
    noise_var: float = 1e-3
    net_n_train: int = 300
    prior_precision: float = 1.0
    speed_epochs: int = 50  # training-speed estimate: -sum of the first speed_epochs epoch losses
    net: NetConfig = field(default_factory=lambda: NetConfig(model="resmlp", width=128, depth=1, epochs=150,
                                                             batch_size=50, lr=2e-3, target_train_acc=0.995))
    pac_bayes: GaussianBoundConfig = field(default_factory=GaussianBoundConfig)

    def __post_init__(self) -> None:
        from generalization.gp import KERNELS

        check_choice("benign.kernel", self.kernel, KERNELS)
        check_range("benign.n_train", self.n_train, 1)
        check_range("benign.n_test", self.n_test, 1)
        check_range("benign.lengthscale", self.lengthscale, 0)
        check_range("benign.noise_var", self.noise_var, 0, low_open=True)
        check_range("benign.net_n_train", self.net_n_train, 1)
        check_range("benign.prior_precision", self.prior_precision, 0, low_open=True)
        check_range("benign.speed_epochs", self.speed_epochs, 1)
        for f in self.fractions:
            check_range("benign.fractions[]", f, 0, 1)
        self.net.check("benign.net")


@dataclass
class DoubleDescentConfig:
    rf_n_train: int = 300
    n_test: int = 2000
    label_noise: float = 0.2
    rf_widths: list[int] = field(default_factory=lambda: [20, 50, 100, 200, 260, 300, 340, 400, 600, 1000, 1600])
    rf_seeds: int = 2
    rf_alpha: float = 0.01
    # cross-entropy variant of panel g: linear softmax head on the same features, ridge = ce_ridge * mean ||phi||^2
    # (a vague N(0, 1/ridge) prior: prior logit std ~ ce_ridge^-1/2, whatever p); its N_eff uses alpha = ridge
    ce: bool = True
    ce_ridge: float = 1e-3
    ce_seeds: int = 2
    blas_threads: int = 1  # BLAS threads for the random-feature fits (0: library default)
    net_n_train: int = 500
    pca_dim: int = 32
    net_widths: list[int] = field(default_factory=lambda: [2, 4, 8, 16, 32, 64, 128])
    net_alpha: float = 0.1  # alpha of the network's N_eff (Hessian of the mean training loss)
    net_neff: str = "slq"  # "slq": whole spectrum by stochastic Lanczos quadrature; "topk": top-k Lanczos
    slq_probes: int = 6
    slq_steps: int = 25
    neff_top_k: int = 100  # "topk": eigenvalues kept (Lanczos runs 2k steps)
    hessian_samples: int = 0  # training points in the Hessian (0: all net_n_train)
    net: NetConfig = field(default_factory=lambda: NetConfig(model="mlp", depth=1, epochs=200, batch_size=100,
                                                             lr=3e-3))

    def __post_init__(self) -> None:
        check_range("double_descent.rf_n_train", self.rf_n_train, 1)
        check_range("double_descent.n_test", self.n_test, 1)
        check_range("double_descent.label_noise", self.label_noise, 0, 1)
        check_range("double_descent.rf_alpha", self.rf_alpha, 0, low_open=True)
        check_range("double_descent.rf_seeds", self.rf_seeds, 1)
        check_range("double_descent.ce_ridge", self.ce_ridge, 0, 1, low_open=True)
        check_range("double_descent.ce_seeds", self.ce_seeds, 1)
        check_range("double_descent.blas_threads", self.blas_threads, 0)
        for p in self.rf_widths:
            check_range("double_descent.rf_widths[]", p, 1)
        check_choice("double_descent.net_neff", self.net_neff, ("slq", "topk"))
        check_range("double_descent.net_n_train", self.net_n_train, 1)
        check_range("double_descent.pca_dim", self.pca_dim, 0)
        for w in self.net_widths:
            check_range("double_descent.net_widths[]", w, 1)
        check_range("double_descent.net_alpha", self.net_alpha, 0, low_open=True)
        check_range("double_descent.slq_probes", self.slq_probes, 1)
        check_range("double_descent.slq_steps", self.slq_steps, 1)
        check_range("double_descent.neff_top_k", self.neff_top_k, 1)
        check_range("double_descent.hessian_samples", self.hessian_samples, 0)
        self.net.check("double_descent.net")


@dataclass
class BoundConfig:
    model: str = "mlp"
    depth: int = 2
    widths: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    dims: list[int] = field(default_factory=lambda: [125, 250, 500, 1000, 2000])
    base_width: int = 128
    base_dim: int = 1000
    projection: str = "kronecker"
    levels: int = 16
    levels_grid_size: int = 1  # how many L values were tried (paid in the union bound)
    epochs: int = 1
    batch_size: int = 512
    lrs: list[float] = field(default_factory=lambda: [0.1])  # Adam lr of z; each is tried, the tightest bound kept
    schedule: str = "constant"  # lr schedule of the subspace training: constant or cosine (decays to 0)
    qat_epochs: int = 1
    qat_lr: float = 0.01
    fit_samples: int = 20000  # training subset (0: all n); the bound's train error is on all n points
    delta: float = 0.05

    def __post_init__(self) -> None:
        from generalization.models import MODELS
        from generalization.pac_bayes.subspace import PROJECTIONS

        check_choice("bound.model", self.model, MODELS)
        check_range("bound.depth", self.depth, 0)
        for w in self.widths:
            check_range("bound.widths[]", w, 1)
        for d in self.dims:
            check_range("bound.dims[]", d, 1)
        check_range("bound.base_width", self.base_width, 1)
        check_range("bound.base_dim", self.base_dim, 1)
        check_choice("bound.projection", self.projection, PROJECTIONS)
        check_range("bound.delta", self.delta, 0, 1, low_open=True, high_open=True)
        check_range("bound.levels", self.levels, 2, 2**16)
        check_range("bound.levels_grid_size", self.levels_grid_size, 1)
        check_range("bound.epochs", self.epochs, 1)
        check_range("bound.batch_size", self.batch_size, 1)
        check_range("bound.qat_epochs", self.qat_epochs, 0)
        check_range("bound.qat_lr", self.qat_lr, 0, low_open=True)
        check_range("bound.fit_samples", self.fit_samples, 0)
        check_choice("bound.schedule", self.schedule, ("constant", "cosine"))
        if not self.lrs:
            raise ConfigError("bound.lrs must list at least one learning rate")
        for lr in self.lrs:
            check_range("bound.lrs[]", lr, 0, low_open=True)


@dataclass
class FlatnessConfig:
    n_train: int = 500
    n_test: int = 2000
    pca_dim: int = 32
    widths: list[int] = field(default_factory=lambda: [4, 8, 16, 32, 64, 128, 256])
    epsilon: float = 0.05
    directions: int = 10
    alpha: float = 0.1
    slq_probes: int = 6
    slq_steps: int = 25
    net: NetConfig = field(default_factory=lambda: NetConfig(model="mlp", depth=1, epochs=200, batch_size=100,
                                                             lr=3e-3, target_train_acc=1.0))

    def __post_init__(self) -> None:
        check_range("flatness.n_train", self.n_train, 1)
        check_range("flatness.n_test", self.n_test, 1)
        check_range("flatness.pca_dim", self.pca_dim, 0)
        for w in self.widths:
            check_range("flatness.widths[]", w, 1)
        check_range("flatness.epsilon", self.epsilon, 0, low_open=True)
        check_range("flatness.directions", self.directions, 1)
        check_range("flatness.alpha", self.alpha, 0, low_open=True)
        check_range("flatness.slq_probes", self.slq_probes, 1)
        check_range("flatness.slq_steps", self.slq_steps, 1)
        self.net.check("flatness.net")


@dataclass
class Schema:
    experiment: str = "polynomial"
    scale: str = "cpu"
    seed: int = 0
    tag: str = ""  # results name <experiment>_<tag>_<scale> (e.g. the conv-ResNet cpu variants); "" -> <experiment>_<scale>
    device: str = "cpu"
    threads: int = 0  # torch intra-op threads; 0 leaves torch's default
    write_results: bool = True
    data: DataConfig = field(default_factory=DataConfig)
    polynomial: PolynomialConfig = field(default_factory=PolynomialConfig)
    benign: BenignConfig = field(default_factory=BenignConfig)
    double_descent: DoubleDescentConfig = field(default_factory=DoubleDescentConfig)
    bound: BoundConfig = field(default_factory=BoundConfig)
    flatness: FlatnessConfig = field(default_factory=FlatnessConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def __post_init__(self) -> None:
        check_choice("experiment", self.experiment, EXPERIMENTS)
        check_choice("scale", self.scale, ("cpu", "gpu"))
        check_range("seed", self.seed, 0)
        check_range("threads", self.threads, 0)
        if self.tag and not self.tag.replace("-", "").isalnum():
            raise ConfigError(f"tag={self.tag!r} is not allowed; expected letters, digits and '-' only")


def result_name(cfg: Schema) -> str:
    """`<experiment>_<scale>`, or `<experiment>_<tag>_<scale>` for a tagged variant."""
    return "_".join(p for p in (cfg.experiment, cfg.tag, cfg.scale) if p)


def execute(cfg: Schema, results_root=None) -> dict:
    """Run `cfg.experiment`; write its results JSON (unless write_results=false); return the record."""
    import torch

    from common.device import choose_device, describe_device
    from common.logging import RunLogger
    from common.results import write_result
    from common.seed import seed_everything
    from generalization.sweeps import SWEEPS

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    cfg.device = choose_device(cfg.device)
    if cfg.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True  # fixed shapes per sweep point: let cuDNN pick its conv kernels
    seed_everything(cfg.seed)
    start = time.perf_counter()
    with RunLogger(cfg.logger, run_dir(), config=as_dict(cfg), name=f"generalization-{cfg.experiment}") as log:
        metrics, paper = SWEEPS[cfg.experiment](cfg, log)
        wall = time.perf_counter() - start
        log.summary({"wall_s": wall})
    record = {"metrics": metrics, "paper": paper, "wall_s": wall}
    if cfg.write_results:
        record["path"] = str(write_result("generalization", cfg.experiment, cfg.scale, metrics, paper=paper,
                                          config=as_dict(cfg), device=describe_device(cfg.device), wall_s=wall,
                                          name=result_name(cfg), root=results_root))
    return record


@hydra_app("generalization", "run", Schema)
def main(cfg: Schema) -> None:
    record = execute(cfg)
    print(f"generalization/{cfg.experiment} ({cfg.scale}) done in {record['wall_s']:.1f}s"
          + (f" -> {record['path']}" if "path" in record else ""))


if __name__ == "__main__":
    main()
