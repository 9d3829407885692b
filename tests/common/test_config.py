"""Hydra config composition, schema validation and clear errors (a throwaway app under a temporary root)."""

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from common.config import ConfigError, LoggerConfig, check_choice, check_range, compose, to_schema
from common.paths import configs_dir

APP = '''
import dataclasses
from common.config import LoggerConfig, as_dict, check_range, hydra_app, run_dir
from common.results import write_result


@dataclasses.dataclass
class Schema:
    lr: float = 0.1
    steps: int = 3
    logger: LoggerConfig = dataclasses.field(default_factory=LoggerConfig)

    def __post_init__(self):
        check_range("lr", self.lr, 0.0, None, low_open=True)


@hydra_app("fixture", "run", Schema)
def main(cfg: Schema):
    out = run_dir()
    write_result("ssd", "fixture", "cpu", {"lr": cfg.lr}, config=as_dict(cfg), name=f"fixture_lr{cfg.lr}",
                 root=out.parent.parent.parent.parent)
    (out / "done.txt").write_text(str(cfg.lr))


if __name__ == "__main__":
    main()
'''

PRIMARY = """\
defaults:
  - fixture_run_schema
  - _self_
  - logger: jsonl
  - launcher: local
lr: 0.1
"""


@dataclasses.dataclass
class Schema:
    lr: float = 0.1
    steps: int = 3
    logger: LoggerConfig = dataclasses.field(default_factory=LoggerConfig)

    def __post_init__(self):
        check_range("lr", self.lr, 0.0, None, low_open=True)


@pytest.fixture
def app_root(tmp_path, monkeypatch):
    """A temporary repo root holding the real shared groups plus a `fixture` package config and app."""
    configs = tmp_path / "configs"
    (configs / "fixture").mkdir(parents=True)
    for group in ("logger", "launcher"):
        (configs / group).mkdir()
        for src in (configs_dir() / group).glob("*.yaml"):
            (configs / group / src.name).write_text(src.read_text())
    (configs / "fixture" / "run.yaml").write_text(PRIMARY)
    (tmp_path / "fixture_app.py").write_text(textwrap.dedent(APP))
    monkeypatch.setenv("PAPERCLUB_ROOT", str(tmp_path))
    return tmp_path


def run_app(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PAPERCLUB_ROOT": str(root),
           "PYTHONPATH": os.pathsep.join([str(root), str(Path(__file__).resolve().parents[2])])}
    return subprocess.run([sys.executable, "-m", "fixture_app", *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=240)


def test_compose_applies_overrides_and_groups(app_root):
    cfg = compose("fixture", "run", Schema, ["lr=0.5", "logger=wandb_online"])
    assert cfg.lr == 0.5 and isinstance(cfg, Schema)
    assert cfg.logger.backend == "wandb" and cfg.logger.mode == "online"


def test_unknown_key_names_the_key(app_root):
    with pytest.raises(ConfigError, match="Key .lrr. not in .Schema."):
        compose("fixture", "run", Schema, ["lrr=0.5"])


def test_wrong_type_names_the_key(app_root):
    with pytest.raises(ConfigError, match=r"lr=abc.*could not be converted to Float; full_key: lr"):
        compose("fixture", "run", Schema, ["lr=abc"])


def test_range_check_names_the_key(app_root):
    with pytest.raises(ConfigError, match=r"lr=-1.0 is out of range; expected a value in \(0.0, inf\]"):
        compose("fixture", "run", Schema, ["lr=-1"])


def test_cli_error_is_one_clear_message(app_root):
    proc = run_app(app_root, "lrr=1")
    assert proc.returncode != 0
    assert "Key 'lrr' not in 'Schema'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_submitit_local_multirun_runs_every_job(app_root):
    proc = run_app(app_root, "-m", "lr=0.1,0.2", "launcher=submitit_local")
    assert proc.returncode == 0, proc.stderr[-2000:]
    done = sorted(p.read_text() for p in app_root.glob("multirun/*/*/*/done.txt"))
    assert done == ["0.1", "0.2"]
    results = sorted(p.name for p in app_root.glob("experiments/ssd/results/*.json"))
    assert results == ["fixture_lr0.1.json", "fixture_lr0.2.json"]


def test_logger_config_rejects_unknown_backend():
    with pytest.raises(ConfigError, match="logger.backend='tensorboard'"):
        LoggerConfig(backend="tensorboard")


def test_check_helpers():
    check_choice("k", "a", ("a", "b"))
    with pytest.raises(ConfigError, match="k='c' is not allowed"):
        check_choice("k", "c", ("a", "b"))
    check_range("x", 1.0, 0.0, 1.0)
    with pytest.raises(ConfigError, match=r"\[0.0, 1.0\)"):
        check_range("x", 1.0, 0.0, 1.0, high_open=True)


def test_to_schema_rejects_wrong_nested_type():
    from omegaconf import OmegaConf

    with pytest.raises(ConfigError, match="config key .logger.: .*not a subclass of LoggerConfig"):
        to_schema(OmegaConf.create({"lr": 0.1, "logger": 3}), Schema)
