"""Checking a corpus against its manifest: every file (`verify_corpus`), or the shards a load opens (`check_shards`).

A shard passes when it exists, has `tokens * itemsize` bytes, the sha256 the manifest lists, and no token id at
or above the tokenizer's vocabulary size. `check_shards` answers repeated checks of unchanged files from the
scan cache (`digests.ScanCache`); `verify_corpus` always reads everything again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from common.data.text.digests import SCAN_CACHE, ScanCache, sha256_file
from common.data.text.errors import CorpusError
from common.data.text.manifest import read_manifest, resolve_dir


def verify_corpus(out_dir: str | Path | None = None) -> dict[str, Any]:
    """Re-read tokenizer.json and every shard (size, sha256, max token id) and the split token totals; return the
    manifest or raise CorpusError naming the first bad file."""
    out = resolve_dir(out_dir)
    manifest = read_manifest(out)
    check_file(out / "tokenizer" / "tokenizer.json", None, manifest["tokenizer"]["sha256"])
    for split, info in manifest["splits"].items():
        check_shards(out, manifest, info["shards"], reuse=False)
        total = sum(s["tokens"] for s in info["shards"])
        if total != info["tokens"]:
            raise CorpusError(f"{out / 'manifest.json'}: split {split!r} lists {total} shard tokens, expected {info['tokens']}")
    return manifest


def check_shards(out: Path, manifest: dict[str, Any], shards: list[dict[str, Any]], *, reuse: bool = True) -> None:
    """Check `shards` (entries {file, tokens, sha256} of `manifest`) of the corpus in `out`; CorpusError on the
    first that fails. `reuse`: answer unchanged files from the scan cache (it is updated either way)."""
    dtype = np.dtype(manifest["dtype"])
    vocab_size = int(manifest["tokenizer"]["vocab_size"])
    cache = ScanCache(out / SCAN_CACHE)
    try:
        for shard in shards:
            path = out / "shards" / shard["file"]
            check_file(path, shard["tokens"] * dtype.itemsize, None)
            scan = cache.scan(path, dtype, reuse=reuse)
            if scan.sha256 != shard["sha256"]:
                raise CorpusError(f"corrupt file {path}: expected sha256 {shard['sha256']} (manifest), found "
                                  f"{scan.sha256}; {_rebuild(out)}")
            if scan.max_token >= vocab_size:
                raise CorpusError(f"corrupt file {path}: expected token ids < {vocab_size} (the vocabulary size in "
                                  f"the manifest), found {scan.max_token}; {_rebuild(out)}")
    finally:
        cache.save()


def check_file(path: Path, expected_bytes: int | None, expected_sha256: str | None) -> None:
    """Raise CorpusError if `path` (a file of a corpus: `<corpus>/<folder>/<name>`) is missing, has the wrong
    size, or the wrong sha256."""
    if not path.exists():
        raise CorpusError(f"missing file {path}; {_rebuild(path.parent.parent)}")
    size = path.stat().st_size
    if expected_bytes is not None and size != expected_bytes:
        raise CorpusError(f"truncated or corrupt file {path}: expected {expected_bytes} bytes, found {size}; "
                          f"{_rebuild(path.parent.parent)}")
    if expected_sha256 is not None:
        found = sha256_file(path)
        if found != expected_sha256:
            raise CorpusError(f"corrupt file {path}: expected sha256 {expected_sha256}, found {found}")


def _rebuild(out: Path) -> str:
    """How to rewrite the shards of corpus `out` (a build re-encodes every shard when one fails these checks)."""
    return f"rebuild it with the command that made it (`python -m common.data.text build --out {out}` + its options, or `tiny --out {out}`)"
