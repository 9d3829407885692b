"""Token data for fixed-budget, multi-epoch training: the first `token_budget` tokens of a corpus's train split,
cut into (seq_len + 1)-token windows, visited in a fresh seeded order every epoch.

The batch of a step is a pure function of (step, data_seed), so a resumed run sees exactly the batches the
uninterrupted run would have seen. `EpochLoader.window_starts` gives the window of every sequence of a run at once,
so the trainer gathers its batches on the device from one index tensor (no host work or copy per step). Corpora come
from `common.data.text` (`tiny` is built on the fly for tests), or from a packed folder for GPU machines that only
receive a small slice of the corpus:

    python -m data_constrained.data pack --corpus english --train-tokens 0 --eval-tokens 0 --compress \
        --source data/text/english_full --out data/dc_gpu/english

A packed folder holds `<split>.bin` (uint16/uint32, native order) or, with `--compress`, `<split>.bin.xz` (LZMA;
decompressed into `<split>.bin` beside it on first use), the tokenizer, and `meta.json`, which records for every
split its token count, the sha256 of its uncompressed bytes and its largest token id. `load_tokens` checks a packed
file against those before any model sees it (size, sha256, every id < the vocabulary size) and raises one
`PackError` naming the file; the sha256 and largest id of an unchanged file are remembered in `pack_scans.json`
(`common.data.text.digests.ScanCache`), so a second load reads only the metadata.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.config import ConfigError, check_choice, check_range
from common.paths import data_dir

CORPORA = ("tiny", "english", "code", "packed")
PACK_FORMAT = 2
PACK_SCANS = "pack_scans.json"
SPLITS = ("train", "val", "test")


class PackError(ConfigError):
    """A packed folder is missing a file, or a file differs from what its meta.json records."""


@dataclass
class DataConfig:
    """Which tokens to train on. `token_budget`: unique training tokens (the paper's fixed data D); `offset`: where
    that slice starts in the train split; `eval_split`/`eval_tokens`: the held-out tokens that choices are made on
    (0: all; "val+test" scores both, for the tiny corpus); `test_split`/`test_tokens`: the held-out tokens that
    reported numbers come from ("" skips them)."""

    corpus: str = "tiny"
    dir: str = ""  # "" -> default folder of `corpus` (data/text/<corpus>); a packed corpus needs its folder
    token_budget: int = 16384
    offset: int = 0
    eval_split: str = "val"
    eval_tokens: int = 0
    test_split: str = "test"
    test_tokens: int = 0

    def __post_init__(self) -> None:
        check_choice("data.corpus", self.corpus, CORPORA)
        check_choice("data.eval_split", self.eval_split, ("val", "test", "val+test"))
        check_choice("data.test_split", self.test_split, ("", "test"))
        check_range("data.token_budget", self.token_budget, 2)
        check_range("data.offset", self.offset, 0)
        check_range("data.eval_tokens", self.eval_tokens, 0)
        check_range("data.test_tokens", self.test_tokens, 0)


def corpus_dir(cfg: DataConfig) -> Path:
    """The folder holding the corpus (built first when it is the tiny test corpus)."""
    if cfg.dir:
        path = Path(cfg.dir)
    elif cfg.corpus == "packed":
        raise ConfigError("data.corpus=packed needs data.dir=<folder written by `data_constrained.data pack`>")
    else:
        path = data_dir() / "text" / cfg.corpus
    if cfg.corpus == "tiny" and not (path / "manifest.json").exists():
        from common.data.text import build_tiny_corpus

        build_tiny_corpus(path)
    return path


def load_tokens(cfg: DataConfig, split: str) -> np.ndarray:
    """All tokens of `split` (1-D uint16/uint32) from a corpus folder or a packed folder (checked, see above)."""
    if "+" in split:
        return np.concatenate([np.asarray(load_tokens(cfg, part)) for part in split.split("+")])
    path = corpus_dir(cfg)
    if cfg.corpus == "packed":
        return load_packed(path, split)
    from common.data.text import load_split

    if not (path / "manifest.json").exists():
        raise ConfigError(f"data.corpus={cfg.corpus}: no corpus at {path}; build it with `make corpus` "
                          f"(python -m common.data.text build --corpus {cfg.corpus}) or set data.dir")
    return load_split(path, split)


def vocab_size_of(cfg: DataConfig) -> int:
    """The tokenizer's vocabulary size (the model's `vocab_size` must be at least this)."""
    path = corpus_dir(cfg)
    if cfg.corpus == "packed":
        return int(read_pack_meta(path)["vocab_size"])
    return int(json.loads((path / "manifest.json").read_text())["tokenizer"]["vocab_size"])


def pack_digest(cfg: DataConfig) -> dict[str, Any]:
    """What identifies the tokens a config reads: the packed train file's sha256 and length, or the corpus manifest's
    train shards (recorded in a campaign's manifest, so results of another slice are never mixed in)."""
    path = corpus_dir(cfg)
    if cfg.corpus == "packed":
        train = read_pack_meta(path)["splits"]["train"]
        return {"train_sha256": train["sha256"], "train_tokens": train["tokens"]}
    manifest = json.loads((path / "manifest.json").read_text())
    shards = manifest["splits"]["train"]["shards"]
    return {"train_sha256": [s["sha256"] for s in shards], "train_tokens": manifest["splits"]["train"]["tokens"]}


# ---------------------------------------------------------------------------------------------- batches


class EpochLoader:
    """Fixed-budget windows in a seeded per-epoch order. Step `s` is global sequences [s*G, (s+1)*G)."""

    def __init__(self, tokens: np.ndarray, token_budget: int, offset: int, seq_len: int, data_seed: int) -> None:
        if offset + token_budget > len(tokens):
            raise ConfigError(f"data.offset + data.token_budget = {offset + token_budget} exceeds the train "
                              f"split's {len(tokens)} tokens; lower data.token_budget")
        if token_budget < seq_len + 1:
            raise ConfigError(f"data.token_budget={token_budget} is shorter than one window of seq_len + 1 = "
                              f"{seq_len + 1} tokens")
        self.tokens = torch.from_numpy(np.asarray(tokens[offset:offset + token_budget], dtype=np.int64))
        self.seq_len = seq_len
        self.n_windows = (token_budget - 1) // seq_len
        self.data_seed = data_seed

    def order(self, epoch: int) -> np.ndarray:
        """The window order of `epoch` (a permutation of range(n_windows))."""
        return np.random.default_rng([self.data_seed, epoch]).permutation(self.n_windows)

    def window_starts(self, first: int, last: int) -> np.ndarray:
        """Token offset of the window of every global sequence index in [first, last), (last - first,) int64."""
        index = np.arange(first, last, dtype=np.int64)
        epochs, positions = np.divmod(index, self.n_windows)
        windows = np.empty_like(index)
        for epoch in np.unique(epochs):
            hit = epochs == epoch
            windows[hit] = self.order(int(epoch))[positions[hit]]
        return windows * self.seq_len

    def windows(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets (len(indices), seq_len) int64 for global sequence indices (on the CPU)."""
        starts = torch.from_numpy(np.concatenate([self.window_starts(g, g + 1) for g in indices]))
        batch = self.tokens[starts[:, None] + torch.arange(self.seq_len + 1)]
        return batch[:, :-1], batch[:, 1:]


class DeviceBatches:
    """A run's batches gathered on `device`: the token budget and the window start of every sequence of steps
    [first_step, last_step) are copied there once; `micro(step, rank, world, m, batch_size)` is then index arithmetic
    on device tensors (no host synchronisation). Same windows as `EpochLoader.windows`."""

    def __init__(self, loader: EpochLoader, device: str, first_step: int, last_step: int, global_batch: int) -> None:
        self.global_batch, self.first_step = global_batch, first_step
        self.tokens = loader.tokens.to(device)
        starts = loader.window_starts(first_step * global_batch, max(first_step, last_step) * global_batch)
        self.starts = torch.from_numpy(starts).to(device)
        self.offsets = torch.arange(loader.seq_len + 1, device=device)

    def micro(self, step: int, rank: int, world: int, micro: int, batch_size: int
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets (batch_size, seq_len) of micro-batch `micro` of this rank at `step`."""
        begin = (step - self.first_step) * self.global_batch
        mine = self.starts[begin:begin + self.global_batch][rank::world]
        rows = self.tokens[mine[micro * batch_size:(micro + 1) * batch_size, None] + self.offsets]
        return rows[:, :-1], rows[:, 1:]


def eval_windows(tokens: np.ndarray, seq_len: int, max_tokens: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping held-out windows: inputs and targets (N, seq_len) int64; every target scored once."""
    tokens = np.asarray(tokens[:max_tokens] if max_tokens else tokens, dtype=np.int64)
    n = (len(tokens) - 1) // seq_len
    if n < 1:
        raise ConfigError(f"held-out split has {len(tokens)} tokens, fewer than one window of {seq_len + 1}")
    data = torch.from_numpy(tokens[: n * seq_len + 1])
    x = data[:-1].view(n, seq_len)
    y = data[1:].view(n, seq_len)
    return x, y


# ---------------------------------------------------------------------------------------------- packed folders


def pack(corpus: str, out: Path, train_tokens: int, eval_tokens: int, compress: bool = False,
         source: Path | None = None) -> dict[str, Any]:
    """Copy the first `train_tokens` train and `eval_tokens` val/test tokens (0: all) of a corpus into `out`, with
    the sha256 and largest id of every split in meta.json; returns the meta. `source`: the corpus folder (default
    data/text/<corpus>); `compress`: LZMA-compress each split (`<split>.bin.xz`)."""
    from common.data.text import default_corpus_dir, eos_id, load_split, load_tokenizer

    src = Path(source) if source else default_corpus_dir(corpus)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(src)
    splits, dtype = {}, None
    for split, n in (("train", train_tokens), ("val", eval_tokens), ("test", eval_tokens)):
        tokens = np.ascontiguousarray(load_split(src, split, max_tokens=n or None))  # checks the source shards
        dtype = tokens.dtype
        raw = tokens.tobytes()
        entry = {"tokens": int(len(tokens)), "sha256": hashlib.sha256(raw).hexdigest(),
                 "max_token": int(tokens.max()) if len(tokens) else -1, "requested": int(n)}
        for stale in (out / f"{split}.bin", out / f"{split}.bin.xz"):
            stale.unlink(missing_ok=True)
        if compress:
            packed = lzma.compress(raw, preset=9)
            _atomic_write_bytes(out / f"{split}.bin.xz", packed)
            entry.update(compressed=f"{split}.bin.xz", compressed_bytes=len(packed))
        else:
            _atomic_write_bytes(out / f"{split}.bin", raw)
        splits[split] = entry
    tokenizer.save_pretrained(str(out / "tokenizer"))
    meta = {"format": PACK_FORMAT, "source": str(src), "corpus": corpus, "dtype": str(dtype),
            "vocab_size": len(tokenizer), "eos_id": eos_id(src), "splits": splits}
    _atomic_write_bytes(out / "meta.json", (json.dumps(meta, indent=2) + "\n").encode())
    return meta


def read_pack_meta(path: Path) -> dict[str, Any]:
    """meta.json of a packed folder, or PackError saying what is wrong and how to re-pack."""
    file = path / "meta.json"
    if not file.is_file():
        raise PackError(f"data.dir={path}: no meta.json; expected a folder written by `python -m "
                        f"data_constrained.data pack`")
    try:
        meta = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise PackError(f"{file} is not valid JSON ({err}); {_repack(path)}") from None
    if meta.get("format") != PACK_FORMAT or not isinstance(meta.get("splits"), dict):
        raise PackError(f"{file} is of pack format {meta.get('format', 1)}, expected {PACK_FORMAT} (with each "
                        f"split's sha256 and largest token id); {_repack(path)}")
    return meta


def load_packed(path: Path, split: str) -> np.ndarray:
    """The checked tokens of one split of a packed folder, a read-only memmap (decompressed on first use)."""
    from common.data.text.digests import ScanCache

    meta = read_pack_meta(path)
    if split not in meta["splits"]:
        raise PackError(f"{path / 'meta.json'} has no split {split!r}; expected one of {list(meta['splits'])}")
    entry, dtype = meta["splits"][split], np.dtype(meta["dtype"])
    file = path / f"{split}.bin"
    if not file.exists() and entry.get("compressed"):
        _decompress(path / entry["compressed"], file, entry["tokens"] * dtype.itemsize)
    if not file.exists():
        raise PackError(f"missing file {file} (listed in {path / 'meta.json'}); {_repack(path)}")
    size = file.stat().st_size
    if size != entry["tokens"] * dtype.itemsize:
        raise PackError(f"truncated or corrupt file {file}: expected {entry['tokens'] * dtype.itemsize} bytes "
                        f"({entry['tokens']} {dtype.name} tokens, meta.json), found {size}; {_repack(path)}")
    cache = ScanCache(path / PACK_SCANS)
    try:
        scan = cache.scan(file, dtype) if size else None
    finally:
        cache.save()
    if scan is not None and scan.sha256 != entry["sha256"]:
        raise PackError(f"corrupt file {file}: expected sha256 {entry['sha256']} (meta.json), found {scan.sha256}; "
                        f"{_repack(path)}")
    vocab = int(meta["vocab_size"])
    if scan is not None and not scan.max_token < vocab:
        raise PackError(f"corrupt file {file}: expected token ids < {vocab} (the vocabulary size in meta.json), "
                        f"found {scan.max_token}; {_repack(path)}")
    if not size:
        return np.zeros(0, dtype=dtype)
    return np.memmap(file, dtype=dtype, mode="r", shape=(entry["tokens"],))


def _decompress(source: Path, target: Path, expected_bytes: int) -> None:
    if not source.is_file():
        raise PackError(f"missing file {source} (listed in {source.parent / 'meta.json'}); {_repack(source.parent)}")
    try:
        raw = lzma.decompress(source.read_bytes())
    except lzma.LZMAError as err:
        raise PackError(f"corrupt file {source}: {err}; {_repack(source.parent)}") from None
    if len(raw) != expected_bytes:
        raise PackError(f"corrupt file {source}: decompresses to {len(raw)} bytes, expected {expected_bytes} "
                        f"(meta.json); {_repack(source.parent)}")
    _atomic_write_bytes(target, raw)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _repack(path: Path) -> str:
    return f"re-pack it (python -m data_constrained.data pack --out {path} ...; see `make data_constrained-pack`)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="write a small shippable slice of a corpus")
    p.add_argument("--corpus", default="english", choices=("english", "code"))
    p.add_argument("--source", type=Path, default=None, help="corpus folder (default data/text/<corpus>)")
    p.add_argument("--train-tokens", type=int, default=20_000_000, help="0: the whole train split")
    p.add_argument("--eval-tokens", type=int, default=1_000_000, help="per held-out split; 0: all of it")
    p.add_argument("--compress", action="store_true", help="LZMA-compress the splits (<split>.bin.xz)")
    p.add_argument("--out", type=Path, required=True)
    c = sub.add_parser("check", help="check a packed folder's files against its meta.json")
    c.add_argument("dir", type=Path)
    args = parser.parse_args(argv)
    if args.command == "pack":
        meta = pack(args.corpus, args.out, args.train_tokens, args.eval_tokens, args.compress, args.source)
        for split, entry in meta["splits"].items():
            short = " (fewer than requested: the split ends there)" if entry["requested"] > entry["tokens"] else ""
            print(f"{args.out}/{split}: {entry['tokens']} tokens{short}")
    else:
        for split in read_pack_meta(args.dir)["splits"]:
            print(f"{args.dir}/{split}: {len(load_packed(args.dir, split))} tokens, ok")


if __name__ == "__main__":
    main()
