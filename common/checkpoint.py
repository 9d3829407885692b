"""Safetensors checkpoints: atomic, durable save; resume from the newest readable one; nested state as named tensors.

A checkpoint is `<dir>/step_<00000042>.safetensors`: tensors under slash-joined names ("model/layer.0.weight", "optim/state/0/exp_avg")
and every non-tensor leaf (ints, floats, strings, lists) in the safetensors metadata as JSON. Works with torch
tensors or NumPy arrays (JAX arrays: pass `np.asarray`).

Saving writes a temporary file `.step_<n>.<random>.tmp` in the same folder, makes it mode 0644 (mkstemp's 0600
would hide it from other users of a shared run dir), fsyncs it, renames it over the final name and fsyncs the
folder, so a kill or power loss mid-save leaves the previous checkpoints intact and never a partial file under a
final name. A temporary file left by a killed save is removed by the next successful save (one writer per folder).
`load_latest_checkpoint` resumes from the newest checkpoint that reads back; a newer unreadable one (truncated,
or not ours) is skipped with a warning naming it, which is why trainers keep `keep_last >= 2`. It stays on disk for
inspection until `keep_last` prunes it or the run saves that step again. (Safetensors has no checksum: a
truncated or garbled header is detected, flipped bits inside tensor data are not.)

Test hook: `PAPERCLUB_CHECKPOINT_PAUSE_S=<seconds>` sleeps after the temporary file is complete and synced and
before the rename, so a test can SIGKILL a real trainer inside the write window
(tests/data_constrained/test_resume_kill.py). Unset (always, outside tests) it costs nothing.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from common.errors import PaperclubError

_NAME = re.compile(r"^step_(\d{8,})\.safetensors$")
_TEMPORARY = ".step_*.tmp"
_META_KEY = "paperclub_state"
SEP = "/"
FILE_MODE = 0o644
PAUSE_VARIABLE = "PAPERCLUB_CHECKPOINT_PAUSE_S"


class CheckpointError(PaperclubError, RuntimeError):
    """A checkpoint file is missing, unreadable or not one of ours."""


def save_checkpoint(directory: str | Path, step: int, state: dict[str, Any], keep_last: int = 2) -> Path:
    """Save nested `state` at `step` atomically and durably (mode 0644); keep the newest `keep_last` checkpoints
    (0 keeps all)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors, meta = flatten_state(state)
    path = directory / f"step_{step:08d}.safetensors"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        _save_file(tensors, tmp, {_META_KEY: json.dumps({"step": step, "meta": meta})})
        os.chmod(tmp, FILE_MODE)
        _fsync(tmp)
        _pause_for_tests()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync(directory)
    for stale in directory.glob(_TEMPORARY):
        stale.unlink(missing_ok=True)
    if keep_last > 0:
        for old in list_checkpoints(directory)[:-keep_last]:
            old.unlink(missing_ok=True)
    return path


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Checkpoint files in `directory`, oldest step first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The newest checkpoint in `directory`, or None."""
    found = list_checkpoints(directory)
    return found[-1] if found else None


def load_latest_checkpoint(directory: str | Path, framework: str = "torch") -> tuple[int, dict[str, Any]]:
    """(step, nested state) of the newest readable checkpoint in `directory`.

    A newer checkpoint that does not read back is skipped with a RuntimeWarning naming it; CheckpointError when
    `directory` holds no checkpoint or none of them is readable (naming each file and why).
    """
    found = list_checkpoints(directory)
    if not found:
        raise CheckpointError(f"no checkpoint (step_*.safetensors) in {directory}")
    failures: list[CheckpointError] = []
    for path in reversed(found):
        try:
            loaded = load_checkpoint(path, framework)
        except CheckpointError as err:
            failures.append(err)
            continue
        for err in failures:
            warnings.warn(f"{err}; falling back to the previous checkpoint {path}", RuntimeWarning, stacklevel=2)
        return loaded
    raise CheckpointError(f"none of the {len(found)} checkpoints in {directory} is readable: "
                          + "; ".join(map(str, failures)))


def load_checkpoint(path: str | Path, framework: str = "torch") -> tuple[int, dict[str, Any]]:
    """(step, nested state) from a checkpoint file; tensors as torch tensors or NumPy arrays (`framework`)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        if framework == "torch":
            from safetensors.torch import load_file
        else:
            from safetensors.numpy import load_file
        from safetensors import safe_open

        tensors = load_file(str(path))
        with safe_open(str(path), framework="numpy") as handle:
            header = (handle.metadata() or {}).get(_META_KEY)
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} is unreadable or corrupt: {err}") from err
    if header is None:
        raise CheckpointError(f"{path} is a safetensors file but not a paperclub checkpoint (no '{_META_KEY}')")
    try:
        record = json.loads(header)
        return record["step"], unflatten_state(tensors, record["meta"])
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise CheckpointError(f"checkpoint {path} has a corrupt '{_META_KEY}' record: {err!r}") from err


def flatten_state(state: dict[str, Any], prefix: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a nested dict into ({"a/b": tensor}, {"a/c": JSON leaf}). Keys must not contain '/'."""
    tensors: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for key, value in state.items():
        key = str(key)
        if SEP in key:
            raise CheckpointError(f"state key {prefix + key!r} contains {SEP!r}, which is the path separator")
        name = prefix + key
        if isinstance(value, dict):
            sub_tensors, sub_meta = flatten_state(value, name + SEP)
            tensors.update(sub_tensors)
            meta.update(sub_meta)
            if not value:
                meta[name] = {}
        elif _is_array(value):
            # a copy: safetensors refuses tensors that share storage (tied embeddings), and GPU tensors move anyway
            tensors[name] = value.detach().to("cpu", copy=True).contiguous() if hasattr(value, "detach") else value
        else:
            meta[name] = value
    return tensors, meta


def unflatten_state(tensors: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of `flatten_state`; integer-looking keys stay strings (as torch optimizer state expects ints,
    callers that need them convert: see `torch_optimizer_state`)."""
    state: dict[str, Any] = {}
    for name, value in [*meta.items(), *tensors.items()]:
        node = state
        *parents, leaf = name.split(SEP)
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return state


def torch_optimizer_state(state: dict[str, Any]) -> dict[str, Any]:
    """Restore the int keys of a torch optimizer `state_dict()` after a round trip through a checkpoint."""
    return {
        "state": {int(k): v for k, v in state.get("state", {}).items()},
        "param_groups": state["param_groups"],
    }


def _is_array(value: Any) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype") and not isinstance(value, int | float)


def _fsync(path: str | Path) -> None:
    """Flush a file's data, or a folder's entries (a rename), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pause_for_tests() -> None:
    """The test hook of the module docstring: sleep `$PAPERCLUB_CHECKPOINT_PAUSE_S` seconds inside the write window."""
    pause = os.environ.get(PAUSE_VARIABLE)
    if pause:
        time.sleep(float(pause))


def _save_file(tensors: dict[str, Any], path: str, metadata: dict[str, str]) -> None:
    if any(hasattr(t, "detach") for t in tensors.values()):
        from safetensors.torch import save_file
    else:
        from safetensors.numpy import save_file
    save_file(tensors, path, metadata=metadata)
