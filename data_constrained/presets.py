"""Model presets by name: `configs/data_constrained/model/<name>.yaml` as a `ModelConfig`."""

from __future__ import annotations

from functools import cache

from omegaconf import OmegaConf

from common.config import ConfigError
from common.paths import configs_dir
from data_constrained.model import ModelConfig


def model_preset(name: str) -> ModelConfig:
    """The ModelConfig of `configs/data_constrained/model/<name>.yaml`; ConfigError naming the known ones."""
    return ModelConfig(**_preset_fields(name))


@cache
def _preset_fields(name: str) -> dict:
    path = configs_dir() / "data_constrained" / "model" / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ConfigError(f"unknown model preset {name!r}; expected one of {known}")
    return dict(OmegaConf.to_container(OmegaConf.load(path)))
