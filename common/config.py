"""Hydra 1.3 apps with dataclass schemas and one-line errors for bad input.

Every entry point is `@hydra_app("<package>", "<entry>", Schema)`: its primary config is
`configs/<package>/<entry>.yaml`, whose defaults list starts with the schema registered here
(`<package>_<entry>_schema`), so a wrong key or a wrongly typed value fails at composition, naming the key. The
shared groups `logger/` and `launcher/` under `configs/` come from a search-path plugin
(`common.config_search_path`), so the command line reaches Hydra untouched: `--cfg job`, `--help`, `--info` and
`-m` work at any position.

Before the decorated function runs (and in `compose`), two checks turn bad input into `ConfigError`:
- every config-group choice names an existing option. Hydra silently skips an `optional` default whose option
  does not exist, so `experiment=nope` against `- optional experiment: null` would run the default experiment;
  the choices Hydra recorded (`hydra.runtime.choices`) are checked against the group's options instead.
- the config becomes the schema's dataclass instance, which runs each dataclass's `__post_init__` checks
  (`check_range`, `check_choice`); a failing check names the key and what was expected.

Errors: a `PaperclubError` (ConfigError among them) or one of Hydra's composition errors (unknown key, wrong
type, unknown group option, unparsable override) is printed as ONE line on stderr, `error: <key>...: <what was
expected>`, with exit status 2 and no traceback (`common.errors`). `PAPERCLUB_FULL_ERROR=1` or
`HYDRA_FULL_ERROR=1` shows the full traceback instead. Hydra itself prints its composition errors over several
lines (or a traceback stub for other errors) unless `HYDRA_FULL_ERROR=1` is set, in which case it re-raises them;
`hydra_app` sets that variable while Hydra runs (processes the run starts inherit it) so that it can catch and
report them itself; what the user had set is read before. Other exceptions are bugs and keep their full
traceback. In a multirun the first job given bad input ends the sweep; jobs before it have run (their input was
good). `--cfg`, `--info` and `--help` only compose: they report Hydra's composition errors but run neither check.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from common.errors import PaperclubError, exit_bad_input, one_line, wants_traceback
from common.paths import configs_dir

T = TypeVar("T")
# launchers whose Hydra plugin is an optional extra: what to install (docs/launchers.md)
LAUNCHER_PLUGINS = {"ray": "pip install 'paperclub[ray]' (hydra-ray-launcher>=1.2.2,<1.3 with ray[default]>=2.60,<3)"}


class ConfigError(PaperclubError, ValueError):
    """A config value is out of its allowed range, unknown, or inconsistent with another value."""


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
        raise ConfigError(_choice_message(key, value, choices))


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

    `hydra` keys are dropped. A value that does not fit the schema, or an interpolation that does not resolve,
    raises ConfigError naming the key; a failing `__post_init__` check re-raises with its message unchanged.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        container = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as err:
        raise ConfigError(_omegaconf_message(err)) from None
    container.pop("hydra", None)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), container)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        bad = [key for key, value in container.items() if not _merges(schema, key, value)]
        prefix = f"config key {bad[0]!r}: " if bad else ""
        raise ConfigError(prefix + _omegaconf_message(err)) from None


def hydra_app(package: str, entry: str, schema: type[T]) -> Callable[[Callable[[T], Any]], Callable[[], Any]]:
    """Decorate `fn(cfg: Schema)` into a Hydra main rooted at `configs/<package>/<entry>.yaml`.

    Bad input (see the module docstring) ends the process with one line on stderr and exit status 2, before
    `fn` runs; `PAPERCLUB_FULL_ERROR=1` or `HYDRA_FULL_ERROR=1` shows the traceback instead.
    """
    register_schema(package, entry, schema)

    def decorate(fn: Callable[[T], Any]) -> Callable[[], Any]:
        import hydra

        from common.config_search_path import register

        @functools.wraps(fn)
        def main() -> Any:
            task = _picklable_task(fn, schema)
            traceback_wanted = wants_traceback()
            register()
            app = hydra.main(version_base="1.3", config_path=str(configs_dir() / package), config_name=entry)
            try:
                with _hydra_reraises():
                    return app(task)()
            except Exception as err:
                message = bad_input_message(err)
                if message is None or traceback_wanted:
                    raise
                exit_bad_input(message)

        return main

    return decorate


def compose(package: str, entry: str, schema: type[T], overrides: list[str] | None = None) -> T:
    """Compose an entry point's config without running it (for tests and notebooks).

    Runs the same checks as `hydra_app` (group choices, schema); bad input raises ConfigError.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import open_dict

    from common.config_search_path import register

    register_schema(package, entry, schema)
    register()
    with initialize_config_dir(version_base="1.3", config_dir=str(configs_dir() / package)):
        try:
            cfg = hydra_compose(config_name=entry, overrides=list(overrides or []), return_hydra_config=True)
        except Exception as err:
            message = _hydra_message(err)
            if message is None:
                raise
            raise ConfigError(message) from None
        check_group_choices(cfg.hydra.runtime.choices)
        with open_dict(cfg):
            del cfg["hydra"]
    return to_schema(cfg, schema)


def check_group_choices(choices: Mapping[str, str | None]) -> None:
    """Raise ConfigError unless every config-group choice (`hydra.runtime.choices`) names an existing option.

    Hydra skips an `optional` default whose option is missing without a word; this catches that case (and any
    other) by listing the group's options in the running Hydra's config sources (the search path).
    `model@teacher_model` is looked up in group `model`.
    """
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.object_type import ObjectType

    sources = GlobalHydra.instance().config_loader().get_sources()
    for key, option in choices.items():
        group = key.split("@")[0]
        if option is not None:
            options = {name for source in sources if source.is_group(group)
                       for name in source.list(group, results_filter=ObjectType.CONFIG)}
            check_choice(key, option, sorted(options))


def bad_input_message(err: BaseException) -> str | None:
    """The one-line message for bad input (a PaperclubError or a Hydra composition error), else None."""
    if isinstance(err, PaperclubError):
        return one_line(str(err))
    return _hydra_message(err)


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
    """`fn(to_schema(cfg, schema))` as a picklable object, for launchers that ship the task to other processes.

    Group choices and the schema are checked before `fn` runs. A PaperclubError in the process that parsed the
    command line (`reporting_pid`) ends it with one line (exit status 2), so Hydra adds nothing; in a launcher's
    job process (submitit, ray), or when a traceback was asked for (`reporting_pid` None), it is raised.
    """

    def __init__(self, fn: Callable[[Any], Any], schema: type) -> None:
        self.fn, self.schema = fn, schema
        self.reporting_pid = None if wants_traceback() else os.getpid()
        functools.update_wrapper(self, fn)

    def __call__(self, cfg: Any) -> Any:
        from hydra.core.hydra_config import HydraConfig

        try:
            check_group_choices(HydraConfig.get().runtime.choices)
            return self.fn(to_schema(cfg, self.schema))
        except PaperclubError as err:
            if os.getpid() != self.reporting_pid:
                raise
            exit_bad_input(str(err))


def _picklable_task(fn: Callable[[Any], Any], schema: type) -> _Task:
    """Under `python -m pkg.entry` the entry module is `__main__`, whose classes a launcher (submitit) would have
    to pickle by value, which breaks dataclass defaults; re-import the module under its real name instead."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if fn.__module__ == "__main__" and spec is not None:
        module = importlib.import_module(spec.name)
        fn = getattr(module, fn.__name__).__wrapped__
        schema = getattr(module, schema.__name__, schema) if schema.__module__ == "__main__" else schema
    return _Task(fn, schema)


@contextlib.contextmanager
def _hydra_reraises() -> Iterator[None]:
    """Set `HYDRA_FULL_ERROR=1` while Hydra runs, so that it re-raises errors instead of printing them."""
    before = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ["HYDRA_FULL_ERROR"]
        else:
            os.environ["HYDRA_FULL_ERROR"] = before


def _hydra_message(err: BaseException) -> str | None:
    """One line for a Hydra composition error: the override or key at fault and what was expected, else None."""
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(err, MissingConfigException) and err.options and err.missing_cfg_file:
        group, _, option = err.missing_cfg_file.rpartition("/")
        if group == "hydra/launcher" and option in LAUNCHER_PLUGINS:
            return (f"launcher={option} needs Hydra's {option} launcher plugin (module hydra_plugins.hydra_{option}"
                    f"_launcher), which is not installed: {LAUNCHER_PLUGINS[option]}")
        return _choice_message(group, option, err.options)
    if isinstance(err, OverrideParseException):
        return f"cannot parse override {err.override!r}: {one_line(err.message)}"
    if isinstance(err, ConfigCompositionException):
        cause = err.__cause__
        if isinstance(cause, OmegaConfBaseException):
            return f"{str(err).strip().splitlines()[0].rstrip('.')}: {_omegaconf_message(cause)}"
        return one_line(str(err).split("Config search path:")[0])
    return None


def _omegaconf_message(err: Any) -> str:
    """An OmegaConf error's first line, its `full_key`, and for an unknown key the keys the schema has."""
    from omegaconf.errors import MissingMandatoryValue

    if isinstance(err, MissingMandatoryValue) and getattr(err, "full_key", None):
        return f"{err.full_key} is missing (???); expected a value: {err.full_key}=<value>"
    lines = str(err).strip().splitlines()
    parts = [lines[0].strip() if lines else type(err).__name__]
    full_key = getattr(err, "full_key", None)
    if full_key:
        parts.append(f"full_key: {full_key}")
    owner = getattr(err, "object_type", None)
    key = getattr(err, "key", None)
    if dataclasses.is_dataclass(owner) and isinstance(key, str):
        fields = [f.name for f in dataclasses.fields(owner)]
        if key not in fields:
            parts.append(f"expected a key of {owner.__name__}: {', '.join(fields)}")
    return "; ".join(parts)


def _choice_message(key: str, value: Any, choices: Iterable[Any]) -> str:
    return f"{key}={value!r} is not allowed; expected one of {', '.join(map(repr, choices))}"


def _merges(schema: type, key: str, value: Any) -> bool:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        OmegaConf.merge(OmegaConf.structured(schema), {key: value})
    except OmegaConfBaseException:
        return False
    return True
