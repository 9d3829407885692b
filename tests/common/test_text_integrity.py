"""Shard integrity on load: sha256 and max token id checked against the manifest, scans cached per file state."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from common.data.text import CorpusError, digests, load_split, verify_corpus
from common.data.text.digests import SCAN_CACHE
from common.errors import PaperclubError

VOCAB = 512


def _write_corpus(out: Path, splits: dict[str, list[np.ndarray]], vocab_size: int = VOCAB) -> Path:
    """A corpus folder laid out as the build writes it (manifest.json, shards/<split>_NNN.bin, tokenizer.json)
    from token arrays, its shards dated a minute back like those of a corpus built earlier."""
    (out / "shards").mkdir(parents=True)
    (out / "tokenizer").mkdir()
    (out / "tokenizer" / "tokenizer.json").write_text("{}")
    manifest = {"format": 1, "corpus": "synthetic", "dtype": splits["train"][0].dtype.name, "splits": {},
                "tokenizer": {"vocab_size": vocab_size, "eos_id": 0, "sha256": hashlib.sha256(b"{}").hexdigest()}}
    for split, arrays in splits.items():
        shards = []
        for i, tokens in enumerate(arrays):
            name = f"{split}_{i:03d}.bin"
            tokens.tofile(out / "shards" / name)
            shards.append({"file": name, "tokens": len(tokens), "sha256": hashlib.sha256(tokens.tobytes()).hexdigest()})
        manifest["splits"][split] = {"docs": 1, "bytes": 0, "tokens": sum(map(len, arrays)), "shards": shards}
    (out / "manifest.json").write_text(json.dumps(manifest))
    for shard in (out / "shards").iterdir():
        _set_age(shard, seconds=60)
    return out


def _set_age(path: Path, seconds: float) -> None:
    """Set the mtime of `path` to `seconds` ago, leaving its bytes alone."""
    stamp = time.time_ns() - int(seconds * 1e9)
    os.utime(path, ns=(stamp, stamp))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


TRAIN = (np.arange(2000, dtype=np.uint16) * 37) % VOCAB
VAL = (np.arange(300, dtype=np.uint16) * 11) % VOCAB


@pytest.fixture
def corpus(tmp_path) -> Path:
    """Train in two shards of 1000 tokens, val in one of 300, vocab 512, built a minute ago."""
    return _write_corpus(tmp_path / "corpus", {"train": [TRAIN[:1000], TRAIN[1000:]], "val": [VAL]})


@pytest.fixture
def scans(monkeypatch) -> list[str]:
    """The names of the shards whose bytes were read (hashed), in order."""
    read: list[str] = []
    scan_shard = digests.scan_shard

    def counting(path: Path, dtype: np.dtype) -> digests.ShardScan:
        read.append(path.name)
        return scan_shard(path, dtype)

    monkeypatch.setattr(digests, "scan_shard", counting)
    return read


def test_four_overwritten_bytes_fail_the_load_naming_the_shard(corpus):
    assert np.array_equal(load_split(corpus, "train"), TRAIN)  # scans of both shards now cached
    shard = corpus / "shards" / "train_001.bin"
    expected = _sha256(shard)
    with open(shard, "r+b") as f:  # two valid token ids (< VOCAB) over tokens 50 and 51 of the shard
        f.seek(100)
        f.write(np.array([7, 7], dtype=np.uint16).tobytes())
    assert not np.array_equal(np.fromfile(shard, dtype=np.uint16), TRAIN[1000:])
    with pytest.raises(CorpusError) as caught:
        load_split(corpus, "train")
    message = str(caught.value)
    assert message.startswith(f"corrupt file {shard}: expected sha256 {expected} (manifest), found {_sha256(shard)}; ")
    assert "python -m common.data.text build" in message and "\n" not in message
    assert isinstance(caught.value, PaperclubError)


@pytest.mark.parametrize(("dtype", "vocab_size"), [(np.uint16, VOCAB), (np.uint32, 70_000)])
def test_token_id_at_vocab_size_fails(tmp_path, dtype, vocab_size):
    tokens = np.arange(vocab_size - 100, vocab_size, dtype=dtype)
    good = _write_corpus(tmp_path / "good", {"train": [tokens]}, vocab_size)
    assert int(load_split(good, "train").max()) == vocab_size - 1
    tokens[-1] = vocab_size  # the manifest's sha256 matches these bytes: only the id check can catch them
    bad = _write_corpus(tmp_path / "bad", {"train": [tokens]}, vocab_size)
    message = rf"^corrupt file {bad / 'shards' / 'train_000.bin'}: expected token ids < {vocab_size} .*found {vocab_size};"
    with pytest.raises(CorpusError, match=message):
        load_split(bad, "train")
    with pytest.raises(CorpusError, match=message):
        verify_corpus(bad)


def test_second_load_reads_no_shard(corpus, scans):
    first = load_split(corpus, "train")
    assert scans == ["train_000.bin", "train_001.bin"]
    assert (corpus / SCAN_CACHE).exists()
    second = load_split(corpus, "train")
    assert scans == ["train_000.bin", "train_001.bin"]
    assert np.array_equal(first, second) and np.array_equal(second, TRAIN)


def test_touched_shard_is_hashed_again_and_passes(corpus, scans):
    load_split(corpus, "train")
    _set_age(corpus / "shards" / "train_001.bin", seconds=30)  # new mtime, same bytes
    assert np.array_equal(load_split(corpus, "train"), TRAIN)
    assert scans == ["train_000.bin", "train_001.bin", "train_001.bin"]
    load_split(corpus, "train")  # its new scan is cached in turn
    assert scans == ["train_000.bin", "train_001.bin", "train_001.bin"]


def test_shard_written_just_now_is_hashed_on_every_load(corpus, scans):
    os.utime(corpus / "shards" / "val_000.bin")  # a write in this timestamp tick could still go unseen by mtime
    load_split(corpus, "val")
    load_split(corpus, "val")
    assert scans == ["val_000.bin", "val_000.bin"]


def test_copied_corpus_is_hashed_where_it_lands(corpus, scans, tmp_path):
    load_split(corpus, "val")
    copy = shutil.copytree(corpus, tmp_path / "copy")  # mtimes kept, cache file carried along
    load_split(copy, "val")
    assert scans == ["val_000.bin", "val_000.bin"]


def test_prefix_load_checks_only_the_shards_it_opens(corpus, scans):
    (corpus / "shards" / "train_001.bin").unlink()  # a copy that carries only the first shard
    assert np.array_equal(load_split(corpus, "train", max_tokens=10), TRAIN[:10])
    assert scans == ["train_000.bin"]
    with pytest.raises(CorpusError, match=r"missing file .*train_001\.bin; rebuild"):
        load_split(corpus, "train")


def test_verify_reads_every_shard_even_when_cached(corpus, scans):
    load_split(corpus, "train")
    load_split(corpus, "val")
    verify_corpus(corpus)
    assert scans == ["train_000.bin", "train_001.bin", "val_000.bin"] * 2


def test_damaged_or_unwritable_cache_costs_only_a_rehash(corpus, scans, monkeypatch):
    (corpus / SCAN_CACHE).write_text("{not json")
    assert np.array_equal(load_split(corpus, "val"), VAL)
    assert json.loads((corpus / SCAN_CACHE).read_text())["format"] == 1  # rewritten whole

    def refuse(path: Path, text: str) -> None:
        raise PermissionError(13, "Read-only file system", str(path))

    monkeypatch.setattr(digests, "atomic_write_text", refuse)
    (corpus / SCAN_CACHE).unlink()
    assert np.array_equal(load_split(corpus, "val"), VAL)
    assert np.array_equal(load_split(corpus, "val"), VAL)
    assert scans == ["val_000.bin"] * 3 and not (corpus / SCAN_CACHE).exists()
