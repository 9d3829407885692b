"""RunLogger: one logger for every package - metrics.jsonl, an (offline by default) W&B run, the console.

    with RunLogger(cfg.logger, run_dir, config=as_dict(cfg), name="train") as log:
        for step in log.progress(range(steps), desc="train"):
            log.log({"loss": loss}, step=step)

`metrics.jsonl` gets one JSON object per `log` call, flushed at once, so nothing is lost on a crash or Ctrl-C.
W&B runs offline unless `logger.mode=online` or WANDB_MODE=online; a W&B failure (no network, bad install)
downgrades to jsonl with a warning instead of failing the run. On exit the run is finished with the status
`finished`, `failed` or `interrupted` (the last is also written to metrics.jsonl).

Resuming (`resume_step=N`, the step of the checkpoint a trainer resumes from; 0 for a resumable run that starts
afresh): steps count updates done, so a record at step s was logged after s updates, and the records at steps > N
were logged after that checkpoint by an attempt that was then killed; the resumed run logs them again. So
metrics.jsonl is first rewritten without them (atomically: a temporary file and a rename; records without a step,
the start/summary/end events, are kept, a torn last line is not), so it never holds a step twice; the new start
event says `resume_step` and how many records were `dropped`. The W&B run
id is kept in `<run dir>/wandb_run_id`; with N > 0 the same W&B run continues (`wandb.init(id=..., resume="allow")`;
offline, each attempt is an `offline-run-*-<id>` folder that `wandb sync` joins into one run). W&B cannot rewind a
run's history: the steps the killed attempt logged after the checkpoint stay in W&B as they were logged (the same
numbers when training is deterministic) and W&B drops their re-logging. Without `resume_step` (a one-off run)
metrics.jsonl is appended to and W&B starts a new run.
"""

from __future__ import annotations

import json
import logging as _logging
import math
import os
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from common.config import LoggerConfig
from common.results import atomic_write_text

T = TypeVar("T")
console = _logging.getLogger("paperclub")
WANDB_RUN_ID = "wandb_run_id"


class RunLogger:
    """Metrics sink for one run: `log`, `summary`, `progress`, `close` (or use as a context manager)."""

    def __init__(self, cfg: LoggerConfig | None, run_dir: str | Path, config: dict[str, Any] | None = None,
                 name: str | None = None, resume_step: int | None = None) -> None:
        """`resume_step`: the checkpoint step a resumed run continues from (see the module docstring)."""
        self.cfg = cfg or LoggerConfig(backend="jsonl", mode="disabled")
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        resumed = {}
        if resume_step is not None:
            dropped = drop_records_after(self.metrics_path, resume_step) if self.metrics_path.exists() else 0
            resumed = {"resume_step": resume_step, "dropped": dropped}
        self._jsonl = self.metrics_path.open("a", buffering=1)
        self._start = time.perf_counter()
        self._closed = False
        self._series: set[str] = set()
        self.wandb_run = None
        self._write({"event": "start", "name": name, "config": config or {}, **resumed})
        if self.cfg.backend == "wandb" and self.cfg.mode != "disabled":
            self.wandb_run = self._init_wandb(config or {}, name, bool(resume_step and resume_step > 0))

    def log(self, metrics: dict[str, Any], step: int | None = None, series: str | None = None) -> None:
        """Record scalar metrics (numbers, numpy/torch scalars) at `step`.

        `series` names a step counter of its own, for a run that trains several models one after the other (the
        ssd pair: `target`, then `draft` from step 0 again): W&B would drop every step below one already logged, so
        the series' metrics, whose names start with `<series>/`, are plotted against `<series>/step` instead (W&B's
        define_metric), and metrics.jsonl records say `"series"`.
        """
        clean = {key: _scalar(value) for key, value in metrics.items()}
        tag = {} if series is None else {"series": series}
        self._write({"step": step, **tag, "time_s": round(time.perf_counter() - self._start, 4), **clean})
        if self.wandb_run is None:
            return
        if series is None:
            self.wandb_run.log(clean, step=step)
            return
        if series not in self._series:
            self._series.add(series)
            self.wandb_run.define_metric(f"{series}/step")
            self.wandb_run.define_metric(f"{series}/*", step_metric=f"{series}/step")
        self.wandb_run.log({**clean, **({} if step is None else {f"{series}/step": step})})

    def summary(self, metrics: dict[str, Any]) -> None:
        """Record final metrics (W&B run summary + a `summary` line in metrics.jsonl)."""
        clean = {key: _scalar(value) for key, value in metrics.items()}
        self._write({"event": "summary", **clean})
        if self.wandb_run is not None:
            self.wandb_run.summary.update(clean)

    def progress(self, iterable: Iterable[T] | None = None, total: int | None = None,
                 desc: str = "") -> Iterator[T]:
        """A tqdm progress bar over `iterable` (or `range(total)`), silent when `logger.progress=false`."""
        from tqdm.auto import tqdm

        iterable = range(total) if iterable is None else iterable
        return iter(tqdm(iterable, total=total, desc=desc, disable=not self.cfg.progress, dynamic_ncols=True,
                         mininterval=1.0))

    def close(self, status: str = "finished") -> None:
        """Finish the run once: write the final event, close the W&B run and the jsonl file."""
        if self._closed:
            return
        self._closed = True
        self._write({"event": "end", "status": status, "wall_s": round(time.perf_counter() - self._start, 3)})
        if self.wandb_run is not None:
            self.wandb_run.finish(exit_code=0 if status == "finished" else 1)
        self._jsonl.close()

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close("finished")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.close("interrupted")
        else:
            self.close("failed")

    def _write(self, record: dict[str, Any]) -> None:
        self._jsonl.write(json.dumps(record, default=str) + "\n")

    def _init_wandb(self, config: dict[str, Any], name: str | None, continue_run: bool):
        """A W&B run; the one whose id `<run dir>/wandb_run_id` holds when `continue_run`, else a new one."""
        mode = os.environ.get("WANDB_MODE", self.cfg.mode)
        id_path = self.run_dir / WANDB_RUN_ID
        run_id = id_path.read_text().strip() if continue_run and id_path.is_file() else ""
        try:
            import wandb

            run = wandb.init(project=self.cfg.project, entity=self.cfg.entity, group=self.cfg.group,
                             tags=list(self.cfg.tags), name=name, config=config, dir=str(self.run_dir),
                             mode=mode, reinit="create_new",
                             settings=wandb.Settings(silent=True, console="off", x_disable_stats=True),
                             **({"id": run_id, "resume": "allow"} if run_id else {}))
        except Exception as err:  # a logger must never take a run down: fall back to jsonl
            warnings.warn(f"W&B could not start ({type(err).__name__}: {err}); logging to "
                          f"{self.metrics_path} only", RuntimeWarning, stacklevel=3)
            return None
        if run.id != run_id:
            atomic_write_text(id_path, run.id + "\n")
        return run


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a metrics.jsonl file (a truncated last line, from a hard kill, is skipped)."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def drop_records_after(path: str | Path, step: int) -> int:
    """Rewrite a metrics.jsonl file atomically without its records at steps > `step` (and a torn last line);
    records without a step are kept. Returns how many records were dropped."""
    path = Path(path)
    records = read_metrics(path)
    kept = [r for r in records if not isinstance(r.get("step"), int | float) or r["step"] <= step]
    atomic_write_text(path, "".join(json.dumps(r, default=str) + "\n" for r in kept))
    return len(records) - len(kept)


def _scalar(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item) and getattr(value, "numel", lambda: 1)() == 1:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else value
    return value


def read_wandb_offline(run_dir: str | Path, wait_s: float = 30.0) -> dict[str, Any]:
    """Read an offline W&B run back without the network: {"history": [rows], "config": {}, "summary": {},
    "finished": bool}.

    W&B's service writes the file asynchronously, so this waits up to `wait_s` seconds for the run's exit record.

    `run_dir` is a RunLogger's folder (the newest `wandb/offline-run-*` inside is read) or an offline-run folder.
    The `.wandb` file is a LevelDB-style log (7-byte ':W&B' header, 32 KiB blocks of records with a 7-byte
    crc/length/type header) of `wandb_internal_pb2.Record` protobufs.
    """
    from wandb.proto import wandb_internal_pb2

    run_dir = Path(run_dir)
    files = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb")) or sorted(run_dir.glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"no offline W&B run file under {run_dir}")
    deadline = time.monotonic() + wait_s
    while True:
        out = _parse_wandb_file(files[-1], wandb_internal_pb2)
        if out["finished"] or time.monotonic() > deadline:
            return out
        time.sleep(0.2)


def _parse_wandb_file(path: Path, wandb_internal_pb2) -> dict[str, Any]:
    out: dict[str, Any] = {"history": [], "config": {}, "summary": {}, "finished": False}
    for payload in _leveldb_records(path.read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            out["history"].append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                   for item in record.history.item})
        elif kind in ("config", "summary", "run"):
            updates = record.run.config.update if kind == "run" else getattr(record, kind).update
            target = out["summary" if kind == "summary" else "config"]
            for item in updates:
                target[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "exit":
            out["finished"] = True
    return out


def _leveldb_records(data: bytes, header: int = 7, block: int = 32768) -> Iterator[bytes]:
    """Payloads of a LevelDB log (record types: 1 full, 2 first, 3 middle, 4 last), joining fragments."""
    if data[:4] != b":W&B":
        raise ValueError("not a W&B run file (missing ':W&B' header)")
    pos, pending = header, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer too short for a record header: skip to next block
            pos += block - pos % block
            continue
        length = int.from_bytes(data[pos + 4:pos + 6], "little")
        kind = data[pos + 6]
        payload = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:  # zero padding
            continue
        if kind == 1:
            yield payload
        elif kind == 2:
            pending = payload
        elif kind == 3:
            pending += payload
        elif kind == 4:
            yield pending + payload
            pending = b""
