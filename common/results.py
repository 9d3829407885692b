"""Results JSON with provenance: `experiments/<package>/results/<name>.json`.

Schema (ARCHITECTURE.md): {"package", "experiment", "scale", "metrics", "paper", "config", "provenance"}.
Writes are atomic (temporary file + rename), so a crash never leaves a partial result behind.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common.errors import PaperclubError
from common.paths import PACKAGES, experiments_dir, repo_root

REQUIRED_KEYS = ("package", "experiment", "scale", "metrics", "paper", "config", "provenance")
SCALES = ("tiny", "cpu", "gpu", "multi_gpu")


class ResultError(PaperclubError, ValueError):
    """A results file is malformed or an argument to write one is wrong."""


def git_state(root: Path | None = None) -> tuple[str, bool]:
    """(commit sha, dirty?) of the checkout (dirty: tracked code/config changed; experiments/ does not count);
    ('unknown', True) outside a git checkout.

    A copy of the tree (a remote GPU node) states the commit it was copied from in `PAPERCLUB_GIT_COMMIT` (and
    `PAPERCLUB_GIT_DIRTY=0|1`, default 1); when set it wins over git, whose `.git` in such a copy may be stale.
    """
    if os.environ.get("PAPERCLUB_GIT_COMMIT"):
        return os.environ["PAPERCLUB_GIT_COMMIT"], os.environ.get("PAPERCLUB_GIT_DIRTY", "1") != "0"
    root = root or repo_root()
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        # results, figures and the report are outputs, not inputs: rewriting them does not make the code dirty
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                 ":(exclude)experiments"], cwd=root, capture_output=True, text=True,
                                check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown", True
    return sha, bool(status.strip())


def provenance(device: str | None = None, wall_s: float | None = None) -> dict[str, Any]:
    """Where and how a number was produced: git commit, dirty flag, UTC date, host, device, library versions."""
    sha, dirty = git_state()
    versions = {"python": platform.python_version()}
    for name in ("numpy", "torch", "jax", "flax", "triton", "transformers"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", "unknown")
    return {
        "git_commit": sha,
        "git_dirty": dirty,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "device": device or f"cpu ({os.cpu_count()} cores)",
        "versions": versions,
        "wall_s": None if wall_s is None else round(float(wall_s), 3),
        "command": command_line(sys.argv),
    }


def command_line(argv: list[str], root: Path | None = None) -> str:
    """The command that ran, as a user would type it in the repository: a script of the repo becomes
    `python -m <module>`, and the repository's own path in an argument becomes relative (no machine paths).

    >>> command_line(["/home/u/paperclub/ssd/bench.py", "experiment=bench_cpu"], Path("/home/u/paperclub"))
    'python -m ssd.bench experiment=bench_cpu'
    """
    root = (root or repo_root()).resolve()
    head, args = Path(argv[0]) if argv else Path(), [str(a) for a in argv[1:]]
    try:
        rel = head.resolve().relative_to(root)
    except (OSError, ValueError):
        parts = [str(head)] if argv else []
    else:
        module = [part for part in rel.with_suffix("").parts if part != "__main__"]
        parts = ["python", "-m", ".".join(module)] if rel.suffix == ".py" else [rel.as_posix()]
    prefix = str(root) + os.sep
    return " ".join(parts + [a.replace(prefix, "").replace(str(root), ".") for a in args])


def result_path(package: str, name: str, root: Path | None = None) -> Path:
    """`<root>/experiments/<package>/results/<name>.json` (root defaults to the repository)."""
    if package not in PACKAGES:
        raise ResultError(f"unknown package {package!r}; expected one of {', '.join(PACKAGES)}")
    base = (root / "experiments" / package) if root else experiments_dir(package)
    return base / "results" / f"{name}.json"


def write_result(package: str, experiment: str, scale: str, metrics: dict[str, Any], *,
                 paper: dict[str, Any] | None = None, config: dict[str, Any] | None = None,
                 device: str | None = None, wall_s: float | None = None, name: str | None = None,
                 root: Path | None = None, sources: list[str] | None = None) -> Path:
    """Write one result file atomically and return its path.

    `name` defaults to `<experiment>_<scale>`; `paper` holds the paper's numbers for the same quantities;
    `config` the resolved config (a plain dict); `sources` the repo-relative results files a summary was computed
    from (`make verify-results` counts them as cited when the summary is). Non-finite floats are stored as null.
    """
    if scale not in SCALES:
        raise ResultError(f"scale must be one of {SCALES}, got {scale!r}")
    if not isinstance(metrics, dict) or not metrics:
        raise ResultError("metrics must be a non-empty dict")
    record = {
        "package": package,
        "experiment": experiment,
        "scale": scale,
        "metrics": metrics,
        "paper": paper or {},
        "config": config or {},
        "provenance": provenance(device=device, wall_s=wall_s),
    }
    if sources is not None:
        record["sources"] = list(sources)
    path = result_path(package, name or f"{experiment}_{scale}", root)
    atomic_write_text(path, json.dumps(_finite(record), indent=2, sort_keys=False) + "\n")
    return path


def read_result(path: str | Path) -> dict[str, Any]:
    """Load and validate one results file; ResultError names the file and the missing key."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise ResultError(f"results file not found: {path}") from err
    except json.JSONDecodeError as err:
        raise ResultError(f"results file {path} is not valid JSON: {err}") from err
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise ResultError(f"results file {path} lacks key(s) {missing}; expected {list(REQUIRED_KEYS)}")
    return record


def all_results(root: Path | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """Every results file under `experiments/*/results/`, sorted by path."""
    base = (root or repo_root()) / "experiments"
    return [(path, read_result(path)) for path in sorted(base.glob("*/results/*.json"))]


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are shared files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _finite(value: Any) -> Any:
    """Replace NaN/inf floats (not valid JSON) by None, recursively; numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
