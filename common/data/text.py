"""Offline text corpora (English prose, Python code) from Debian packages, a byte-level BPE tokenizer, token shards.

One corpus serves both LM packages (`ssd`, `data_constrained`). The build has three resumable stages, each
skipped when its output exists and was made with the same parameters:

1. collect: read the sources (Debian documentation packages, or files/dirs the caller names), clean HTML / roff
   to text, drop tiny and link-only pages, de-duplicate exactly (sha256 of normalised text), cap the total at
   `max_bytes` of cleaned UTF-8 text (documents taken in a seeded hash order, so a capped build is a uniform
   sample of documents), split train/val/test by a seeded hash of the document id -> `docs/<split>.jsonl`.
2. tokenizer: byte-level BPE (HF `tokenizers`) trained on (a capped prefix of) the train split, saved in HF
   format under `tokenizer/` (`transformers.AutoTokenizer.from_pretrained` loads it).
3. shards: each split encoded to flat `shards/<split>_NNN.bin` (uint16 when the vocabulary fits, else uint32):
   documents concatenated, each followed by `<|endoftext|>`; `manifest.json` records sources, licences,
   sizes, sha256 of every shard and of the tokenizer.

Layout under `out_dir` (default `$PAPERCLUB_DATA/text/<corpus>`): `docs/`, `tokenizer/`, `shards/`, `stages/`,
`manifest.json`. CLI: `python -m common.data.text {build,verify,tiny} --help`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import functools
import gzip
import hashlib
import json
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from common.paths import data_dir
from common.results import atomic_write_text

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
DEFAULT_VOCAB_SIZE = 16384
DEFAULT_MAX_BYTES = 64 * 2**20
DEFAULT_TOKENIZER_SAMPLE_BYTES = 24 * 2**20
DEFAULT_SHARD_TOKENS = 2**24
DEFAULT_MIN_DOC_BYTES = 256
MAX_LINK_FRACTION = 0.5
APT_LIST = "tools/apt-packages.txt"


class CorpusError(Exception):
    """A corpus cannot be built, read or verified; the message names the file/package and what was expected."""


@dataclass(frozen=True)
class Source:
    """Where documents come from: a Debian package's files (filtered by regex) or a local file/folder.

    `reader` is how one file becomes text: "html", "man" (roff), "kjv" (the `bible` program) or "text".
    """

    name: str
    reader: str
    package: str | None = None
    include: str = ""
    exclude: str = ""
    licence: str = "unknown"
    path: str | None = None


_SPHINX_JUNK = r"/(genindex[^/]*|search|py-modindex|modindex)\.html$|/_static/|/_sources/|/_images/|/_modules/"


def _html_docs(name: str, package: str, root: str, licence: str) -> Source:
    """A package's HTML pages under `root` (Sphinx index/search/source pages excluded)."""
    return Source(name, "html", package, rf"^{re.escape(root)}/.+\.html$", _SPHINX_JUNK, licence)


_MAN_PAGES = r"^/usr/share/man/man\d/.+\.\d\w*\.gz$"
_MAN_LICENCE = "GPL-2+, BSD and other free licences"
ENGLISH_SOURCES: tuple[Source, ...] = (
    _html_docs("linux-doc", "linux-doc-6.1", "/usr/share/doc/linux-doc-6.1/html", "GPL-2"),
    _html_docs("python-doc", "python3.11-doc", "/usr/share/doc/python3.11/html", "PSF-2.0"),
    _html_docs("postgresql-doc", "postgresql-doc-15", "/usr/share/doc/postgresql-doc-15/html", "PostgreSQL"),
    _html_docs("django-doc", "python-django-doc", "/usr/share/doc/python-django-doc/html", "BSD-3-Clause"),
    _html_docs("git-doc", "git-doc", "/usr/share/doc/git-doc", "GPL-2"),
    _html_docs("debian-handbook", "debian-handbook", "/usr/share/doc/debian-handbook/html/en-US",
               "GPL-2.0+ or CC-BY-SA-3.0"),
    Source("debian-reference", "html", "debian-reference-en", r"^/usr/share/debian-reference/.+\.en\.html$", "",
           "GPL-2+"),
    _html_docs("pandas-doc", "python-pandas-doc", "/usr/share/doc/python-pandas-doc/html", "BSD-3-Clause"),
    _html_docs("scipy-doc", "python-scipy-doc", "/usr/share/doc/python-scipy-doc/html", "BSD-3-Clause"),
    _html_docs("sklearn-doc", "python-sklearn-doc", "/usr/share/doc/python-sklearn-doc/html", "BSD-3-Clause"),
    _html_docs("sqlalchemy-doc", "python-sqlalchemy-doc", "/usr/share/doc/python-sqlalchemy-doc/html", "MIT"),
    _html_docs("sqlite-doc", "sqlite3-doc", "/usr/share/doc/sqlite3", "public domain"),
    _html_docs("nodejs-doc", "nodejs-doc", "/usr/share/doc/nodejs/api", "MIT"),
    _html_docs("sphinx-doc", "sphinx-doc", "/usr/share/doc/sphinx-doc/html", "BSD-2-Clause"),
    _html_docs("flask-doc", "python-flask-doc", "/usr/share/doc/python-flask-doc/html", "BSD-3-Clause"),
    _html_docs("scrapy-doc", "python-scrapy-doc", "/usr/share/doc/python-scrapy-doc/html", "BSD-3-Clause"),
    Source("vim-doc", "text", "vim-runtime", r"^/usr/share/vim/vim90/doc/.+\.txt(\.gz)?$", "", "Vim"),
    Source("manpages", "man", "manpages", _MAN_PAGES, "", _MAN_LICENCE),
    Source("manpages-dev", "man", "manpages-dev", _MAN_PAGES, "", _MAN_LICENCE),
    Source("kjv-bible", "kjv", "bible-kjv-text", licence="public domain"),
)
_STDLIB_PY = r"^/usr/lib/python3\.11/.+\.py$"
CODE_SOURCES: tuple[Source, ...] = tuple(
    Source(f"python-stdlib:{package}", "text", package, _STDLIB_PY, r"-packages/", "PSF-2.0")
    for package in ("libpython3.11-minimal", "libpython3.11-stdlib", "python3-distutils", "python3-lib2to3")
)
CORPORA = {"english": ENGLISH_SOURCES, "code": CODE_SOURCES}


# ---------------------------------------------------------------------------------------------- public API


def default_corpus_dir(corpus: str = "english") -> Path:
    """`$PAPERCLUB_DATA/text/<corpus>` (PAPERCLUB_DATA defaults to `<repo root>/data`)."""
    return data_dir() / "text" / corpus


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
    specs = _local_sources(sources) if sources is not None else list(CORPORA[corpus])
    collect_params = {
        "format": FORMAT_VERSION, "corpus": corpus, "sources": [dataclasses.asdict(s) for s in specs],
        "max_bytes": max_bytes or None, "seed": seed, "min_doc_bytes": min_doc_bytes, "eval_fraction": eval_fraction,
    }
    collected = _run_stage(out, "collect", collect_params, lambda: _collect(out, specs, collect_params, workers))
    if tokenizer_from is not None:
        source_tok = Path(tokenizer_from) / "tokenizer"
        _check_file(source_tok / "tokenizer.json", None, None)
        tok_params = {"from": str(source_tok.resolve()), "sha256": _sha256_file(source_tok / "tokenizer.json")}
        trained = _run_stage(out, "tokenizer", tok_params, lambda: _copy_tokenizer(source_tok, out))
    else:
        tok_params = {"vocab_size": vocab_size, "sample_bytes": tokenizer_sample_bytes, "collect": _digest(collected)}
        trained = _run_stage(out, "tokenizer", tok_params, lambda: _train_tokenizer(out, tok_params))
    shard_params = {"shard_tokens": shard_tokens, "tokenizer_sha256": trained["sha256"], "collect": _digest(collected)}
    manifest_path = out / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("params", {}).get("shards") == shard_params:
            return manifest
    manifest = _write_shards(out, collected, trained, shard_params)
    manifest["params"] = {"collect": collect_params, "tokenizer": tok_params, "shards": shard_params}
    atomic_write_text(manifest_path, json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def build_tiny_corpus(out_dir: str | Path, seed: int = 0) -> dict[str, Any]:
    """A ~200 KB deterministic English corpus (template grammar, vocab 512), built in seconds, for tests.

    Text and tokenizer are identical across machines for a given seed (only `random.Random` choices are used).
    """
    out = Path(out_dir)
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(_tiny_documents(seed)):
        path = raw / f"doc_{i:04d}.txt"
        if not path.exists() or path.read_text() != text:
            atomic_write_text(path, text)
    return build_corpus(out, corpus="tiny", max_bytes=None, vocab_size=512, seed=seed, sources=[raw],
                        tokenizer_sample_bytes=2**20, shard_tokens=2**15, min_doc_bytes=64,
                        eval_fraction=0.05, workers=1)


def verify_corpus(out_dir: str | Path | None = None) -> dict[str, Any]:
    """Recompute size and sha256 of every shard and of tokenizer.json; return the manifest or raise CorpusError."""
    out = Path(out_dir) if out_dir is not None else default_corpus_dir()
    manifest = _read_manifest(out)
    itemsize = np.dtype(manifest["dtype"]).itemsize
    tok_file = out / "tokenizer" / "tokenizer.json"
    _check_file(tok_file, None, manifest["tokenizer"]["sha256"])
    for split, info in manifest["splits"].items():
        for shard in info["shards"]:
            _check_file(out / "shards" / shard["file"], shard["tokens"] * itemsize, shard["sha256"])
        total = sum(s["tokens"] for s in info["shards"])
        if total != info["tokens"]:
            raise CorpusError(f"{out / 'manifest.json'}: split {split!r} lists {total} shard tokens, expected {info['tokens']}")
    return manifest


def load_tokenizer(out_dir: str | Path | None = None):
    """The corpus tokenizer as a `transformers.PreTrainedTokenizerFast` (eos `<|endoftext|>`, pad `<|pad|>`)."""
    from transformers import PreTrainedTokenizerFast

    path = (Path(out_dir) if out_dir is not None else default_corpus_dir()) / "tokenizer"
    if not (path / "tokenizer.json").exists():
        raise CorpusError(f"no tokenizer at {path}: run `python -m common.data.text build --out {path.parent}`")
    return PreTrainedTokenizerFast.from_pretrained(str(path))


def load_split(out_dir: str | Path | None, split: str, max_tokens: int | None = None) -> np.ndarray:
    """The tokens of `split` (the first `max_tokens` when given), shape (N,) uint16/uint32, documents each
    followed by EOS.

    Only the shards needed are opened, so a copy of the corpus that carries just the first shards (a GPU node)
    serves `max_tokens` runs. One shard: a read-only `np.memmap` (no copy); several: an in-memory concatenation.
    """
    out = Path(out_dir) if out_dir is not None else default_corpus_dir()
    manifest = _read_manifest(out)
    if split not in manifest["splits"]:
        raise CorpusError(f"unknown split {split!r} in {out}: expected one of {list(manifest['splits'])}")
    dtype = np.dtype(manifest["dtype"])
    arrays, total = [], 0
    for shard in manifest["splits"][split]["shards"]:
        if max_tokens is not None and total >= max_tokens:
            break
        total += shard["tokens"]
        path = out / "shards" / shard["file"]
        _check_file(path, shard["tokens"] * dtype.itemsize, None)
        arrays.append(np.memmap(path, dtype=dtype, mode="r", shape=(shard["tokens"],)))
    if not arrays:
        return np.zeros(0, dtype=dtype)
    tokens = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    return tokens if max_tokens is None else tokens[:max_tokens]


def eos_id(out_dir: str | Path | None = None) -> int:
    """Token id of `<|endoftext|>` (document separator and EOS)."""
    out = Path(out_dir) if out_dir is not None else default_corpus_dir()
    return int(_read_manifest(out)["tokenizer"]["eos_id"])


# ------------------------------------------------------------------------------------------------- stages


def _run_stage(out: Path, name: str, params: dict[str, Any], run) -> dict[str, Any]:
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


def _collect(out: Path, specs: list[Source], params: dict[str, Any], workers: int | None) -> dict[str, Any]:
    """Stage 1: clean, de-duplicate, cap and split documents into `docs/<split>.jsonl`."""
    items = [item for spec in specs for item in _enumerate(spec)]
    seed, max_bytes = params["seed"], params["max_bytes"]
    items.sort(key=lambda item: _unit_hash("order", seed, item[1]))
    stats = {s.name: {**_source_info(s), "docs": 0, "bytes": 0, "dropped": 0, "duplicates": 0} for s in specs}
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


def _train_tokenizer(out: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Stage 2: byte-level BPE on the first `sample_bytes` of the train split, saved in HF format."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=params["vocab_size"], min_frequency=2, special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    texts = _capped(_iter_texts(out / "docs" / "train.jsonl"), params["sample_bytes"])
    tokenizer.train_from_iterator(tqdm(texts, desc="tokenizer", unit="doc"), trainer=trainer)
    tok_dir = out / "tokenizer"
    tok_dir.mkdir(parents=True, exist_ok=True)
    tmp = tok_dir / "tokenizer.json.tmp"
    tokenizer.save(str(tmp))
    os.replace(tmp, tok_dir / "tokenizer.json")
    return _save_tokenizer_config(tokenizer, tok_dir)


def _copy_tokenizer(source_dir: Path, out: Path) -> dict[str, Any]:
    """Stage 2 alternative: reuse another corpus's tokenizer.json (configs are rewritten identically)."""
    from tokenizers import Tokenizer

    tok_dir = out / "tokenizer"
    tok_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source_dir / "tokenizer.json", tok_dir / "tokenizer.json.tmp")
    os.replace(tok_dir / "tokenizer.json.tmp", tok_dir / "tokenizer.json")
    return _save_tokenizer_config(Tokenizer.from_file(str(tok_dir / "tokenizer.json")), tok_dir)


def _save_tokenizer_config(tokenizer, tok_dir: Path) -> dict[str, Any]:
    """Write the HF config files beside tokenizer.json; return the stage record."""
    if tokenizer.token_to_id(EOS_TOKEN) is None or tokenizer.token_to_id(PAD_TOKEN) is None:
        raise CorpusError(f"{tok_dir / 'tokenizer.json'} lacks the special tokens {EOS_TOKEN} and {PAD_TOKEN}")
    special = {"bos_token": EOS_TOKEN, "eos_token": EOS_TOKEN, "pad_token": PAD_TOKEN}
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 2**20,
              "clean_up_tokenization_spaces": False, "add_prefix_space": False, **special}
    atomic_write_text(tok_dir / "special_tokens_map.json", json.dumps(special, indent=1))
    atomic_write_text(tok_dir / "tokenizer_config.json", json.dumps(config, indent=1, sort_keys=True))
    return {
        "vocab_size": tokenizer.get_vocab_size(), "sha256": _sha256_file(tok_dir / "tokenizer.json"),
        "eos_id": tokenizer.token_to_id(EOS_TOKEN), "pad_id": tokenizer.token_to_id(PAD_TOKEN),
        "files": ["tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json", "tokenizer/special_tokens_map.json"],
    }


def _write_shards(out: Path, collected: dict, trained: dict, params: dict[str, Any]) -> dict[str, Any]:
    """Stage 3: encode every split into `shards/<split>_NNN.bin`; return the manifest (without params)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(out / "tokenizer" / "tokenizer.json"))
    dtype = np.dtype(np.uint16 if trained["vocab_size"] <= 2**16 else np.uint32)
    start = time.perf_counter()
    splits = {}
    for split in SPLITS:
        writer = _ShardWriter(out / "shards", split, dtype, params["shard_tokens"])
        docs = collected["splits"][split]["docs"]
        for batch in _batched(tqdm(_iter_texts(out / "docs" / f"{split}.jsonl"), total=docs, desc=f"encode {split}",
                                   unit="doc"), 256):
            for encoding in tokenizer.encode_batch(batch, add_special_tokens=False):
                writer.write(np.asarray(encoding.ids + [trained["eos_id"]], dtype=dtype))
        shards = writer.close()
        splits[split] = {**collected["splits"][split], "tokens": sum(s["tokens"] for s in shards), "shards": shards}
    return {
        "format": FORMAT_VERSION, "corpus": collected["params"]["corpus"],
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "sources": collected["sources"], "dtype": dtype.name, "seed": collected["params"]["seed"],
        "tokenizer": {"dir": "tokenizer", "vocab_size": trained["vocab_size"], "sha256": trained["sha256"],
                      "eos_token": EOS_TOKEN, "eos_id": trained["eos_id"], "pad_token": PAD_TOKEN,
                      "pad_id": trained["pad_id"]},
        "splits": splits,
        "seconds": {"collect": collected["seconds"], "tokenizer": trained["seconds"],
                    "shards": round(time.perf_counter() - start, 2)},
        "cpus": _cpu_count(),
    }


class _ShardWriter:
    """Buffers tokens and writes `<split>_NNN.bin` files of `shard_tokens` tokens each (the last one shorter)."""

    def __init__(self, folder: Path, split: str, dtype: np.dtype, shard_tokens: int):
        self.folder, self.split, self.dtype = folder, split, dtype
        self.buffer = np.empty(shard_tokens, dtype=dtype)
        self.filled = 0
        self.shards: list[dict[str, Any]] = []
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(f"{split}_*.bin"):
            stale.unlink()

    def write(self, tokens: np.ndarray) -> None:
        """Append (n,) tokens, flushing full shards."""
        while len(tokens):
            take = min(len(tokens), len(self.buffer) - self.filled)
            self.buffer[self.filled:self.filled + take] = tokens[:take]
            self.filled += take
            tokens = tokens[take:]
            if self.filled == len(self.buffer):
                self._flush()

    def close(self) -> list[dict[str, Any]]:
        """Flush the last partial shard; return [{file, tokens, sha256}]."""
        if self.filled:
            self._flush()
        return self.shards

    def _flush(self) -> None:
        data = self.buffer[:self.filled].tobytes()
        name = f"{self.split}_{len(self.shards):03d}.bin"
        tmp = self.folder / f"{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.folder / name)
        self.shards.append({"file": name, "tokens": self.filled, "sha256": hashlib.sha256(data).hexdigest()})
        self.filled = 0


# ------------------------------------------------------------------------------------------ sources, reading


def _local_sources(paths: list[Path]) -> list[Source]:
    """Caller-given files/folders as Sources (licence "user-provided")."""
    specs = []
    for path in map(Path, paths):
        if not path.exists():
            raise CorpusError(f"source {path} does not exist")
        specs.append(Source(path.name, "auto", licence="user-provided", path=str(path.resolve())))
    return specs


_LOCAL_SUFFIXES = {".txt", ".md", ".rst", ".py", ".html", ".htm"}


def _enumerate(spec: Source) -> list[tuple[Source, str, str]]:
    """(source, doc id, locator) for every candidate document of `spec`, in a stable order."""
    if spec.path is not None:
        root = Path(spec.path)
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        files = [p for p in files if p.suffix in _LOCAL_SUFFIXES or (p.suffix == ".gz" and Path(p.stem).suffix in _LOCAL_SUFFIXES)]
        base = root if root.is_dir() else root.parent
        return [(spec, f"{spec.name}/{p.relative_to(base).as_posix()}", str(p)) for p in files]
    if spec.reader == "kjv":
        return [(spec, f"{spec.name}/{title}", title) for title in _kjv_chapters()]
    include, exclude = re.compile(spec.include), re.compile(spec.exclude) if spec.exclude else None
    files = [f for f in _dpkg_files(spec.package) if include.search(f) and not (exclude and exclude.search(f))]
    files = [f for f in files if os.path.isfile(f) and not os.path.islink(f)]
    return [(spec, f"{spec.name}{f}", f) for f in files]


def _dpkg_files(package: str) -> list[str]:
    """Paths installed by a Debian package (from dpkg's file list), or CorpusError naming the package."""
    info = Path("/var/lib/dpkg/info")
    lists = [info / f"{package}.list", *sorted(info.glob(f"{package}:*.list"))]
    found = [p for p in lists if p.exists()]
    if not found:
        raise CorpusError(_missing_packages(package))
    return sorted({line for p in found for line in p.read_text().splitlines() if line})


def _missing_packages(*packages: str) -> str:
    return (f"Debian package(s) {', '.join(packages)} not installed: run `apt-get install -y {' '.join(packages)}` "
            f"(all corpus packages are listed in {APT_LIST}), or pass --source DIR")


def _source_info(spec: Source) -> dict[str, Any]:
    """Name, package, installed version and licence of a source (for the manifest)."""
    version = None
    if spec.package:
        run = subprocess.run(["dpkg-query", "-W", "-f=${Version}", spec.package], capture_output=True, text=True)
        version = run.stdout.strip() or None
    copyright_file = f"/usr/share/doc/{spec.package}/copyright" if spec.package else None
    return {"name": spec.name, "package": spec.package, "version": version, "licence": spec.licence,
            "copyright_file": copyright_file, "path": spec.path}


def _map_docs(items: list[tuple[Source, str, str]], min_doc_bytes: int, workers: int | None) -> Iterator[str | None]:
    """Cleaned text (or None when dropped) for each item, in order; uses a process pool when workers > 1."""
    workers = workers or _cpu_count()
    read = functools.partial(_read_doc, min_doc_bytes=min_doc_bytes)
    if workers <= 1 or len(items) < 2 * workers:
        yield from map(read, items)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(read, items, chunksize=8)


def _read_doc(item: tuple[Source, str, str], min_doc_bytes: int) -> str | None:
    """Read and clean one document; None when tiny, link-only or not UTF-8."""
    spec, _, locator = item
    reader = spec.reader
    if reader == "kjv":
        raw = _kjv_chapters()[locator]
    else:
        try:
            raw = _read_bytes(locator).decode("utf-8")
        except UnicodeDecodeError:
            return None
    if reader == "auto":
        name = locator.removesuffix(".gz")
        reader = "html" if name.endswith((".html", ".htm")) else "text"
    if reader == "html":
        text, link_chars = html_to_text(raw)
        if link_chars > MAX_LINK_FRACTION * max(len(text), 1):
            return None
    elif reader == "man":
        text = roff_to_text(raw)
    else:
        text = raw
    text = normalise(text)
    return text if len(text.encode()) >= min_doc_bytes else None


def _read_bytes(path: str) -> bytes:
    with (gzip.open(path) if path.endswith(".gz") else open(path, "rb")) as f:
        return f.read()


@functools.cache
def _kjv_chapters() -> dict[str, str]:
    """King James Bible as {"Genesis 1": text, ...}: 1189 chapters, one verse per line (via `bible`)."""
    if shutil.which("bible") is None or not Path("/usr/lib/bible.data").exists():
        raise CorpusError(_missing_packages("bible-kjv", "bible-kjv-text"))
    out = subprocess.run(["bible", "gen1:1-rev22:21"], capture_output=True, text=True, check=True,
                         stdin=subprocess.DEVNULL).stdout
    parts = re.split(r"^(\S[^\n]* \d+)\n\n", out, flags=re.M)
    chapters = {}
    for title, body in zip(parts[1::2], parts[2::2], strict=True):
        verses = re.split(r"^\s+\d+ ", body, flags=re.M)
        chapters[title] = "\n".join(" ".join(v.split()) for v in verses if v.strip())
    return chapters


# -------------------------------------------------------------------------------------------------- cleaning


def normalise(text: str) -> str:
    """Unix newlines, no trailing spaces, at most one blank line in a row, no leading/trailing blank lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


_SKIP_TAGS = {"script", "style", "nav", "head", "header", "footer", "noscript", "form", "button", "svg", "template"}
_VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_BLOCK_TAGS = {"p", "div", "section", "article", "main", "aside", "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol",
               "dl", "dt", "dd", "tr", "table", "pre", "blockquote", "figure", "figcaption", "caption", "body", "td", "th"}
_SKIP_CLASS = re.compile(r"sphinxsidebar|related|footer|headerlink|wy-nav-side|rst-footer|breadcrumb|navheader|"
                         r"navfooter|\btoc\b|switcher|mobile-nav|\bmenu\b|searchbox|docnav|banner|nosearch|"
                         r"prev-next|left-prev|right-next")
_SKIP_ROLE = {"navigation", "search", "contentinfo", "banner"}


class _HTMLText(HTMLParser):
    """Collects visible body text; drops navigation, sidebars, scripts and styles; keeps <pre> layout."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.stack: list[tuple[str, bool]] = []  # (tag, starts a skipped region)
        self.skipping = 0
        self.pre = 0
        self.link = 0
        self.link_chars = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID_TAGS:
            if tag in ("br", "hr") and not self.skipping:
                self.parts.append("\n")
            return
        attr = dict(attrs)
        skip = tag in _SKIP_TAGS or attr.get("role") in _SKIP_ROLE or bool(
            _SKIP_CLASS.search(f"{attr.get('class') or ''} {attr.get('id') or ''}"))
        self.stack.append((tag, skip))
        self.skipping += skip
        self.pre += tag == "pre"
        self.link += tag == "a"
        if tag in _BLOCK_TAGS:
            self.parts.append("\n\n" if tag in ("p", "pre", "h1", "h2", "h3", "h4", "h5", "h6") else "\n")

    def handle_endtag(self, tag: str) -> None:
        if not any(t == tag for t, _ in self.stack):
            return
        while self.stack:
            top, skip = self.stack.pop()
            self.skipping -= skip
            self.pre -= top == "pre"
            self.link -= top == "a"
            if top in _BLOCK_TAGS:
                self.parts.append("\n")
            if top == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        if not self.pre:
            data = re.sub(r"\s+", " ", data)
            if not self.parts or self.parts[-1].endswith("\n"):
                data = data.lstrip()
        self.parts.append(data)
        if self.link:
            self.link_chars += len(data.strip())


def html_to_text(html: str) -> tuple[str, int]:
    """Visible text of an HTML page and how many of its characters are link text (for index-page filtering)."""
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts), parser.link_chars


_ROFF_TEXT_MACROS = {"SH", "SS", "B", "I", "SM", "SB", "BR", "RB", "IR", "RI", "BI", "IB", "TP", "IP", "UR", "MT", "TQ"}
_ROFF_ALT_MACROS = {"BR", "RB", "IR", "RI", "BI", "IB"}
_ROFF_BREAK_MACROS = {"SH", "SS", "PP", "LP", "P", "TP", "IP", "sp", "TQ", "RS", "RE", "EX", "EE", "nf", "fi"}
_ROFF_GLYPHS = {"em": "\u2014", "en": "\u2013", "aq": "'", "dq": '"', "bu": "\u2022", "co": "\u00a9", "lq": '"',
                "rq": '"', "oq": "'", "cq": "'", "ti": "~", "ha": "^", "rs": "\\", "mi": "-", "pl": "+", "mu": "\u00d7",
                "<=": "<=", ">=": ">=", "->": "->", "<-": "<-", "hy": "-", "ga": "`", "sl": "/", "bv": "|"}
_ROFF_ESCAPE = re.compile(r"\\(?:f(?:\[[^\]]*\]|\(..|.)|\((..)|\[([^\]]*)\]|\*(?:\[[^\]]*\]|\(..|.)|s[-+]?\d|"
                          r"[-e&|^c~ 0:%/,!]|.)")


def roff_to_text(roff: str) -> str:
    """Readable text from a man page (man(7) macros): filled lines joined into paragraphs, no-fill blocks
    (.nf/.EX) kept line by line, headings and font macros kept as words, escapes mapped to characters."""
    lines: list[str] = []
    fill, join = True, False  # join: the next filled text line continues the previous one
    for line in roff.split("\n"):
        if line.startswith((".\\\"", "'\\\"", ".so ")):
            continue
        if line.startswith((".", "'")):
            macro, _, rest = line[1:].strip().partition(" ")
            fill = {"nf": False, "EX": False, "fi": True, "EE": True}.get(macro, fill)
            if macro in _ROFF_BREAK_MACROS:
                lines.append("")
                join = False
            if macro not in _ROFF_TEXT_MACROS or not rest:
                continue
            args = [a.strip('"') for a in re.findall(r'"[^"]*"|\S+', rest)]
            line = "".join(args) if macro in _ROFF_ALT_MACROS else " ".join(args)
            if macro in ("SH", "SS"):
                lines.append(_ROFF_ESCAPE.sub(_roff_escape, line))
                lines.append("")
                continue
        text = _ROFF_ESCAPE.sub(_roff_escape, line)
        if fill and join and text.strip():
            lines[-1] = f"{lines[-1]} {text.strip()}"
        else:
            lines.append(text)
        join = fill and bool(text.strip())
    return "\n".join(lines)


def _roff_escape(match: re.Match) -> str:
    token = match.group(0)
    glyph = match.group(1) or match.group(2)
    if glyph is not None:
        return _ROFF_GLYPHS.get(glyph, "")
    if token.startswith("\\*"):
        return _ROFF_GLYPHS.get(token[2:].strip("[]("), "")
    return {"\\-": "-", "\\e": "\\", "\\ ": " ", "\\~": " ", "\\0": " "}.get(token, "")


# --------------------------------------------------------------------------------------------- tiny corpus


_TINY_WORDS = {
    "subject": ["the engineer", "a student", "the old librarian", "my neighbour", "the small robot", "a careful reader",
                "the team", "our teacher", "the baker", "a tired traveller", "the young painter", "the committee"],
    "verb": ["reads", "writes", "finds", "builds", "studies", "repairs", "describes", "opens", "carries", "measures",
             "paints", "explains"],
    "object": ["a long letter", "the broken clock", "an old map", "the new bridge", "a simple model", "the garden",
               "a short story", "the red door", "a heavy box", "the quiet river", "a clear answer", "the last page"],
    "adverb": ["slowly", "quietly", "every morning", "with great care", "before dinner", "after the rain", "again",
               "at night", "without a word", "in the spring"],
    "reason": ["because it was late", "because the light was good", "since nobody else would", "so that we could rest",
               "while the others waited", "although it was raining", "when the bell rang", "as the sun went down"],
    "topic": ["rivers", "clocks", "gardens", "bridges", "letters", "maps", "machines", "songs", "islands", "stars"],
}


def _tiny_documents(seed: int, n_docs: int = 320) -> list[str]:
    """Deterministic short English documents (~600 bytes each) from a small template grammar."""
    rng = random.Random(seed)
    words = _TINY_WORDS
    docs = []
    for i in range(n_docs):
        topic = rng.choice(words["topic"])
        sentences = [f"Chapter {i + 1}: a note about {topic}."]
        for _ in range(rng.randint(5, 9)):
            s = f"{rng.choice(words['subject'])} {rng.choice(words['verb'])} {rng.choice(words['object'])}"
            if rng.random() < 0.5:
                s += f" {rng.choice(words['adverb'])}"
            if rng.random() < 0.4:
                s += f" {rng.choice(words['reason'])}"
            sentences.append(s[0].upper() + s[1:] + ".")
        sentences.append(f"That is all we know about {topic} today.")
        docs.append(" ".join(sentences) + "\n")
    return docs


# ------------------------------------------------------------------------------------------------- helpers


def _split_of(doc_id: str, seed: int, eval_fraction: float) -> str:
    """"train", "val" or "test" from a seeded hash of the document id (stable whatever else is in the corpus)."""
    u = _unit_hash("split", seed, doc_id)
    return "val" if u < eval_fraction else "test" if u < 2 * eval_fraction else "train"


def _unit_hash(purpose: str, seed: int, key: str) -> float:
    """A uniform number in [0, 1) from sha256(purpose:seed:key)."""
    digest = hashlib.sha256(f"{purpose}:{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _iter_texts(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)["text"]


def _capped(texts: Iterable[str], max_bytes: int) -> Iterator[str]:
    total = 0
    for text in texts:
        if total >= max_bytes:
            return
        total += len(text.encode())
        yield text


def _batched(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _read_manifest(out: Path) -> dict[str, Any]:
    path = out / "manifest.json"
    if not path.exists():
        raise CorpusError(f"no corpus at {out} (missing {path}): run `python -m common.data.text build --out {out}`")
    return json.loads(path.read_text())


def _check_file(path: Path, expected_bytes: int | None, expected_sha256: str | None) -> None:
    """Raise CorpusError if `path` is missing, has the wrong size, or the wrong sha256."""
    if not path.exists():
        raise CorpusError(f"missing file {path}: rebuild with `python -m common.data.text build --out {path.parent.parent}`")
    size = path.stat().st_size
    if expected_bytes is not None and size != expected_bytes:
        raise CorpusError(f"truncated or corrupt file {path}: expected {expected_bytes} bytes, found {size}")
    if expected_sha256 is not None:
        found = _sha256_file(path)
        if found != expected_sha256:
            raise CorpusError(f"corrupt file {path}: expected sha256 {expected_sha256}, found {found}")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def _digest(record: dict[str, Any]) -> str:
    """sha256 of a stage record's params and results (excluding its timing), chaining stages together."""
    stable = {k: v for k, v in record.items() if k != "seconds"}
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _parse_bytes(value: str) -> int:
    """"64M" -> 67108864; also K, G suffixes (binary) and plain integers; 0 means no cap."""
    match = re.fullmatch(r"(\d+)([KMG]?)i?B?", value.strip(), flags=re.I)
    if not match:
        raise argparse.ArgumentTypeError(f"expected a size like 64M or 1000000, got {value!r}")
    return int(match.group(1)) * 1024 ** " KMG".index(match.group(2).upper() or " ")


# ----------------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """`build`, `verify` or `tiny`; returns the exit code (1 with a one-line message on CorpusError)."""
    parser = argparse.ArgumentParser(prog="python -m common.data.text", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build or resume a corpus")
    build.add_argument("--corpus", default="english", choices=sorted(CORPORA))
    build.add_argument("--out", type=Path, default=None, help="default: $PAPERCLUB_DATA/text/<corpus>")
    build.add_argument("--max-bytes", type=_parse_bytes, default=DEFAULT_MAX_BYTES,
                       help=f"cap on cleaned text, e.g. 64M; 0 = all (default {DEFAULT_MAX_BYTES // 2**20}M)")
    build.add_argument("--vocab-size", type=int, default=DEFAULT_VOCAB_SIZE)
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--tokenizer-sample-bytes", type=_parse_bytes, default=DEFAULT_TOKENIZER_SAMPLE_BYTES)
    build.add_argument("--shard-tokens", type=int, default=DEFAULT_SHARD_TOKENS)
    build.add_argument("--source", type=Path, action="append", default=None,
                       help="local file/folder to use instead of the Debian packages (repeatable)")
    build.add_argument("--eval-fraction", type=float, default=0.01, help="share of documents in each of val, test")
    build.add_argument("--tokenizer-from", type=Path, default=None,
                       help="reuse the tokenizer of this corpus dir (e.g. data/text/english) instead of training one")
    build.add_argument("--workers", type=int, default=None)
    verify = sub.add_parser("verify", help="recompute sizes and sha256 of every shard")
    verify.add_argument("--corpus", default="english")
    verify.add_argument("--out", type=Path, default=None)
    tiny = sub.add_parser("tiny", help="build the tiny deterministic test corpus")
    tiny.add_argument("--out", type=Path, required=True)
    tiny.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            manifest = build_corpus(args.out, args.corpus, args.max_bytes, args.vocab_size, args.seed, args.source,
                                    tokenizer_sample_bytes=args.tokenizer_sample_bytes,
                                    shard_tokens=args.shard_tokens, eval_fraction=args.eval_fraction,
                                    workers=args.workers, tokenizer_from=args.tokenizer_from)
        elif args.command == "verify":
            manifest = verify_corpus(args.out or default_corpus_dir(args.corpus))
        else:
            manifest = build_tiny_corpus(args.out, args.seed)
    except CorpusError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(_summary(manifest))
    return 0


def _summary(manifest: dict[str, Any]) -> str:
    """One line per split: docs, MB of text, tokens, shards."""
    lines = [f"corpus {manifest['corpus']}: vocab {manifest['tokenizer']['vocab_size']}, dtype {manifest['dtype']}"]
    for split in SPLITS:
        info = manifest["splits"][split]
        lines.append(f"  {split:5s} {info['docs']:7d} docs {info['bytes'] / 1e6:9.1f} MB {info['tokens']:12d} tokens "
                     f"{len(info['shards'])} shards")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
