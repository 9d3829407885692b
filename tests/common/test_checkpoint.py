"""Checkpoints: atomic save, resume-from-latest, and kill -9 mid-run then resume == uninterrupted run."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from common.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    torch_optimizer_state,
)

TRAIN = '''
import sys, time, torch
from common.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, torch_optimizer_state
ckpt_dir, total, hang_after = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
start = 0
if (path := latest_checkpoint(ckpt_dir)) is not None:
    start, state = load_checkpoint(path)
    model.load_state_dict(state["model"])
    opt.load_state_dict(torch_optimizer_state(state["optim"]))
for step in range(start, total):
    g = torch.Generator().manual_seed(step)
    x = torch.randn(32, 4, generator=g)
    loss = ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
    save_checkpoint(ckpt_dir, step + 1, {"model": model.state_dict(), "optim": opt.state_dict()})
    if step + 1 == hang_after:
        time.sleep(600)
torch.save(model.state_dict(), f"{ckpt_dir}/final.pt")
'''


def _run(script: Path, *args, wait=True):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    cmd = [sys.executable, str(script), *map(str, args)]
    if wait:
        return subprocess.run(cmd, env=env, check=True, timeout=120)
    return subprocess.Popen(cmd, env=env)


def test_kill_then_resume_equals_uninterrupted(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(TRAIN))
    _run(script, tmp_path / "a", 10, -1)
    proc = _run(script, tmp_path / "b", 10, 6, wait=False)
    deadline = time.time() + 60
    while not (tmp_path / "b" / "step_00000006.safetensors").exists():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert latest_checkpoint(tmp_path / "b").name == "step_00000006.safetensors"
    _run(script, tmp_path / "b", 10, -1)
    a = torch.load(tmp_path / "a" / "final.pt")
    b = torch.load(tmp_path / "b" / "final.pt")
    for key in a:
        assert torch.equal(a[key], b[key]), key


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
