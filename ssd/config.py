"""Config schemas shared by the ssd entry points (`generate`, `bench`, `make_tiny`) and model resolution.

`model=tiny` makes (once, cached under data/ssd/tiny/<arch>-v<vocab>-s<seed>) a tiny random HF-format pair with
`ssd.models.tiny`; `model=path model.path=/ckpt/target model.draft_path=/ckpt/draft` uses any local checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from common.config import ConfigError, LoggerConfig, check_choice, check_range
from common.paths import data_dir

STRATEGIES = ("ar", "sd", "ssd")


@dataclass
class ModelConfig:
    """Which target/draft pair: `tiny` (made on the fly) or `path` (local HF checkpoint dirs)."""

    name: str = "tiny"
    path: str | None = None
    draft_path: str | None = None
    arch: str = "llama"
    vocab_size: int = 320
    target_layers: int = 4
    draft_layers: int = 1
    hidden_size: int = 64
    init_std: float = 0.3
    deep_layer_scale: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("model.name", self.name, ("tiny", "path"))
        check_choice("model.arch", self.arch, ("llama", "qwen3"))
        check_range("model.vocab_size", self.vocab_size, 2)
        check_range("model.target_layers", self.target_layers, 1)
        check_range("model.draft_layers", self.draft_layers, 1, self.target_layers)
        check_range("model.hidden_size", self.hidden_size, 8)
        if self.hidden_size % 8:
            raise ConfigError(f"model.hidden_size={self.hidden_size!r} is not allowed; expected a multiple of 8 "
                              "(the tiny pair has 4 attention heads of an even size)")
        check_range("model.init_std", self.init_std, 0, low_open=True)
        check_range("model.deep_layer_scale", self.deep_layer_scale, 0)
        check_range("model.seed", self.seed, 0)
        if self.name == "path" and not self.path:
            raise ConfigError("model.path is required with model=path (a Hugging Face checkpoint directory)")


@dataclass
class DecodingConfig:
    """Strategy and its knobs (K draft tokens, Saguaro cache budget / fan-out / C / backup)."""

    strategy: str = "ssd"
    k: int = 4
    budget: int = 16
    fanout: list[int] | None = None
    acceptance_rate: float = 0.7
    fanout_power: float = 1.0
    saguaro_c: float = 1.0
    backup: str = "auto"
    neural_backup_max_batch: int = 8

    def __post_init__(self) -> None:
        check_choice("decoding.strategy", self.strategy, STRATEGIES)
        check_range("decoding.k", self.k, 1, 64)
        check_range("decoding.budget", self.budget, self.k + 1, 4096)
        if self.fanout is not None:
            if len(self.fanout) != self.k + 1:
                raise ConfigError(f"decoding.fanout={self.fanout!r} has {len(self.fanout)} entries; expected "
                                  f"K+1={self.k + 1} (one per outcome) or null")
            for f in self.fanout:
                check_range("decoding.fanout[]", f, 1)
        check_range("decoding.acceptance_rate", self.acceptance_rate, 0, 1, low_open=True, high_open=True)
        check_range("decoding.fanout_power", self.fanout_power, 0, low_open=True)
        check_range("decoding.saguaro_c", self.saguaro_c, 0, 1, low_open=True)
        check_choice("decoding.backup", self.backup, ("auto", "neural", "random"))
        check_range("decoding.neural_backup_max_batch", self.neural_backup_max_batch, 0)

    def ssd_options(self) -> dict:
        """Keyword arguments for `Saguaro` (empty unless strategy=ssd)."""
        if self.strategy != "ssd":
            return {}
        return {"budget": self.budget, "fanout": self.fanout, "acceptance_rate": self.acceptance_rate,
                "fanout_power": self.fanout_power, "saguaro_c": self.saguaro_c, "backup": self.backup,
                "neural_backup_max_batch": self.neural_backup_max_batch}


@dataclass
class SamplingConfig:
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    ignore_eos: bool = False

    def __post_init__(self) -> None:
        check_range("sampling.temperature", self.temperature, 0, None)
        check_range("sampling.top_p", self.top_p, 0, 1, low_open=True)
        check_range("sampling.max_new_tokens", self.max_new_tokens, 1, None)


@dataclass
class RuntimeConfig:
    device: str = "auto"
    dtype: str = "auto"
    max_len: int = 1024
    max_batch_size: int = 8
    cuda_graphs: bool = True
    triton_kernels: bool | None = None  # the Triton decode path (ssd/kernels/); null: on with CUDA
    threads: int = 0  # torch CPU threads (0: torch's default)
    layout: str = "single"  # single: draft and target in one process; distributed: draft on rank 1 (torchrun)

    def __post_init__(self) -> None:
        check_choice("runtime.layout", self.layout, ("single", "distributed"))
        check_range("runtime.max_len", self.max_len, 8, None)
        check_range("runtime.max_batch_size", self.max_batch_size, 1, None)
        check_range("runtime.threads", self.threads, 0)


@dataclass
class LoggedConfig:
    logger: LoggerConfig = field(default_factory=LoggerConfig)


def resolve_model_paths(model: ModelConfig) -> tuple[Path, Path | None]:
    """(target dir, draft dir or None): the given paths, or the cached tiny pair (made if absent).

    A given path that is not a directory raises ConfigError naming `model.path` / `model.draft_path` (checked
    here, when the models are about to load, so a config for checkpoints made later still composes).
    """
    if model.name == "path":
        return _existing_dir("model.path", model.path), \
            _existing_dir("model.draft_path", model.draft_path) if model.draft_path else None
    from ssd.models.tiny import make_tiny_pair

    out = data_dir() / "ssd" / "tiny" / (f"{model.arch}-v{model.vocab_size}-h{model.hidden_size}"
                                         f"-l{model.target_layers}x{model.draft_layers}-i{model.init_std:g}-d{model.deep_layer_scale:g}"
                                         f"-s{model.seed}")
    target, draft = out / "target", out / "draft"
    if not ((target / "config.json").is_file() and (draft / "model.safetensors").is_file()):
        make_tiny_pair(out, arch=model.arch, vocab_size=model.vocab_size, hidden_size=model.hidden_size,
                       intermediate_size=2 * model.hidden_size, target_layers=model.target_layers,
                       draft_layers=model.draft_layers, init_std=model.init_std,
                       deep_layer_scale=model.deep_layer_scale, seed=model.seed)
    return target, draft


def _existing_dir(key: str, path: str) -> Path:
    """`_from_root(path)`, or ConfigError naming `key` when that is not a directory."""
    resolved = _from_root(path)
    if not resolved.is_dir():
        raise ConfigError(f"{key}={path!r} does not exist ({resolved}); expected a Hugging Face checkpoint "
                          "directory (config.json + *.safetensors)")
    return resolved


def _from_root(path: str) -> Path:
    """An absolute path as is; a relative one from the repository root (where `make` runs)."""
    from common.paths import repo_root

    p = Path(path)
    return p if p.is_absolute() or p.exists() else repo_root() / p
