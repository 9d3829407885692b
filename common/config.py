"""Hydra 1.3 apps with dataclass schemas and clear errors.

Every entry point is `@hydra_app("<package>", "<entry>", Schema)`: its primary config is
`configs/<package>/<entry>.yaml`, whose defaults list starts with the schema registered here
(`<package>_<entry>_schema`), so a wrong key or a wrongly typed value fails at composition with Hydra's message
naming the key. The shared groups `logger/` and `launcher/` under `configs/` are put on the search path.
After composition the config is turned into the schema's dataclass instance, which runs each dataclass's
`__post_init__` checks; a failing check raises `ConfigError` naming the key and what was expected.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from common.paths import configs_dir

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value is out of its allowed range or inconsistent with another value."""


@dataclasses.dataclass
class LoggerConfig:
    """Where a run's metrics go. `backend`: wandb (and jsonl) or jsonl only; W&B `mode` offline by default."""

    backend: str = "wandb"
    mode: str = "offline"
    project: str = "paperclub"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = dataclasses.field(default_factory=list)
    progress: bool = True

    def __post_init__(self) -> None:
        check_choice("logger.backend", self.backend, ("wandb", "jsonl"))
        check_choice("logger.mode", self.mode, ("offline", "online", "disabled"))


def check_choice(key: str, value: Any, choices: Iterable[Any]) -> None:
    """Raise ConfigError unless `value` is one of `choices`."""
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not allowed; expected one of {', '.join(map(repr, choices))}")


def check_range(key: str, value: float, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> None:
    """Raise ConfigError unless low <= value <= high (open ends with `*_open`)."""
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        lo = "-inf" if low is None else f"{low}"
        hi = "inf" if high is None else f"{high}"
        interval = f"{'(' if low_open else '['}{lo}, {hi}{')' if high_open else ']'}"
        raise ConfigError(f"{key}={value!r} is out of range; expected a value in {interval}")


def schema_name(package: str, entry: str) -> str:
    """The ConfigStore name of an entry point's schema, used first in its primary config's defaults."""
    return f"{package}_{entry}_schema"


def register_schema(package: str, entry: str, schema: type) -> None:
    """Store `schema` (a dataclass) in Hydra's ConfigStore as `<package>_<entry>_schema`."""
    from hydra.core.config_store import ConfigStore

    if not dataclasses.is_dataclass(schema):
        raise TypeError(f"schema for {package}.{entry} must be a dataclass, got {schema!r}")
    ConfigStore.instance().store(name=schema_name(package, entry), node=schema)


def to_schema(cfg: Any, schema: type[T]) -> T:
    """Turn a composed DictConfig into the schema's dataclass instance (running `__post_init__` checks).

    `hydra` keys are dropped. A failing check re-raises as ConfigError with its message unchanged.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    container = OmegaConf.to_container(cfg, resolve=True)
    container.pop("hydra", None)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), container)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        bad = [key for key, value in container.items() if not _merges(schema, key, value)]
        prefix = f"config key {bad[0]!r}: " if bad else ""
        raise ConfigError(prefix + _first_line(err)) from None


def hydra_app(package: str, entry: str, schema: type[T]) -> Callable[[Callable[[T], Any]], Callable[[], Any]]:
    """Decorate `fn(cfg: Schema)` into a Hydra main rooted at `configs/<package>/<entry>.yaml`.

    Errors are printed as one line naming the key (`ConfigError`); pass `HYDRA_FULL_ERROR=1` for a traceback.
    """
    register_schema(package, entry, schema)

    def decorate(fn: Callable[[T], Any]) -> Callable[[], Any]:
        import hydra

        @functools.wraps(fn)
        def main() -> Any:
            task = _picklable_task(fn, schema)
            _add_shared_searchpath(sys.argv)
            return hydra.main(version_base="1.3", config_path=str(configs_dir() / package),
                              config_name=entry)(task)()

        return main

    return decorate


def compose(package: str, entry: str, schema: type[T], overrides: list[str] | None = None) -> T:
    """Compose an entry point's config without running it (for tests and notebooks)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_schema(package, entry, schema)
    overrides = list(overrides or [])
    _add_shared_searchpath(overrides)
    from hydra.errors import HydraException

    with initialize_config_dir(version_base="1.3", config_dir=str(configs_dir() / package)):
        try:
            cfg = hydra_compose(config_name=entry, overrides=overrides)
        except HydraException as err:
            cause = f": {_first_line(err.__cause__)}" if err.__cause__ is not None else ""
            raise ConfigError(f"{_first_line(err)}{cause}") from None
    return to_schema(cfg, schema)


def as_dict(cfg: Any) -> dict[str, Any]:
    """A schema instance (or DictConfig) as a plain, JSON-ready dict for logging and results."""
    if dataclasses.is_dataclass(cfg):
        return dataclasses.asdict(cfg)
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)


def run_dir(default: str | Path = "outputs/adhoc") -> Path:
    """The Hydra run's output folder, or `default` when called outside a Hydra app."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    path = Path(default)
    path.mkdir(parents=True, exist_ok=True)
    return path


class _Task:
    """`fn(to_schema(cfg, schema))` as a picklable object, for launchers that ship the task to other processes."""

    def __init__(self, fn: Callable[[Any], Any], schema: type) -> None:
        self.fn, self.schema = fn, schema
        functools.update_wrapper(self, fn)

    def __call__(self, cfg: Any) -> Any:
        return self.fn(to_schema(cfg, self.schema))


def _picklable_task(fn: Callable[[Any], Any], schema: type) -> _Task:
    """Under `python -m pkg.entry` the entry module is `__main__`, whose classes a launcher (submitit) would have
    to pickle by value, which breaks dataclass defaults; re-import the module under its real name instead."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if fn.__module__ == "__main__" and spec is not None:
        module = importlib.import_module(spec.name)
        fn = getattr(module, fn.__name__).__wrapped__
        schema = getattr(module, schema.__name__, schema) if schema.__module__ == "__main__" else schema
    return _Task(fn, schema)


def _merges(schema: type, key: str, value: Any) -> bool:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        OmegaConf.merge(OmegaConf.structured(schema), {key: value})
    except OmegaConfBaseException:
        return False
    return True


def _add_shared_searchpath(args: list[str]) -> None:
    """Append `hydra.searchpath=[file://<configs>]` so `logger=` and `launcher=` groups resolve."""
    if not any(arg.startswith("hydra.searchpath") for arg in args):
        args.append(f"hydra.searchpath=[file://{configs_dir()}]")


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    details = [line.strip() for line in text[1:] if line.strip().startswith(("full_key", "object_type"))]
    return "; ".join([text[0], *details]) if text else type(err).__name__
