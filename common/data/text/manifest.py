"""Where a corpus lives and reading its `manifest.json` (dtype, tokenizer, splits and their shards)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.data.text.errors import CorpusError
from common.paths import data_dir

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")


def default_corpus_dir(corpus: str = "english") -> Path:
    """`$PAPERCLUB_DATA/text/<corpus>` (PAPERCLUB_DATA defaults to `<repo root>/data`)."""
    return data_dir() / "text" / corpus


def resolve_dir(out_dir: str | Path | None) -> Path:
    """`out_dir` as a Path; None means the default English corpus."""
    return Path(out_dir) if out_dir is not None else default_corpus_dir()


def read_manifest(out: Path) -> dict[str, Any]:
    """The manifest of the corpus in folder `out`, or CorpusError saying how to build one there."""
    path = out / "manifest.json"
    if not path.exists():
        raise CorpusError(f"no corpus at {out} (missing {path}): run `python -m common.data.text build --out {out}`")
    return json.loads(path.read_text())


def eos_id(out_dir: str | Path | None = None) -> int:
    """Token id of `<|endoftext|>` (document separator and EOS)."""
    return int(read_manifest(resolve_dir(out_dir))["tokenizer"]["eos_id"])
