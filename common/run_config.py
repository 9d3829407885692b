"""The config a run dir was started with, and the refusal to resume it under a different one.

A resumable run records `<run dir>/run_config.json` when it starts afresh:

    {"sha256": "<hex>", "ignored": ["hydra", "logger", ...], "config": {...the resolved config, ignored keys out...}}

`sha256` is the hash of the canonical JSON of `config` (`json.dumps(config, sort_keys=True)`: sorted keys, Python's
default separators, non-JSON leaves as `str`). When the run resumes from its checkpoints, `check_resume` compares
the config of the resumption with the recorded one and refuses a different one with one line naming the first
differing keys (`lr: 0.01 -> 0.5`), so a changed learning rate or model never silently continues someone else's
optimizer state. `force_resume=true` (a field of every resumable trainer's schema) continues anyway, with a
warning, and records the new config.

Ignored keys are those that legitimately differ between a run and its resumption: `IGNORED` holds the ones every
trainer shares (`hydra`: Hydra's own runtime keys; `logger`: where metrics go and whether a progress bar shows;
`resume` and `force_resume`: how this very resumption was asked for). A trainer adds its own bookkeeping keys
(how often it logs or checkpoints, where it stops this chunk, which device runs it); see its `RESUME_IGNORED`.
Keys are dotted paths (`"logger"`, `"data.dir"`); ignoring a key ignores everything below it.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from common.config import ConfigError
from common.results import atomic_write_text

RUN_CONFIG = "run_config.json"
IGNORED = ("hydra", "logger", "resume", "force_resume")
SHOWN_DIFFS = 3  # differing keys named in a refusal


class _Absent:
    """The value of a key one of two configs does not have."""

    def __repr__(self) -> str:
        return "<absent>"


ABSENT = _Absent()


class ResumeError(ConfigError):
    """A run dir is resumed under a config other than the one it was started with (or its record is unreadable)."""


def check_resume(run_dir: str | Path, config: dict[str, Any], force: bool = False,
                 ignore: Iterable[str] = IGNORED) -> None:
    """Check that resuming the run in `run_dir` uses the config it was started with; ResumeError if not.

    `force`: warn, record `config` as the run's config from now on, and let the resumption go ahead.
    A run dir without `run_config.json` (written before runs recorded one) gets `config` recorded, with a warning.
    """
    ignore, path = tuple(ignore), Path(run_dir) / RUN_CONFIG
    if not path.is_file():
        warnings.warn(f"{path} is missing, so the checkpoints being resumed cannot be checked against this config; "
                      f"recording it now", RuntimeWarning, stacklevel=2)
        record_run_config(run_dir, config, ignore)
        return
    try:
        recorded = json.loads(path.read_text())["config"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        problem = f"{path} is unreadable ({type(err).__name__}: {err})"
        if not force:
            raise ResumeError(f"{problem}; cannot check the resumed run's config; pass force_resume=true to "
                              f"resume anyway and record the current config") from None
        warnings.warn(f"{problem}; force_resume=true: recording the current config", RuntimeWarning, stacklevel=2)
        record_run_config(run_dir, config, ignore)
        return
    old, new = without_keys(recorded, ignore), without_keys(config, ignore)
    if config_hash(old, ()) == config_hash(new, ()):
        return
    diffs = diff_configs(old, new)
    if not force:
        raise ResumeError(refusal_message(path, diffs))
    warnings.warn(f"force_resume=true: resuming the run in {path.parent} under a config that differs from its "
                  f"{path.name}: {describe_diffs(diffs)}; recording the new config", RuntimeWarning, stacklevel=2)
    record_run_config(run_dir, config, ignore)


def record_run_config(run_dir: str | Path, config: dict[str, Any], ignore: Iterable[str] = IGNORED) -> Path:
    """Write `<run_dir>/run_config.json` (atomically) for `config` without the `ignore` keys; return its path."""
    ignore = tuple(ignore)
    kept = without_keys(config, ignore)
    record = {"sha256": config_hash(kept, ()), "ignored": sorted(ignore), "config": kept}
    path = Path(run_dir) / RUN_CONFIG
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return path


def config_hash(config: dict[str, Any], ignore: Iterable[str] = IGNORED) -> str:
    """sha256 (hex) of the canonical JSON of `config` without the `ignore` keys."""
    canonical = json.dumps(without_keys(config, ignore), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def diff_configs(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, old value, new value) for every leaf that differs, in `new`'s key order, then keys only `old`
    has; a key missing on one side shows as `ABSENT`. Lists are compared whole."""
    diffs: list[tuple[str, Any, Any]] = []
    for key in [*new, *(k for k in old if k not in new)]:
        name = f"{prefix}{key}"
        a, b = old.get(key, ABSENT), new.get(key, ABSENT)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs.extend(diff_configs(a, b, name + "."))
        elif a is ABSENT or b is ABSENT or _canonical(a) != _canonical(b):
            diffs.append((name, a, b))
    return diffs


def without_keys(config: dict[str, Any], ignore: Iterable[str], prefix: str = "") -> dict[str, Any]:
    """A copy of nested `config` without the dotted keys in `ignore` (and everything below them)."""
    ignore = set(ignore)
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if name in ignore:
            continue
        out[key] = without_keys(value, ignore, name + ".") if isinstance(value, dict) else value
    return out


def refusal_message(path: Path, diffs: list[tuple[str, Any, Any]]) -> str:
    """The one-line refusal: which run, the first differing keys (old -> new), the ways out."""
    return (f"refusing to resume the run in {path.parent} under a config that differs from its {path.name}: "
            f"{describe_diffs(diffs)}; resume with the recorded config, use a new run dir, or pass "
            f"force_resume=true to continue its checkpoints under the new config")


def describe_diffs(diffs: list[tuple[str, Any, Any]]) -> str:
    """`key: old -> new` for the first `SHOWN_DIFFS` diffs, then how many more there are."""
    shown = ", ".join(f"{key}: {_show(a)} -> {_show(b)}" for key, a, b in diffs[:SHOWN_DIFFS])
    return shown + (f" (and {len(diffs) - SHOWN_DIFFS} more)" if len(diffs) > SHOWN_DIFFS else "")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _show(value: Any, width: int = 60) -> str:
    text = repr(value) if value is ABSENT else _canonical(value)
    return text if len(text) <= width else text[:width - 3] + "..."
