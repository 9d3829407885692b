"""Safetensors checkpoints: atomic save, resume from the latest, nested state flattened to named tensors.

A checkpoint is `<dir>/step_<00000042>.safetensors`: tensors under slash-joined names ("model/layer.0.weight", "optim/state/0/exp_avg")
and every non-tensor leaf (ints, floats, strings, lists) in the safetensors metadata as JSON. Saving writes a temporary
file and renames it, so a kill mid-save leaves the previous checkpoint intact and never a partial file under the
final name. Works with torch tensors or NumPy arrays (JAX arrays: pass `np.asarray`).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

_NAME = re.compile(r"^step_(\d{8,})\.safetensors$")
_META_KEY = "paperclub_state"
SEP = "/"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or not one of ours."""


def save_checkpoint(directory: str | Path, step: int, state: dict[str, Any], keep_last: int = 2) -> Path:
    """Save nested `state` at `step` atomically; keep the newest `keep_last` checkpoints (0 keeps all)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors, meta = flatten_state(state)
    path = directory / f"step_{step:08d}.safetensors"
    fd, tmp = tempfile.mkstemp(prefix=".step_", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        _save_file(tensors, tmp, {_META_KEY: json.dumps({"step": step, "meta": meta})})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
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
    record = json.loads(header)
    return record["step"], unflatten_state(tensors, record["meta"])


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


def _save_file(tensors: dict[str, Any], path: str, metadata: dict[str, str]) -> None:
    if any(hasattr(t, "detach") for t in tensors.values()):
        from safetensors.torch import save_file
    else:
        from safetensors.numpy import save_file
    save_file(tensors, path, metadata=metadata)
