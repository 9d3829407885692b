"""Every experiment config composes (cpu and gpu); bad values name their key; polynomial runs end to end."""

import json
from pathlib import Path

import pytest

from common.config import ConfigError, compose
from common.paths import configs_dir
from generalization.run import Schema, execute, result_name

EXPERIMENT_FILES = sorted(p.stem for p in (configs_dir() / "generalization" / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("name", EXPERIMENT_FILES)
def test_every_experiment_config_composes(name):
    cfg = compose("generalization", "run", Schema, [f"experiment={name}", "logger=jsonl"])
    assert cfg.scale == ("gpu" if name.endswith("_gpu") else "cpu")
    # untagged <experiment>.yaml / <experiment>_gpu.yaml; tagged variants are named like their results file
    assert result_name(cfg) in (name if cfg.tag else None, f"{name.removesuffix('_gpu')}_{cfg.scale}")


@pytest.mark.parametrize("override,key", [("data.name=cifar10", "data.name"), ("bound.delta=2", "bound.delta"),
                                          ("benign.kernel=matern", "benign.kernel"), ("scale=tpu", "scale")])
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        compose("generalization", "run", Schema, ["experiment=polynomial", "logger=jsonl", override])


def test_polynomial_end_to_end_and_plot(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = compose("generalization", "run", Schema,
                  ["experiment=polynomial", "logger=jsonl", "logger.progress=false", "polynomial.seeds=1",
                   "polynomial.gammas=[0.0,3.0]", "polynomial.n_test=200", "polynomial.n_grid=50"])
    record = execute(cfg, results_root=tmp_path)
    saved = json.loads(Path(record["path"]).read_text())
    assert saved["paper"]["claim"].startswith("A 150th-order polynomial")
    assert saved["metrics"]["panels"]["noise"]["fits"]["penalised_interpolate"]["train_mse_mean"] < 1e-6
    from generalization.plot import main as plot_main

    written = plot_main(["--root", str(tmp_path / "experiments" / "generalization"), "--only", "polynomial"])
    assert written and written[0].exists()
