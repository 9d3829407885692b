"""RunLogger: metrics.jsonl, an offline W&B run read back from disk, clean shutdown statuses, resuming."""

import json
from collections import Counter

import numpy as np
import pytest

from common.config import LoggerConfig
from common.logging import WANDB_RUN_ID, RunLogger, read_metrics, read_wandb_offline


def test_jsonl_and_offline_wandb_round_trip(tmp_path):
    cfg = LoggerConfig(backend="wandb", mode="offline", progress=False)
    with RunLogger(cfg, tmp_path, config={"lr": 0.1, "model": {"width": 8}}, name="t") as log:
        for step in log.progress(range(3), desc="x"):
            log.log({"loss": 1.0 / (step + 1), "acc": np.float32(0.5)}, step=step)
        log.summary({"final_loss": 1 / 3})
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert records[0] == {"event": "start", "name": "t", "config": {"lr": 0.1, "model": {"width": 8}}}
    assert [r["loss"] for r in records if "loss" in r] == [1.0, 0.5, 1 / 3]
    assert records[-1]["event"] == "end" and records[-1]["status"] == "finished"
    run = read_wandb_offline(tmp_path)
    assert run["finished"]
    assert [row["loss"] for row in run["history"]] == [1.0, 0.5, 1 / 3]
    assert [row["_step"] for row in run["history"]] == [0, 1, 2]
    assert run["config"]["lr"] == 0.1
    assert run["summary"]["final_loss"] == pytest.approx(1 / 3)


def test_series_restart_their_step_without_wandb_dropping_them(tmp_path):
    """Two models trained one after the other in one run (the ssd pair): the second's steps restart at 1. Logged
    with plain `step=`, W&B drops every row below the first model's last step; as series, all reach W&B, each
    against its own `<series>/step`."""
    cfg = LoggerConfig(backend="wandb", mode="offline", progress=False)
    with RunLogger(cfg, tmp_path, name="pair") as log:
        for name, losses in (("target", [3.0, 2.0, 1.0]), ("draft", [4.0, 3.5])):
            for step, loss in enumerate(losses, start=1):
                log.log({f"{name}/loss": loss}, step=step, series=name)
    history = read_wandb_offline(tmp_path)["history"]
    assert [(r["draft/step"], r["draft/loss"]) for r in history if "draft/loss" in r] == [(1, 4.0), (2, 3.5)]
    assert [(r["target/step"], r["target/loss"]) for r in history if "target/loss" in r] == [
        (1, 3.0), (2, 2.0), (3, 1.0)]
    records = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "series" in r]
    assert [(r["series"], r["step"]) for r in records] == [("target", 1), ("target", 2), ("target", 3),
                                                           ("draft", 1), ("draft", 2)]


def test_exception_closes_with_failed_status_and_keeps_metrics(tmp_path):
    with pytest.raises(RuntimeError), RunLogger(LoggerConfig(backend="jsonl", mode="disabled"), tmp_path) as log:
        log.log({"loss": 2.0}, step=0)
        raise RuntimeError("boom")
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert records[1]["loss"] == 2.0
    assert records[-1]["status"] == "failed"


def test_ctrl_c_closes_with_interrupted_status(tmp_path):
    with pytest.raises(KeyboardInterrupt), RunLogger(None, tmp_path) as log:
        log.log({"loss": 2.0}, step=0)
        raise KeyboardInterrupt
    assert read_metrics(tmp_path / "metrics.jsonl")[-1]["status"] == "interrupted"


def test_metrics_are_on_disk_before_close(tmp_path):
    log = RunLogger(None, tmp_path)
    log.log({"loss": 1.5}, step=7)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["loss"] == 1.5
    log.close()
    log.close()  # idempotent
    assert read_metrics(tmp_path / "metrics.jsonl")[-1]["event"] == "end"


def test_truncated_last_line_is_skipped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0, "loss": 1.0}\n{"step": 1, "lo')
    assert read_metrics(path) == [{"step": 0, "loss": 1.0}]


def test_resume_drops_the_steps_logged_after_the_checkpoint(tmp_path):
    log = RunLogger(None, tmp_path, resume_step=0)
    for step in range(1, 7):
        log.log({"loss": float(step)}, step=step)
    log.summary({"note": "a summary has no step"})
    with (tmp_path / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 7, "lo')  # killed mid-line; the checkpoint it resumes from is at step 4
    with RunLogger(None, tmp_path, resume_step=4) as resumed:
        for step in range(5, 9):
            resumed.log({"loss": 10.0 * step}, step=step)
    records = read_metrics(tmp_path / "metrics.jsonl")
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == [1, 2, 3, 4, 5, 6, 7, 8] and not [s for s, n in Counter(steps).items() if n > 1]
    assert [r["loss"] for r in records if "loss" in r][3:5] == [4.0, 50.0]
    events = [(r["event"], r.get("resume_step"), r.get("dropped")) for r in records if "event" in r]
    assert events == [("start", 0, 0), ("summary", None, None), ("start", 4, 2), ("end", None, None)]


def test_wandb_run_resumes_by_id(tmp_path):
    cfg = LoggerConfig(backend="wandb", mode="offline", progress=False)
    with RunLogger(cfg, tmp_path, config={"lr": 0.1}, name="t", resume_step=0) as log:
        run_id = log.wandb_run.id
        for step in (1, 2, 3):
            log.log({"loss": float(step)}, step=step)
    assert (tmp_path / WANDB_RUN_ID).read_text().strip() == run_id
    with RunLogger(cfg, tmp_path, config={"lr": 0.1}, name="t", resume_step=3) as log:
        assert log.wandb_run.id == run_id
        for step in (4, 5):
            log.log({"loss": float(step)}, step=step)
    assert (tmp_path / WANDB_RUN_ID).read_text().strip() == run_id
    attempts = sorted((tmp_path / "wandb").glob("offline-run-*"))  # one folder per attempt, `wandb sync`ed as one run
    assert [[f.name for f in p.glob("run-*.wandb")] for p in attempts] == [[f"run-{run_id}.wandb"]] * 2
    assert [[row["_step"] for row in read_wandb_offline(p)["history"]] for p in attempts] == [[1, 2, 3], [4, 5]]
