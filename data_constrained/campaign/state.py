"""A campaign's state on disk: one JSON record per finished run, its test log-probs, the campaign manifest, the index.

    <state_dir>/<run_id>.json            one finished run: spec, identity (what its id hashes), resolved config,
                                         summary (val/test loss, tokens/s, MFU, ...), teacher scores, provenance
    <state_dir>/<run_id>.logprobs.npy    float16 per-token log-probs of the first `data.test_tokens` test tokens
                                         (replicates and students only: what ensembles of any K are scored from)
    <state_dir>/run_config.json          the campaign manifest (common.run_config): the base training config and
                                         the sha256 of the training tokens; a chunk whose manifest differs is refused
    <state_dir>/index.json               the sweep index: every run in a row, each search's optimum and flags, the
                                         pending runs and their estimated seconds (rewritten, never read back)

A record is self-checking: its id must be the hash of its `identity`, and its log-prob file must have the sha256 it
records; `RunStore` refuses a folder where either fails (one error naming the file). A chunk that cannot write into
the state folder (a GPU machine whose files come back only from $OUT) puts its new records into tar bundles instead
(`BundleWriter`, at most `max_bundles` files of `bundle_max_bytes` each), and `ingest` unpacks such bundles into
the state folder here after the same checks.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import statistics
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from common.config import ConfigError
from common.results import atomic_write_text
from common.run_config import RUN_CONFIG, config_hash

RECORD_FORMAT = 1
INDEX = "index.json"
_RECORD = re.compile(r"^[0-9a-f]{16}\.json$")
_LOGPROBS = re.compile(r"^[0-9a-f]{16}\.logprobs\.npy$")
_BUNDLE = re.compile(r"^dc_\d{8}T\d{6}-[0-9a-f]{4}_\d+\.tar$")
FINISHED, DIVERGED, FAILED, TIMED_OUT = "finished", "diverged", "failed", "timed_out"


class StateError(ConfigError):
    """A campaign state folder (or a bundle for it) holds a file that is not what it claims to be."""


class RunStore:
    """The finished runs of one campaign state folder, by run id. New records go into `write_dir` (default: the
    state folder itself; a chunk whose results travel in bundles stages them elsewhere and leaves the state folder
    as it found it)."""

    def __init__(self, directory: str | Path, write_dir: str | Path | None = None) -> None:
        self.dir = Path(directory)
        self.write_dir = Path(write_dir) if write_dir is not None else self.dir
        self.records: dict[str, dict[str, Any]] = {}
        self.where: dict[str, Path] = {}
        if self.dir.is_dir():
            for path in sorted(self.dir.glob("*.json")):
                if _RECORD.match(path.name):
                    record = read_record(path)
                    self.records[record["run_id"]] = record
                    self.where[record["run_id"]] = self.dir

    def val_loss(self, run_id: str) -> float | None:
        """The validation loss a search compares (inf for a diverged or failed run); None: not run (or stopped at a
        chunk's deadline: to be run again)."""
        record = self.records.get(run_id)
        if record is None or record["status"] == TIMED_OUT:
            return None
        loss = record["summary"].get("val_loss")
        return float("inf") if record["status"] != FINISHED or loss is None else float(loss)

    def add(self, record: dict[str, Any], logprobs: Path | None = None) -> list[Path]:
        """Write `record` (and copy its log-prob file) into `write_dir`; returns the files written."""
        self.write_dir.mkdir(parents=True, exist_ok=True)
        written = []
        if logprobs is not None:
            target = self.write_dir / record["logprobs"]["file"]
            shutil.copyfile(logprobs, target)
            written.append(target)
        path = self.write_dir / f"{record['run_id']}.json"
        atomic_write_text(path, json.dumps(json_safe(record), indent=1) + "\n")
        self.records[record["run_id"]] = record
        self.where[record["run_id"]] = self.write_dir
        return [path, *written]

    def logprobs(self, run_id: str) -> np.ndarray:
        """The run's per-token test log-probs (float64), after checking the file's sha256."""
        info = self.records[run_id]["logprobs"]
        path = self.where[run_id] / info["file"]
        if not path.is_file():
            raise StateError(f"missing file {path} (listed in {run_id}.json)")
        if _sha256(path) != info["sha256"]:
            raise StateError(f"corrupt file {path}: its sha256 differs from the one in {run_id}.json")
        return np.load(path).astype(np.float64)

    def achieved_flops(self) -> dict[str, float]:
        """Median achieved training FLOP/s per model size over finished runs (the cost model's measured rates)."""
        by_size: dict[str, list[float]] = {}
        for record in self.records.values():
            summary = record["summary"]
            rate = (summary.get("steady_tokens_per_s") or 0) * (summary.get("flops_per_token") or 0)
            if record["status"] in (FINISHED, TIMED_OUT) and rate > 0:
                by_size.setdefault(record["spec"]["size"], []).append(rate)
        return {size: statistics.median(rates) for size, rates in by_size.items()}


def json_safe(value: Any) -> Any:
    """`value` with NaN/inf floats as None (JSON has neither) and numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def make_record(run_id: str, spec: dict[str, Any], identity: dict[str, Any], config: dict[str, Any],
                summary: dict[str, Any], status: str, chunk: str, provenance: dict[str, Any],
                teacher: dict[str, Any] | None = None, error: str | None = None,
                logprobs: Path | None = None) -> dict[str, Any]:
    """A record for `RunStore.add`; `logprobs` is the run's test_logprobs.npy (its sha256 is recorded)."""
    if config_hash(identity, ())[:16] != run_id:
        raise StateError(f"run {run_id}: its identity does not hash to its id")
    info = None
    if logprobs is not None:
        info = {**summary.get("test_logprobs", {}), "file": f"{run_id}.logprobs.npy", "sha256": _sha256(logprobs)}
    return {"format": RECORD_FORMAT, "run_id": run_id, "status": status, "chunk": chunk, "spec": spec,
            "identity": identity, "config": config, "summary": summary, "teacher": teacher, "error": error,
            "logprobs": info, "provenance": provenance}


def read_record(path: Path) -> dict[str, Any]:
    """One record, checked: valid JSON of our format whose id is its file name and the hash of its identity."""
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise StateError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise StateError(f"{path} is not a campaign run record (format {RECORD_FORMAT})")
    run_id = record.get("run_id")
    if f"{run_id}.json" != path.name or config_hash(record.get("identity", {}), ())[:16] != run_id:
        raise StateError(f"{path}: the run id does not match the file name or the hash of its identity "
                         f"(edited or damaged); remove it or restore it from git")
    return record


# ---------------------------------------------------------------------------------------------- bundles


class BundleWriter:
    """This chunk's new files as tar bundles `<out>/dc_<chunk>_<n>.tar`, rewritten (atomically) after every run,
    so whatever finished before the chunk is stopped is already in them."""

    def __init__(self, out: Path, chunk: str, max_bytes: int, max_bundles: int) -> None:
        self.out, self.chunk, self.max_bytes, self.max_bundles = Path(out), chunk, max_bytes, max_bundles
        self.files: dict[str, bytes] = {}
        self.bundles: list[Path] = []

    def room_for(self, nbytes: int) -> bool:
        """Whether `nbytes` more (one run's files) still fit into the bundles."""
        return len(self._pack({**self.files, "_": b"\0" * nbytes})) <= self.max_bundles

    def add(self, paths: list[Path]) -> None:
        for path in paths:
            self.files[path.name] = path.read_bytes()
        self.write()

    def write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        packs = self._pack(self.files)
        written = []
        for n, names in enumerate(packs):
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as tar:
                for name in names:
                    info = tarfile.TarInfo(name)
                    info.size, info.mode = len(self.files[name]), 0o644
                    tar.addfile(info, io.BytesIO(self.files[name]))
            path = self.out / f"dc_{self.chunk}_{n}.tar"
            fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=self.out)
            with open(fd, "wb") as handle:
                handle.write(buffer.getvalue())
            Path(tmp).replace(path)
            written.append(path)
        for stale in set(self.bundles) - set(written):
            stale.unlink(missing_ok=True)
        self.bundles = written

    def _pack(self, files: dict[str, bytes]) -> list[list[str]]:
        """Names per bundle: a record and its log-probs stay together, in arrival order (first fit)."""
        packs, sizes = [], []
        for unit in _units(list(files)):
            size = sum(len(files[name]) + 1024 for name in unit)
            for i, used in enumerate(sizes):
                if used + size <= self.max_bytes:
                    packs[i] += unit
                    sizes[i] += size
                    break
            else:
                packs.append(list(unit))
                sizes.append(size)
        return packs


def _units(names: list[str]) -> list[list[str]]:
    stems: dict[str, list[str]] = {}
    for name in names:
        stems.setdefault(name.split(".")[0], []).append(name)
    return list(stems.values())


def ingest(state_dir: str | Path, sources: list[str | Path]) -> dict[str, list[str]]:
    """Unpack bundles (tar files, or folders holding them / loose records) into `state_dir` after checking every
    file; returns {"added": [...], "same": [...], "kept_first": [...]} run ids. A run already there with other
    numbers (GPU runs are not bit-reproducible) keeps the first result and is listed under `kept_first`; one that
    was only stopped at a chunk's deadline (`timed_out`) is replaced."""
    state_dir = Path(state_dir)
    store = RunStore(state_dir)
    report: dict[str, list[str]] = {"added": [], "same": [], "kept_first": []}
    for files in _source_files(sources):
        manifest = files.pop(RUN_CONFIG, None)
        if manifest is not None:
            _ingest_manifest(state_dir, manifest)
        for name in sorted(n for n in files if _RECORD.match(n)):
            with tempfile.TemporaryDirectory() as tmp:
                record_path = Path(tmp) / name
                record_path.write_bytes(files[name])
                record = read_record(record_path)
                logprobs = None
                if record.get("logprobs"):
                    file = record["logprobs"]["file"]
                    if file not in files:
                        raise StateError(f"{name}: its log-prob file {file} is not in the same bundle")
                    logprobs = Path(tmp) / file
                    logprobs.write_bytes(files[file])
                    if _sha256(logprobs) != record["logprobs"]["sha256"]:
                        raise StateError(f"corrupt file {file}: its sha256 differs from the one in {name}")
                existing = state_dir / name
                if existing.exists() and json.loads(existing.read_text())["status"] == TIMED_OUT:
                    existing.unlink()  # a run stopped at a chunk's deadline, now finished by a later chunk
                if existing.exists():
                    same = json.loads(existing.read_text())["summary"] == record["summary"]
                    report["same" if same else "kept_first"].append(record["run_id"])
                    continue
                store.add(record, logprobs)
                report["added"].append(record["run_id"])
        stray = sorted(n for n in files if not (_RECORD.match(n) or _LOGPROBS.match(n)))
        if stray:
            raise StateError(f"unexpected file(s) in a bundle: {stray}")
    return report


def _source_files(sources: list[str | Path]) -> list[dict[str, bytes]]:
    out = []
    for source in map(Path, sources):
        if source.is_dir():
            tars = sorted(p for p in source.glob("dc_*.tar") if _BUNDLE.match(p.name))
            loose = {p.name: p.read_bytes() for p in source.iterdir()
                     if _RECORD.match(p.name) or _LOGPROBS.match(p.name) or p.name == RUN_CONFIG}
            out += [_read_tar(t) for t in tars] + ([loose] if loose else [])
        elif source.is_file() and source.suffix == ".tar":
            out.append(_read_tar(source))
        else:
            raise StateError(f"{source}: expected a dc_*.tar bundle or a folder holding them")
    return out


def _read_tar(path: Path) -> dict[str, bytes]:
    try:
        with tarfile.open(path) as tar:
            members = [m for m in tar.getmembers() if m.isfile()]
            bad = [m.name for m in members if "/" in m.name or m.name.startswith(".")]
            if bad:
                raise StateError(f"{path}: unexpected member(s) {bad}")
            return {m.name: tar.extractfile(m).read() for m in members}
    except tarfile.TarError as err:
        raise StateError(f"{path} is not a readable tar bundle: {err}") from None


def _ingest_manifest(state_dir: Path, manifest: bytes) -> None:
    target = state_dir / RUN_CONFIG
    incoming = json.loads(manifest)
    if target.exists():
        if json.loads(target.read_text())["sha256"] != incoming["sha256"]:
            raise StateError(f"the bundle's campaign manifest differs from {target}: its runs belong to another "
                             f"campaign (other base config or training tokens)")
        return
    state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, manifest.decode())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
