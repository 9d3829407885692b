"""Stage 3 of a build, and reading its result: flat token shards `shards/<split>_NNN.bin` and `load_split`.

Each split is encoded document by document, each document followed by `<|endoftext|>`, into files of
`shard_tokens` tokens (the last one shorter): uint16 when the vocabulary fits, else uint32, native byte order.
The manifest lists every shard with its token count and sha256. `load_split` checks each shard it opens
against the manifest first (`verify.check_shards`), so a damaged shard fails there, naming the file, and not
later inside a model.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from common.data.text.collect import read_texts, usable_cpus
from common.data.text.errors import CorpusError
from common.data.text.manifest import FORMAT_VERSION, SPLITS, read_manifest, resolve_dir
from common.data.text.tokenizer import EOS_TOKEN, PAD_TOKEN
from common.data.text.verify import check_shards


def load_split(out_dir: str | Path | None, split: str, max_tokens: int | None = None) -> np.ndarray:
    """The tokens of `split` (the first `max_tokens` when given), shape (N,) uint16/uint32, documents each
    followed by EOS.

    Only the shards needed are opened, so a copy of the corpus that carries just the first shards (a GPU node)
    serves `max_tokens` runs. Each is checked first: size, sha256 and every token id < the vocabulary size, or
    CorpusError naming the shard (its sha256 and largest id are cached, so a second load of unchanged files reads
    only the manifest and the cache). One shard: a read-only `np.memmap` (no copy); several: an in-memory
    concatenation.
    """
    out = resolve_dir(out_dir)
    manifest = read_manifest(out)
    if split not in manifest["splits"]:
        raise CorpusError(f"unknown split {split!r} in {out}: expected one of {list(manifest['splits'])}")
    dtype = np.dtype(manifest["dtype"])
    needed, total = [], 0
    for shard in manifest["splits"][split]["shards"]:
        if max_tokens is not None and total >= max_tokens:
            break
        total += shard["tokens"]
        needed.append(shard)
    check_shards(out, manifest, needed)
    arrays = [np.memmap(out / "shards" / s["file"], dtype=dtype, mode="r", shape=(s["tokens"],)) for s in needed]
    if not arrays:
        return np.zeros(0, dtype=dtype)
    tokens = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    return tokens if max_tokens is None else tokens[:max_tokens]


def write_shards(out: Path, collected: dict, trained: dict, params: dict[str, Any]) -> dict[str, Any]:
    """Encode every split of `out/docs` with `out/tokenizer` into `out/shards`; return the manifest (without
    `params`). `collected`, `trained`: the collect and tokenizer stage records; `params`: shard_tokens."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(out / "tokenizer" / "tokenizer.json"))
    dtype = np.dtype(np.uint16 if trained["vocab_size"] <= 2**16 else np.uint32)
    start = time.perf_counter()
    splits = {}
    for split in SPLITS:
        writer = ShardWriter(out / "shards", split, dtype, params["shard_tokens"])
        docs = collected["splits"][split]["docs"]
        for batch in _batched(tqdm(read_texts(out / "docs" / f"{split}.jsonl"), total=docs, desc=f"encode {split}",
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
        "cpus": usable_cpus(),
    }


class ShardWriter:
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


def _batched(items: Iterable[str], size: int) -> Iterator[list[str]]:
    """`items` in lists of `size` (the last one shorter)."""
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
