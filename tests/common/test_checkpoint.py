"""Checkpoints: atomic and durable save (0644, fsynced), resume from the newest readable one, clear errors.

Killing a real trainer mid-save and resuming it: tests/data_constrained/test_resume_kill.py.
"""

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from common.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_latest_checkpoint,
    save_checkpoint,
    torch_optimizer_state,
)


def test_round_trip_nested_state_and_retention(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(5, 3)).sum().backward()
    opt.step()
    state = {"model": model.state_dict(), "optim": opt.state_dict(), "epoch": 3, "rng": [1, 2], "empty": {}}
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, state, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000002.safetensors",
                                                           "step_00000003.safetensors"]
    step, loaded = load_checkpoint(latest_checkpoint(tmp_path))
    assert step == 3 and loaded["epoch"] == 3 and loaded["rng"] == [1, 2] and loaded["empty"] == {}
    assert torch.equal(loaded["model"]["weight"], model.weight.detach())
    restored = torch.optim.Adam(model.parameters())
    restored.load_state_dict(torch_optimizer_state(loaded["optim"]))
    assert torch.equal(restored.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_numpy_state(tmp_path):
    state = {"params": {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, "step": 7}
    path = save_checkpoint(tmp_path, 7, state)
    step, loaded = load_checkpoint(path, framework="numpy")
    assert step == 7 and np.array_equal(loaded["params"]["w"], state["params"]["w"])


def test_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found: .*missing.safetensors"):
        load_checkpoint(tmp_path / "missing.safetensors")
    path = save_checkpoint(tmp_path, 1, {"w": torch.ones(4)})
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(CheckpointError, match="unreadable or corrupt"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="contains '/'"):
        save_checkpoint(tmp_path, 2, {"a/b": torch.ones(1)})
    assert latest_checkpoint(tmp_path / "nowhere") is None


def test_tied_weights_save_and_reload(tmp_path):
    emb = torch.nn.Embedding(5, 3)
    head = torch.nn.Linear(3, 5, bias=False)
    head.weight = emb.weight  # tied: two state-dict entries share one storage
    state = {"emb": emb.state_dict(), "head": head.state_dict()}
    _, loaded = load_checkpoint(save_checkpoint(tmp_path, 1, state))
    assert torch.equal(loaded["emb"]["weight"], loaded["head"]["weight"])


def test_corrupt_latest_falls_back_to_the_previous_one_with_a_warning(tmp_path):
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, {"w": torch.full((4,), float(step))}, keep_last=2)
    latest = latest_checkpoint(tmp_path)
    latest.write_bytes(latest.read_bytes()[:-3])  # truncated, as by a full disk
    with pytest.warns(RuntimeWarning, match=r"step_00000003\.safetensors is unreadable or corrupt.*falling back to "
                                            r"the previous checkpoint .*step_00000002\.safetensors"):
        step, state = load_latest_checkpoint(tmp_path)
    assert step == 2 and torch.equal(state["w"], torch.full((4,), 2.0))
    list_checkpoints(tmp_path)[0].write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"none of the 2 checkpoints in .* is readable: .*step_00000003.*"
                                              r"step_00000002"):
        load_latest_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint .* in .*nowhere"):
        load_latest_checkpoint(tmp_path / "nowhere")


def test_checkpoints_are_0644_and_synced_before_and_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    old_umask = os.umask(0o077)  # a strict umask must not make checkpoints private
    try:
        path = save_checkpoint(tmp_path, 5, {"w": torch.ones(3)})
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    tmp = events[1][1]
    assert Path(tmp).name.startswith(".step_00000005.") and tmp.endswith(".tmp")
    assert events == [("fsync", tmp), ("replace", tmp), ("fsync", str(tmp_path))]


def test_a_killed_saves_temporary_file_is_removed_by_the_next_save(tmp_path):
    stale = tmp_path / ".step_00000004.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    assert latest_checkpoint(tmp_path) is None  # never taken for a checkpoint
    save_checkpoint(tmp_path, 4, {"w": torch.ones(2)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000004.safetensors"]


def test_corrupt_state_record_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "step_00000001.safetensors"
    save_file({"w": torch.ones(1)}, str(path), metadata={"paperclub_state": json.dumps({"meta": {}})})
    with pytest.raises(CheckpointError, match=r"step_00000001.safetensors has a corrupt 'paperclub_state' record"):
        load_checkpoint(path)
