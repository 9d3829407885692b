"""sha256 of files; scans of token shards (sha256 + largest token id), remembered across loads in a cache.

A shard's scan is kept in `<corpus>/shard_scans.json` under the shard's absolute path, together with the size,
mtime_ns, inode and dtype the file had when it was read; a later scan of a file whose four are unchanged is
answered from the cache, anything else reads the file again. Two rules keep the cache from hiding a change:
- a scan is stored only when the file was last modified more than `SETTLE_NS` before the read began. File
  timestamps are coarse (a kernel tick on Linux, 2 s on FAT), so bytes rewritten within the same tick as the
  read would otherwise leave size and mtime as they were (git's "racily clean" problem);
- the cache sits beside `shards/`, not inside it, and the inode is part of the key, so a copy of the shards
  (to a GPU node, say) is hashed again where it lands.
The cache records what the files contain, never a verdict: callers compare the scan with the manifest each time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.results import atomic_write_text

SCAN_CACHE = "shard_scans.json"
SETTLE_NS = 2 * 10**9
_CACHE_FORMAT = 1
_BLOCK = 2**20  # bytes read at a time; a multiple of every token itemsize


@dataclass(frozen=True)
class ShardScan:
    """What a shard file holds: sha256 (hex) of its bytes and its largest token id (-1 when empty)."""

    sha256: str
    max_token: int


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def scan_shard(path: Path, dtype: np.dtype) -> ShardScan:
    """sha256 and largest token id of a flat token file of `dtype` (size a multiple of its itemsize), in one read."""
    digest, max_token = hashlib.sha256(), -1
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            digest.update(block)
            max_token = max(max_token, int(np.frombuffer(block, dtype=dtype).max()))
    return ShardScan(digest.hexdigest(), max_token)


class ScanCache:
    """Shard scans by absolute path, loaded from one JSON file and written back atomically by `save`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries = self._read()
        self.changed = False

    def scan(self, shard: Path, dtype: np.dtype, *, reuse: bool = True) -> ShardScan:
        """The scan of `shard`: the stored one when `reuse` and the file is unchanged, else read it (and store the
        result when the file has settled)."""
        key = str(shard.resolve())
        stat = shard.stat()
        stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino, "dtype": dtype.name}
        entry = self.entries.get(key)
        if reuse and isinstance(entry, dict) and all(entry.get(k) == v for k, v in stamp.items()):
            return ShardScan(entry["sha256"], entry["max_token"])
        started_ns = time.time_ns()
        scan = scan_shard(shard, dtype)
        if stat.st_mtime_ns < started_ns - SETTLE_NS:
            self.entries[key] = {**stamp, "sha256": scan.sha256, "max_token": scan.max_token}
        else:
            self.entries.pop(key, None)
        self.changed = True
        return scan

    def save(self) -> None:
        """Write the cache if a scan changed it. A folder we may not write to (a read-only corpus) only means the
        shards are hashed again next time, so that error is not raised."""
        if not self.changed:
            return
        with contextlib.suppress(OSError):
            text = json.dumps({"format": _CACHE_FORMAT, "shards": self.entries}, indent=1, sort_keys=True)
            atomic_write_text(self.path, text)
        self.changed = False

    def _read(self) -> dict[str, Any]:
        """The stored entries; none when the file is absent, damaged or of another format (all re-hashed)."""
        try:
            stored = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        shards = stored.get("shards") if isinstance(stored, dict) and stored.get("format") == _CACHE_FORMAT else None
        return shards if isinstance(shards, dict) else {}
