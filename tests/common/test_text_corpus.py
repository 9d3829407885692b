"""The offline text corpus: deterministic builds, document-level splits, tokenizer round trip, shard verification."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.data import text
from common.data.text import (
    CorpusError,
    build_corpus,
    build_tiny_corpus,
    eos_id,
    load_split,
    load_tokenizer,
    verify_corpus,
)
from common.data.text.__main__ import main
from common.data.text.tiny import tiny_documents

VOCAB = 320


@pytest.fixture(scope="module")
def source_dir(tmp_path_factory) -> Path:
    """60 short English documents, one HTML page with navigation, one exact duplicate, one tiny file."""
    root = tmp_path_factory.mktemp("src")
    for i, doc in enumerate(tiny_documents(seed=1, n_docs=60)):
        (root / f"doc_{i:02d}.txt").write_text(doc)
    (root / "dup.txt").write_text((root / "doc_00.txt").read_text())
    (root / "tiny.txt").write_text("too short")
    page = ("<html><head><title>T</title><script>var x = 1;</script></head><body>"
            "<div class='sphinxsidebar'>Navigation junk</div><h1>Gardens</h1>"
            f"<p>{'The gardener waters the roses every morning. ' * 8}</p><pre>  x = 1\n  y = 2</pre></body></html>")
    (root / "sub").mkdir()
    with gzip.open(root / "sub" / "page.html.gz", "wt") as f:
        f.write(page)
    return root


def _build(out: Path, source_dir: Path, workers: int) -> dict:
    return build_corpus(out, corpus="test", max_bytes=None, vocab_size=VOCAB, seed=3, sources=[source_dir],
                        shard_tokens=4096, min_doc_bytes=64, eval_fraction=0.1, workers=workers)


@pytest.fixture(scope="module")
def built(tmp_path_factory, source_dir) -> tuple[Path, Path]:
    """The same corpus built twice: with a 2-process pool and in-process."""
    pooled, serial = tmp_path_factory.mktemp("pooled"), tmp_path_factory.mktemp("serial")
    _build(pooled, source_dir, workers=2)
    _build(serial, source_dir, workers=1)
    return pooled, serial


def _shard_hashes(out: Path) -> dict[str, str]:
    manifest = json.loads((out / "manifest.json").read_text())
    return {s["file"]: s["sha256"] for info in manifest["splits"].values() for s in info["shards"]}


def test_build_is_deterministic(built):
    pooled, serial = built
    assert _shard_hashes(pooled) == _shard_hashes(serial)
    assert len(_shard_hashes(pooled)) >= 4  # 4096-token shards: train spans several
    tok = [(out / "tokenizer" / "tokenizer.json").read_bytes() for out in built]
    assert tok[0] == tok[1]


def test_manifest_counts_match_shards_and_sources(built):
    out = built[0]
    manifest = verify_corpus(out)
    assert manifest["dtype"] == "uint16" and manifest["tokenizer"]["vocab_size"] == VOCAB
    (source,) = manifest["sources"]
    assert source["docs"] == 61 and source["duplicates"] == 1 and source["dropped"] == 1
    assert sum(info["docs"] for info in manifest["splits"].values()) == 61
    for split, info in manifest["splits"].items():
        tokens = load_split(out, split)
        assert tokens.dtype == np.uint16 and len(tokens) == info["tokens"]
        assert int((tokens == eos_id(out)).sum()) == info["docs"]  # one EOS after each document


def _docs(out: Path, split: str) -> dict[str, str]:
    """{doc id: cleaned text} of one split's docs/<split>.jsonl."""
    lines = (out / "docs" / f"{split}.jsonl").read_text().splitlines()
    return {d["id"]: d["text"] for d in map(json.loads, lines)}


def test_split_is_by_document(built):
    ids = {s: list(_docs(built[0], s)) for s in text.SPLITS}
    assert all(ids.values())
    assert sum(map(len, ids.values())) == len(set().union(*ids.values())) == 61
    assert "src0/sub/page.html.gz" in set().union(*ids.values())


def test_html_page_is_cleaned(built):
    docs = {k: v for s in text.SPLITS for k, v in _docs(built[0], s).items()}
    page = docs["src0/sub/page.html.gz"]
    assert page.startswith("Gardens\n\nThe gardener waters")
    assert "Navigation" not in page and "var x" not in page
    assert page.endswith("\n\n  x = 1\n  y = 2")  # <pre> layout kept


def test_tokenizer_round_trips_text(built):
    tokenizer = load_tokenizer(built[0])
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.eos_token_id == eos_id(built[0])
    assert tokenizer.pad_token == "<|pad|>" and tokenizer.pad_token_id != tokenizer.eos_token_id
    for sample in ["The engineer reads a long letter.", "  indented\n\ttabs & ünïcødé — 数据\n", "x=1;y=[2, 3]"]:
        ids = tokenizer.encode(sample, add_special_tokens=False)
        assert tokenizer.decode(ids) == sample
    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(built[0] / "tokenizer")
    assert auto.encode("a short story", add_special_tokens=False) == tokenizer.encode("a short story",
                                                                                      add_special_tokens=False)


def test_resume_skips_finished_stages(built, source_dir):
    out = built[1]
    shard = out / "shards" / "train_000.bin"
    before = shard.stat().st_mtime_ns
    _build(out, source_dir, workers=1)
    assert shard.stat().st_mtime_ns == before


def test_tokenizer_can_be_reused(built, source_dir, tmp_path):
    manifest = build_corpus(tmp_path / "reuse", sources=[source_dir], max_bytes=None, min_doc_bytes=64, workers=1,
                            tokenizer_from=built[0])
    assert manifest["tokenizer"]["sha256"] == verify_corpus(built[0])["tokenizer"]["sha256"]


def test_verify_names_flipped_byte(built, tmp_path):
    out = shutil.copytree(built[0], tmp_path / "corpus")
    shard = out / "shards" / "train_001.bin"
    data = bytearray(shard.read_bytes())
    data[10] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(CorpusError, match=r"corrupt file .*train_001\.bin: expected sha256"):
        verify_corpus(out)
    assert main(["verify", "--out", str(out)]) == 2
    run = subprocess.run([sys.executable, "-m", "common.data.text", "verify", "--out", str(out)], capture_output=True,
                         text=True)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.startswith(f"error: corrupt file {out / 'shards' / 'train_001.bin'}: expected sha256")
    assert run.stderr.count("\n") == 1  # one line


def test_build_rewrites_a_damaged_shard(built, source_dir, tmp_path):
    out = shutil.copytree(built[1], tmp_path / "corpus")
    shard = out / "shards" / "train_000.bin"
    good = shard.read_bytes()
    shard.write_bytes(good[:10] + bytes([good[10] ^ 0xFF]) + good[11:])
    manifest = _build(out, source_dir, workers=1)  # collect and tokenizer stages are skipped, the shards re-encoded
    assert shard.read_bytes() == good
    assert verify_corpus(out)["splits"] == manifest["splits"]


def test_truncated_shard_gives_sizes(built, tmp_path):
    out = shutil.copytree(built[0], tmp_path / "corpus")
    shard = out / "shards" / "val_000.bin"
    size = shard.stat().st_size
    shard.write_bytes(shard.read_bytes()[:-2])
    message = rf"truncated or corrupt file .*val_000\.bin: expected {size} bytes, found {size - 2}"
    with pytest.raises(CorpusError, match=message):
        verify_corpus(out)
    with pytest.raises(CorpusError, match=message):
        load_split(out, "val")


def test_tiny_corpus(tmp_path):
    docs = tiny_documents(seed=0)
    assert hashlib.sha256("".join(docs).encode()).hexdigest()[:16] == "6fd846e152e84cea"  # same on every machine
    manifest = build_tiny_corpus(tmp_path / "tiny")
    assert 100_000 < sum(info["bytes"] for info in manifest["splits"].values()) < 300_000
    assert manifest["tokenizer"]["vocab_size"] == 512
    for split, info in manifest["splits"].items():
        tokens = load_split(tmp_path / "tiny", split)
        assert info["docs"] > 0 and tokens.dtype == np.uint16 and tokens.shape == (info["tokens"],)
        assert tokens[-1] == eos_id(tmp_path / "tiny")


def test_missing_sources_are_named(tmp_path, monkeypatch):
    with pytest.raises(CorpusError, match="no-such-dir does not exist"):
        build_corpus(tmp_path / "out", sources=[tmp_path / "no-such-dir"])
    missing = text.Source("gone", "html", "no-such-package-xyz", r"\.html$")
    monkeypatch.setitem(text.CORPORA, "english", (missing,))
    with pytest.raises(CorpusError, match=r"apt-get install -y no-such-package-xyz"):
        build_corpus(tmp_path / "out")
    with pytest.raises(CorpusError, match="no corpus at"):
        load_split(tmp_path / "out", "train")


def test_roff_to_text():
    roff = '.TH X 3\n.\\" comment\n.SH NAME\nstrlen \\- length\n.PP\nThe\n.BR strlen ()\nfunction.\n.nf\na\n  b\n.fi\n'
    assert text.normalise(text.roff_to_text(roff)) == "NAME\n\nstrlen - length\n\nThe strlen() function.\n\na\n  b"


def test_load_split_max_tokens_is_a_prefix(tmp_path):
    manifest = build_tiny_corpus(tmp_path / "tiny")
    full = load_split(tmp_path / "tiny", "train")
    head = load_split(tmp_path / "tiny", "train", max_tokens=100)
    assert head.shape == (100,) and np.array_equal(head, full[:100])
    assert manifest["splits"]["train"]["tokens"] == full.shape[0]
