"""Building a corpus: three resumable stages (collect, tokenizer, shards) and the manifest that records them.

Each stage writes its record to `stages/<name>.json` with the parameters it ran with; a stage whose record
matches and whose files exist is skipped, so an interrupted build resumes. The shard stage is skipped when the
manifest's parameters match and every shard still passes `verify.check_shards`; a damaged shard is re-encoded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.data.text.collect import collect
from common.data.text.digests import sha256_file
from common.data.text.errors import CorpusError
from common.data.text.manifest import FORMAT_VERSION, default_corpus_dir
from common.data.text.shards import write_shards
from common.data.text.sources import CORPORA, local_sources
from common.data.text.tokenizer import copy_tokenizer, train_tokenizer
from common.data.text.verify import check_file, check_shards
from common.results import atomic_write_text

DEFAULT_VOCAB_SIZE = 16384
DEFAULT_MAX_BYTES = 64 * 2**20
DEFAULT_TOKENIZER_SAMPLE_BYTES = 24 * 2**20
DEFAULT_SHARD_TOKENS = 2**24
DEFAULT_MIN_DOC_BYTES = 256


def build_corpus(
    out_dir: str | Path | None = None,
    corpus: str = "english",
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    seed: int = 0,
    sources: list[Path] | None = None,
    *,
    tokenizer_sample_bytes: int = DEFAULT_TOKENIZER_SAMPLE_BYTES,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    min_doc_bytes: int = DEFAULT_MIN_DOC_BYTES,
    eval_fraction: float = 0.01,
    workers: int | None = None,
    tokenizer_from: str | Path | None = None,
) -> dict[str, Any]:
    """Build (or resume) a corpus and return its manifest.

    `max_bytes`: cap on cleaned UTF-8 text over all splits (None or 0: everything). `sources`: local files or
    folders (.txt .md .rst .py .html .htm, optionally .gz) used instead of the corpus's Debian packages.
    `eval_fraction`: share of documents in each of val and test. `workers`: processes for cleaning (default:
    usable CPUs; 1 runs in-process). `tokenizer_from`: another corpus dir whose tokenizer is reused instead of
    training one (e.g. the `code` corpus encoded with the English tokenizer for continued pre-training).
    """
    out = Path(out_dir) if out_dir is not None else default_corpus_dir(corpus)
    if sources is None and corpus not in CORPORA:
        raise CorpusError(f"unknown corpus {corpus!r}: expected one of {sorted(CORPORA)} or explicit sources")
    specs = local_sources(sources) if sources is not None else list(CORPORA[corpus])
    collect_params = {
        "format": FORMAT_VERSION, "corpus": corpus, "sources": [dataclasses.asdict(s) for s in specs],
        "max_bytes": max_bytes or None, "seed": seed, "min_doc_bytes": min_doc_bytes, "eval_fraction": eval_fraction,
    }
    collected = _run_stage(out, "collect", collect_params, lambda: collect(out, specs, collect_params, workers))
    if tokenizer_from is not None:
        source_tok = Path(tokenizer_from) / "tokenizer"
        check_file(source_tok / "tokenizer.json", None, None)
        tok_params = {"from": str(source_tok.resolve()), "sha256": sha256_file(source_tok / "tokenizer.json")}
        trained = _run_stage(out, "tokenizer", tok_params, lambda: copy_tokenizer(source_tok, out))
    else:
        tok_params = {"vocab_size": vocab_size, "sample_bytes": tokenizer_sample_bytes, "collect": _digest(collected)}
        trained = _run_stage(out, "tokenizer", tok_params, lambda: train_tokenizer(out, tok_params))
    shard_params = {"shard_tokens": shard_tokens, "tokenizer_sha256": trained["sha256"], "collect": _digest(collected)}
    manifest_path = out / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("params", {}).get("shards") == shard_params and _shards_intact(out, manifest):
            return manifest
    manifest = write_shards(out, collected, trained, shard_params)
    manifest["params"] = {"collect": collect_params, "tokenizer": tok_params, "shards": shard_params}
    atomic_write_text(manifest_path, json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def _run_stage(out: Path, name: str, params: dict[str, Any], run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Return the stage record `stages/<name>.json` if it matches `params`, else run the stage and record it."""
    record_path = out / "stages" / f"{name}.json"
    if record_path.exists():
        record = json.loads(record_path.read_text())
        if record["params"] == params and all((out / f).exists() for f in record["files"]):
            return record
    start = time.perf_counter()
    record = run()
    record.update(params=params, seconds=round(time.perf_counter() - start, 2))
    atomic_write_text(record_path, json.dumps(record, indent=1, sort_keys=True))
    return record


def _shards_intact(out: Path, manifest: dict[str, Any]) -> bool:
    """Whether every shard the manifest lists passes `check_shards` (cached scans make this cheap on a resume)."""
    try:
        for info in manifest["splits"].values():
            check_shards(out, manifest, info["shards"])
    except CorpusError:
        return False
    return True


def _digest(record: dict[str, Any]) -> str:
    """sha256 of a stage record's params and results (excluding its timing), chaining stages together."""
    stable = {k: v for k, v in record.items() if k != "seconds"}
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()
