"""SIGKILL the real trainer (`python -m data_constrained.train`) while it writes a checkpoint, resume it, and get
the losses of an uninterrupted run bit for bit; then a resumption under another learning rate is refused.

The write window is made observable by common.checkpoint's test hook (PAPERCLUB_CHECKPOINT_PAUSE_S): the trainer
sleeps after writing and syncing the temporary file of each checkpoint and before renaming it, and the test kills
it as soon as the temporary file of step 6 exists.
"""

import os
import signal
import stat
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from common.checkpoint import PAUSE_VARIABLE, list_checkpoints
from common.config import compose
from common.logging import read_metrics
from data_constrained.train import TrainConfig, train_run

KILL_AT = 6  # checkpoints every 2 steps: killed while writing step 6, the run resumes from step 4


def overrides(tiny_dir: Path) -> list[str]:
    """The cpu-scale tiny run: c32 model, 4096-token budget, 2 epochs (31 steps), a checkpoint every 2 steps."""
    return ["model=c32", "logger=jsonl", "logger.progress=false", f"data.dir={tiny_dir}", "data.token_budget=4096",
            "seq_len=32", "batch_size=8", "lr=1e-2", "epochs=2", "log_every=1", "checkpoint_every=2", "keep_last=2"]


def trainer(run: Path, args: list[str], **env: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "data_constrained.train", *args, f"hydra.run.dir={run}"]
    return subprocess.Popen(command, cwd=run.parent, env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_kill_mid_checkpoint_then_resume_equals_uninterrupted(tiny_dir, tmp_path):
    run, args = tmp_path / "run", overrides(tiny_dir)
    killed = trainer(run, args, **{PAUSE_VARIABLE: "1"})
    ckpt_dir = run / "checkpoints"
    deadline = time.monotonic() + 120
    while not list(ckpt_dir.glob(f".step_{KILL_AT:08d}.*.tmp")):
        assert killed.poll() is None, killed.communicate()
        assert time.monotonic() < deadline, "the trainer never started writing the checkpoint of step 6"
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    assert [p.name for p in list_checkpoints(ckpt_dir)] == ["step_00000002.safetensors", "step_00000004.safetensors"]
    assert list(ckpt_dir.glob(".step_*.tmp"))  # killed inside the write window: the final name was never touched
    logged = [r["step"] for r in read_metrics(run / "metrics.jsonl") if "train/loss" in r]
    assert logged[-1] == KILL_AT  # steps 5 and 6 were logged after the checkpoint the run resumes from

    resumed = trainer(run, args)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    reference = tmp_path / "reference"
    _, summary = train_run(compose("data_constrained", "train", TrainConfig, args), reference)

    got, want = ([r for r in read_metrics(d / "metrics.jsonl") if "step" in r] for d in (run, reference))
    assert max(Counter((r["step"], k) for r in got for k in r if "/" in k).values()) == 1  # no step twice
    for key in ("train/loss", "val/loss", "lr"):
        assert {r["step"]: r[key] for r in got if key in r} == {r["step"]: r[key] for r in want if key in r}, key
    assert f'"val_loss": {summary["val_loss"]}' in out
    assert not list(ckpt_dir.glob(".step_*.tmp"))
    assert {stat.S_IMODE(p.stat().st_mode) for p in list_checkpoints(ckpt_dir)} == {0o644}

    refused = trainer(run, [*args, "lr=0.5"])
    out, err = refused.communicate(timeout=300)
    assert refused.returncode != 0
    assert "lr: 0.01 -> 0.5" in err and "force_resume=true" in err and "size mismatch" not in err
