"""Where the repository, its configs, results and data live.

The repository root is found from this file (an editable install keeps `common/` inside the checkout);
`PAPERCLUB_ROOT` overrides it, `PAPERCLUB_DATA` overrides the data folder (default `<root>/data`).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGES = ("ssd", "dmpc", "lejepa", "generalization", "data_constrained")


def repo_root() -> Path:
    """The checkout's root folder (holds `configs/`, `experiments/`)."""
    env = os.environ.get("PAPERCLUB_ROOT")
    return Path(env).resolve() if env else Path(__file__).resolve().parents[1]


def configs_dir() -> Path:
    """The root of the Hydra config tree (`configs/`)."""
    return repo_root() / "configs"


def experiments_dir(package: str | None = None) -> Path:
    """`experiments/` or `experiments/<package>/`."""
    base = repo_root() / "experiments"
    return base / package if package else base


def data_dir() -> Path:
    """Generated data (corpora, datasets): `$PAPERCLUB_DATA` or `<root>/data` (git-ignored)."""
    env = os.environ.get("PAPERCLUB_DATA")
    return Path(env).resolve() if env else repo_root() / "data"
