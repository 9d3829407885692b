"""Stage 1 of a build: clean, de-duplicate, cap and split documents into `docs/<split>.jsonl`.

Documents are taken in a seeded hash order of their ids until `max_bytes` of cleaned text (so a capped build is a
uniform sample of documents); exact duplicates (sha256 of the normalised text) are dropped; each document goes to
train/val/test by a seeded hash of its id, so its split does not depend on what else is in the corpus.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from common.data.text.errors import CorpusError
from common.data.text.manifest import SPLITS
from common.data.text.sources import Source, enumerate_documents, read_document, source_info


def collect(out: Path, specs: list[Source], params: dict[str, Any], workers: int | None) -> dict[str, Any]:
    """Write `docs/<split>.jsonl` ({"id", "text"} per line) under `out`; return the stage record (per-source
    and per-split docs and bytes). `params`: seed, max_bytes (None: no cap), min_doc_bytes, eval_fraction."""
    items = [item for spec in specs for item in enumerate_documents(spec)]
    seed, max_bytes = params["seed"], params["max_bytes"]
    items.sort(key=lambda item: _unit_hash("order", seed, item[1]))
    stats = {s.name: {**source_info(s), "docs": 0, "bytes": 0, "dropped": 0, "duplicates": 0} for s in specs}
    splits = {s: {"docs": 0, "bytes": 0} for s in SPLITS}
    seen: set[str] = set()
    (out / "docs").mkdir(parents=True, exist_ok=True)
    total = 0
    texts = _map_docs(items, params["min_doc_bytes"], workers)
    with contextlib.ExitStack() as stack:
        handles = {s: stack.enter_context(open(out / "docs" / f"{s}.jsonl.tmp", "w", encoding="utf-8")) for s in SPLITS}
        stack.callback(texts.close)
        bar = stack.enter_context(tqdm(texts, total=len(items), desc="collect", unit="doc"))
        for (spec, doc_id, _), text in zip(items, bar, strict=False):
            entry = stats[spec.name]
            if text is None:
                entry["dropped"] += 1
                continue
            digest = hashlib.sha256(text.encode()).hexdigest()
            if digest in seen:
                entry["duplicates"] += 1
                continue
            seen.add(digest)
            size = len(text.encode())
            split = _split_of(doc_id, seed, params["eval_fraction"])
            handles[split].write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
            entry["docs"] += 1
            entry["bytes"] += size
            splits[split]["docs"] += 1
            splits[split]["bytes"] += size
            total += size
            if max_bytes and total >= max_bytes:
                break
    for s in SPLITS:
        os.replace(out / "docs" / f"{s}.jsonl.tmp", out / "docs" / f"{s}.jsonl")
    if splits["train"]["docs"] == 0:
        raise CorpusError(f"no documents of at least {params['min_doc_bytes']} bytes found in {[s.name for s in specs]}")
    return {"sources": list(stats.values()), "splits": splits, "files": [f"docs/{s}.jsonl" for s in SPLITS]}


def read_texts(path: Path) -> Iterator[str]:
    """The documents' texts of one `docs/<split>.jsonl`, in file order."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)["text"]


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _map_docs(items: list[tuple[Source, str, str]], min_doc_bytes: int, workers: int | None) -> Iterator[str | None]:
    """Cleaned text (or None when dropped) for each item, in order; uses a process pool when workers > 1."""
    workers = workers or usable_cpus()
    read = functools.partial(read_document, min_doc_bytes=min_doc_bytes)
    if workers <= 1 or len(items) < 2 * workers:
        yield from map(read, items)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(read, items, chunksize=8)


def _split_of(doc_id: str, seed: int, eval_fraction: float) -> str:
    """"train", "val" or "test" from a seeded hash of the document id (stable whatever else is in the corpus)."""
    u = _unit_hash("split", seed, doc_id)
    return "val" if u < eval_fraction else "test" if u < 2 * eval_fraction else "train"


def _unit_hash(purpose: str, seed: int, key: str) -> float:
    """A uniform number in [0, 1) from sha256(purpose:seed:key)."""
    digest = hashlib.sha256(f"{purpose}:{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
