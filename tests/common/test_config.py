"""Hydra config composition, schema validation and clear errors (a throwaway app under a temporary root)."""

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from common.checkpoint import CheckpointError
from common.config import (
    ConfigError,
    LoggerConfig,
    bad_input_message,
    check_choice,
    check_range,
    compose,
    to_schema,
)
from common.data.images import IdxError
from common.errors import PaperclubError, one_line
from common.paths import configs_dir
from common.results import ResultError

APP = '''
import dataclasses
from common.checkpoint import load_checkpoint
from common.config import LoggerConfig, as_dict, check_range, hydra_app, run_dir
from common.results import write_result


@dataclasses.dataclass
class Schema:
    lr: float = 0.1
    steps: int = 3
    ckpt: str = ""
    logger: LoggerConfig = dataclasses.field(default_factory=LoggerConfig)

    def __post_init__(self):
        check_range("lr", self.lr, 0.0, None, low_open=True)


@hydra_app("fixture", "run", Schema)
def main(cfg: Schema):
    if cfg.ckpt:
        load_checkpoint(cfg.ckpt)
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
  - optional experiment: null
lr: 0.1
"""

EXPERIMENT = """\
# @package _global_
steps: 1
"""


@dataclasses.dataclass
class Schema:
    lr: float = 0.1
    steps: int = 3
    ckpt: str = ""
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
    (configs / "fixture" / "experiment").mkdir()
    (configs / "fixture" / "experiment" / "fast.yaml").write_text(EXPERIMENT)
    (tmp_path / "fixture_app.py").write_text(textwrap.dedent(APP))
    monkeypatch.setenv("PAPERCLUB_ROOT", str(tmp_path))
    return tmp_path


def run_app(root: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PAPERCLUB_FULL_ERROR", "HYDRA_FULL_ERROR")}
    env.update(PAPERCLUB_ROOT=str(root), PYTHONPATH=os.pathsep.join([str(root), str(Path(__file__).resolve().parents[2])]),
               **extra_env)
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


def assert_one_line(proc: subprocess.CompletedProcess, *expected: str) -> None:
    """Exit status 2 and stderr exactly one line `error: ...` holding every `expected` substring."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for text in expected:
        assert text in lines[0]


def test_cli_error_is_one_clear_message(app_root):
    proc = run_app(app_root, "lrr=1")
    assert_one_line(proc, "Key 'lrr' not in 'Schema'", "expected a key of Schema: lr, steps, ckpt, logger")


def test_cli_range_error_runs_nothing(app_root):
    proc = run_app(app_root, "lr=-1")
    assert_one_line(proc, "lr=-1.0 is out of range; expected a value in (0.0, inf]")
    assert not list(app_root.rglob("done.txt")) and not (app_root / "experiments").exists()


def test_unknown_optional_group_option_fails(app_root):
    assert compose("fixture", "run", Schema, ["experiment=fast"]).steps == 1
    with pytest.raises(ConfigError, match="^experiment='nope' is not allowed; expected one of 'fast'$"):
        compose("fixture", "run", Schema, ["experiment=nope"])
    proc = run_app(app_root, "experiment=nope")
    assert_one_line(proc, "experiment='nope' is not allowed; expected one of 'fast'")
    assert not list(app_root.rglob("done.txt")) and not (app_root / "experiments").exists()


def test_paperclub_error_in_the_task_is_one_line(app_root):
    proc = run_app(app_root, f"ckpt={app_root}/none.safetensors")
    assert_one_line(proc, f"checkpoint not found: {app_root}/none.safetensors")
    assert not list(app_root.rglob("done.txt"))


@pytest.mark.parametrize("variable", ["PAPERCLUB_FULL_ERROR", "HYDRA_FULL_ERROR"])
def test_full_error_variable_shows_the_traceback(app_root, variable):
    proc = run_app(app_root, "lr=-1", **{variable: "1"})
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "common.config.ConfigError: lr=-1.0 is out of range" in proc.stderr


def test_cli_flags_anywhere(app_root):
    cfg = run_app(app_root, "lr=0.3", "--cfg", "job")
    assert cfg.returncode == 0, cfg.stderr[-2000:]
    assert "lr: 0.3" in cfg.stdout.splitlines() and "backend: jsonl" in cfg.stdout
    info = run_app(app_root, "lr=0.3", "--info", "searchpath")
    assert info.returncode == 0 and f"file://{app_root / 'configs'}" in info.stdout
    multirun = run_app(app_root, "lr=0.1,0.2", "-m")
    assert multirun.returncode == 0, multirun.stderr[-2000:]
    assert sorted(p.read_text() for p in app_root.glob("multirun/*/*/*/done.txt")) == ["0.1", "0.2"]


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


def test_error_family():
    for error in (ConfigError, CheckpointError, ResultError, IdxError):
        assert issubclass(error, PaperclubError)
    assert issubclass(ConfigError, ValueError) and issubclass(CheckpointError, RuntimeError)
    assert bad_input_message(CheckpointError("checkpoint not found: x\nsecond")) == "checkpoint not found: x; second"
    assert bad_input_message(RuntimeError("a bug")) is None


def test_one_line():
    assert one_line("Could not override 'x'.\nTo append use +x=1\n") == "Could not override 'x'; To append use +x=1"
    assert one_line("raised while composing:\n  Key 'a' not in 'S'") == "raised while composing: Key 'a' not in 'S'"


def test_to_schema_rejects_wrong_nested_type():
    from omegaconf import OmegaConf

    with pytest.raises(ConfigError, match="config key .logger.: .*not a subclass of LoggerConfig"):
        to_schema(OmegaConf.create({"lr": 0.1, "logger": 3}), Schema)


def test_missing_launcher_plugin_says_what_to_install():
    from hydra.errors import MissingConfigException

    from common.config import bad_input_message

    err = MissingConfigException("missing", missing_cfg_file="hydra/launcher/ray", options=["basic", "submitit_local"])
    message = bad_input_message(err)
    assert message.startswith("launcher=ray needs Hydra's ray launcher plugin") and "pip install 'paperclub[ray]'" in message
    other = MissingConfigException("missing", missing_cfg_file="experiment/nope", options=["a", "b"])
    assert "expected one of 'a', 'b'" in bad_input_message(other)
