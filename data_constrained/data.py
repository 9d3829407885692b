"""Token data for fixed-budget, multi-epoch training: the first `token_budget` tokens of a corpus's train split,
cut into (seq_len + 1)-token windows, visited in a fresh seeded order every epoch.

The batch of a step is a pure function of (step, data_seed), so a resumed run sees exactly the batches the
uninterrupted run would have seen. Corpora come from `common.data.text` (`tiny` is built on the fly for tests), or
from a packed folder (`train.bin`, `val.bin` uint16 + `meta.json`, written by `pack`) for GPU machines that only
receive a small slice of the corpus.

    python -m data_constrained.data pack --corpus english --train-tokens 20000000 --out data/packed/english_20m
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.config import ConfigError, check_choice, check_range
from common.paths import data_dir

CORPORA = ("tiny", "english", "code", "packed")


@dataclass
class DataConfig:
    """Which tokens to train on. `token_budget`: unique training tokens (the paper's fixed data D);
    `offset`: where that slice starts in the train split; `eval_tokens`: held-out tokens scored (0: all); `eval_split` "val+test" scores both (tiny corpora)."""

    corpus: str = "tiny"
    dir: str = ""  # "" -> default folder of `corpus` (data/text/<corpus>, or data/packed/<corpus> for packed)
    token_budget: int = 16384
    offset: int = 0
    eval_split: str = "val"
    eval_tokens: int = 0

    def __post_init__(self) -> None:
        check_choice("data.corpus", self.corpus, CORPORA)
        check_choice("data.eval_split", self.eval_split, ("val", "test", "val+test"))
        check_range("data.token_budget", self.token_budget, 2)
        check_range("data.offset", self.offset, 0)
        check_range("data.eval_tokens", self.eval_tokens, 0)


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
    """All tokens of `split` (1-D uint16/uint32) from a corpus folder or a packed folder."""
    if "+" in split:
        return np.concatenate([np.asarray(load_tokens(cfg, part)) for part in split.split("+")])
    path = corpus_dir(cfg)
    if cfg.corpus == "packed":
        file = path / f"{split}.bin"
        if not file.exists():
            raise ConfigError(f"data.dir={path}: no {file.name}; expected a folder written by `pack`")
        meta = json.loads((path / "meta.json").read_text())
        return np.memmap(file, dtype=np.dtype(meta["dtype"]), mode="r")
    from common.data.text import load_split

    if not (path / "manifest.json").exists():
        raise ConfigError(f"data.corpus={cfg.corpus}: no corpus at {path}; build it with `make corpus` "
                          f"(python -m common.data.text build --corpus {cfg.corpus}) or set data.dir")
    return load_split(path, split)


def vocab_size_of(cfg: DataConfig) -> int:
    """The tokenizer's vocabulary size (the model's `vocab_size` must be at least this)."""
    path = corpus_dir(cfg)
    if cfg.corpus == "packed":
        return int(json.loads((path / "meta.json").read_text())["vocab_size"])
    return int(json.loads((path / "manifest.json").read_text())["tokenizer"]["vocab_size"])


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
        self._orders: dict[int, np.ndarray] = {}

    def order(self, epoch: int) -> np.ndarray:
        """The window order of `epoch` (a permutation of range(n_windows))."""
        if epoch not in self._orders:
            self._orders = {epoch: np.random.default_rng([self.data_seed, epoch]).permutation(self.n_windows)}
        return self._orders[epoch]

    def windows(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets (len(indices), seq_len) int64 for global sequence indices."""
        rows = []
        for g in indices:
            w = int(self.order(g // self.n_windows)[g % self.n_windows])
            rows.append(self.tokens[w * self.seq_len: w * self.seq_len + self.seq_len + 1])
        batch = torch.stack(rows)
        return batch[:, :-1], batch[:, 1:]


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


def pack(corpus: str, out: Path, train_tokens: int, eval_tokens: int) -> Path:
    """Copy the first `train_tokens` train and `eval_tokens` val/test tokens of a corpus into `out`."""
    from common.data.text import default_corpus_dir, eos_id, load_split, load_tokenizer

    src = default_corpus_dir(corpus)
    out.mkdir(parents=True, exist_ok=True)
    dtype = None
    for split, n in (("train", train_tokens), ("val", eval_tokens), ("test", eval_tokens)):
        tokens = np.asarray(load_split(src, split)[:n])
        dtype = tokens.dtype
        tokens.tofile(out / f"{split}.bin")
    load_tokenizer(src).save_pretrained(str(out / "tokenizer"))
    meta = {"source": str(src), "dtype": str(dtype), "vocab_size": len(load_tokenizer(src)), "eos_id": eos_id(src)}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="write a small shippable slice of a corpus")
    p.add_argument("--corpus", default="english", choices=("english", "code"))
    p.add_argument("--train-tokens", type=int, default=20_000_000)
    p.add_argument("--eval-tokens", type=int, default=1_000_000)
    p.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    print(pack(args.corpus, args.out, args.train_tokens, args.eval_tokens))


if __name__ == "__main__":
    main()
