"""run_config.json: the canonical hash, the diff of two configs, and the refusal to resume under another config."""

import json

import pytest

from common.run_config import (
    ABSENT,
    RUN_CONFIG,
    ResumeError,
    check_resume,
    config_hash,
    diff_configs,
    record_run_config,
    without_keys,
)

CONFIG = {"lr": 0.01, "seed": 0, "model": {"d_model": 32, "n_layers": 2}, "tags": ["a"],
          "logger": {"backend": "jsonl", "progress": False}, "resume": True, "force_resume": False}


def test_hash_is_canonical_and_skips_the_ignored_keys():
    reordered = {"model": {"n_layers": 2, "d_model": 32}, **{k: v for k, v in reversed(CONFIG.items())}}
    assert config_hash(reordered) == config_hash(CONFIG)
    bookkeeping = {**CONFIG, "logger": {"backend": "wandb", "progress": True}, "resume": False, "hydra": {"x": 1}}
    assert config_hash(bookkeeping) == config_hash(CONFIG)
    assert config_hash({**CONFIG, "lr": 0.02}) != config_hash(CONFIG)
    assert config_hash({**CONFIG, "model": {"d_model": 32, "n_layers": 3}}) != config_hash(CONFIG)
    assert config_hash({"a": 1}, ()) == "f9d86028c6e0d64e225186f96acb69338b2c59764df79162107f5c4bb34d1310"  # of '{"a": 1}'


def test_without_keys_takes_dotted_paths():
    assert without_keys(CONFIG, ("model.n_layers", "logger", "tags", "resume", "force_resume")) == {
        "lr": 0.01, "seed": 0, "model": {"d_model": 32}}


def test_diff_names_nested_and_absent_keys_in_order():
    new = {**CONFIG, "lr": 0.5, "model": {"d_model": 64, "n_layers": 2}, "tags": ["a", "b"], "extra": 1}
    del new["seed"]
    assert diff_configs(CONFIG, new) == [("lr", 0.01, 0.5), ("model.d_model", 32, 64), ("tags", ["a"], ["a", "b"]),
                                         ("extra", ABSENT, 1), ("seed", 0, ABSENT)]
    assert diff_configs(CONFIG, dict(CONFIG)) == []


def test_resume_under_the_same_config_passes_and_a_changed_one_is_refused(tmp_path):
    path = record_run_config(tmp_path, CONFIG)
    record = json.loads(path.read_text())
    assert path.name == RUN_CONFIG and record["sha256"] == config_hash(CONFIG)
    assert "logger" not in record["config"] and "logger" in record["ignored"]
    check_resume(tmp_path, {**CONFIG, "logger": {"backend": "wandb"}, "resume": True})  # bookkeeping only
    changed = {**CONFIG, "lr": 0.5, "model": {"d_model": 64, "n_layers": 4}, "seed": 1, "tags": []}
    with pytest.raises(ResumeError) as err:
        check_resume(tmp_path, changed)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path) in message
    assert "lr: 0.01 -> 0.5, seed: 0 -> 1, model.d_model: 32 -> 64 (and 2 more);" in message
    assert "force_resume=true" in message
    assert json.loads(path.read_text()) == record  # a refusal changes nothing


def test_force_resume_warns_and_records_the_new_config(tmp_path):
    record_run_config(tmp_path, CONFIG)
    changed = {**CONFIG, "lr": 0.5}
    with pytest.warns(RuntimeWarning, match=r"force_resume=true: .*lr: 0.01 -> 0.5"):
        check_resume(tmp_path, changed, force=True)
    assert json.loads((tmp_path / RUN_CONFIG).read_text())["sha256"] == config_hash(changed)
    check_resume(tmp_path, changed)  # the forced config is the run's config from now on


def test_missing_or_unreadable_record(tmp_path):
    with pytest.warns(RuntimeWarning, match="run_config.json is missing"):
        check_resume(tmp_path, CONFIG)  # a run dir from before run configs were recorded
    assert json.loads((tmp_path / RUN_CONFIG).read_text())["sha256"] == config_hash(CONFIG)
    (tmp_path / RUN_CONFIG).write_text("{not json")
    with pytest.raises(ResumeError, match=r"run_config.json is unreadable .*force_resume=true"):
        check_resume(tmp_path, CONFIG)
    with pytest.warns(RuntimeWarning, match="recording the current config"):
        check_resume(tmp_path, CONFIG, force=True)
    check_resume(tmp_path, CONFIG)
