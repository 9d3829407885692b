"""Packed folders: meta.json records each split's sha256 and largest token id, `load_tokens` checks both (one error
naming the file), compressed packs decompress on first use; the device-side batches are the loader's windows."""

import json

import numpy as np
import pytest
import torch

from data_constrained.data import DataConfig, DeviceBatches, EpochLoader, PackError, load_tokens, pack


@pytest.fixture(scope="module")
def packed(tiny_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("packed")
    meta = pack("tiny", out / "plain", 8192, 1000, source=tiny_dir)
    pack("tiny", out / "xz", 8192, 1000, compress=True, source=tiny_dir)
    return out, meta


def test_pack_records_digests_and_loads_back(packed, tiny_dir):
    out, meta = packed
    train = meta["splits"]["train"]
    assert train["tokens"] == 8192 and len(train["sha256"]) == 64 and 0 < train["max_token"] < meta["vocab_size"]
    source = load_tokens(DataConfig(corpus="tiny", dir=str(tiny_dir)), "train")[:8192]
    for name in ("plain", "xz"):
        tokens = load_tokens(DataConfig(corpus="packed", dir=str(out / name)), "train")
        assert np.array_equal(np.asarray(tokens), source)
    assert (out / "xz" / "train.bin").exists()  # decompressed beside the .xz on first use
    assert (out / "xz" / "train.bin.xz").stat().st_size < (out / "xz" / "train.bin").stat().st_size


def test_a_changed_byte_or_an_old_meta_is_one_error_naming_the_file(packed, tmp_path):
    import shutil

    out, _ = packed
    bad = tmp_path / "bad"
    shutil.copytree(out / "plain", bad)
    raw = bytearray((bad / "val.bin").read_bytes())
    raw[10] ^= 1
    (bad / "val.bin").write_bytes(bytes(raw))
    cfg = DataConfig(corpus="packed", dir=str(bad))
    with pytest.raises(PackError, match=r"corrupt file .*val\.bin: expected sha256"):
        load_tokens(cfg, "val")
    (bad / "val.bin").write_bytes(bytes(raw[:-2]))
    with pytest.raises(PackError, match=r"truncated or corrupt file .*val\.bin"):
        load_tokens(cfg, "val")
    meta = json.loads((bad / "meta.json").read_text())
    (bad / "meta.json").write_text(json.dumps({"dtype": meta["dtype"], "vocab_size": meta["vocab_size"]}))
    with pytest.raises(PackError, match=r"pack format 1, expected 2.*re-pack"):
        load_tokens(cfg, "train")


def test_token_ids_beyond_the_vocabulary_are_refused(packed, tmp_path):
    import hashlib
    import shutil

    out, _ = packed
    bad = tmp_path / "ids"
    shutil.copytree(out / "plain", bad)
    meta = json.loads((bad / "meta.json").read_text())
    tokens = np.fromfile(bad / "test.bin", dtype=meta["dtype"])
    tokens[3] = meta["vocab_size"] + 5
    tokens.tofile(bad / "test.bin")
    meta["splits"]["test"]["sha256"] = hashlib.sha256(tokens.tobytes()).hexdigest()  # a consistent but bad pack
    (bad / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(PackError, match=r"test\.bin: expected token ids < 512 .* found 517"):
        load_tokens(DataConfig(corpus="packed", dir=str(bad)), "test")


def test_device_batches_are_the_loaders_windows():
    tokens = np.arange(1000, dtype=np.uint16)
    loader = EpochLoader(tokens, 900, 10, 16, data_seed=3)
    batches = DeviceBatches(loader, "cpu", first_step=2, last_step=9, global_batch=12)
    for step in (2, 5, 8):
        for rank, world in ((0, 1), (1, 2)):
            x, y = batches.micro(step, rank, world, 1, 3)
            indices = list(range(step * 12, (step + 1) * 12))[rank::world][3:6]
            want_x, want_y = loader.windows(indices)
            assert torch.equal(x, want_x) and torch.equal(y, want_y)
