"""Stage 2 of a build, and loading its result: the corpus's byte-level BPE tokenizer in HF format.

`train_tokenizer` trains BPE (HF `tokenizers`, specials `<|endoftext|>` = EOS and document separator, `<|pad|>`)
on the first `sample_bytes` of the train split; `copy_tokenizer` reuses another corpus's instead. Both write
`tokenizer/{tokenizer.json,tokenizer_config.json,special_tokens_map.json}`, which
`transformers.AutoTokenizer.from_pretrained` loads.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from common.data.text.collect import read_texts
from common.data.text.digests import sha256_file
from common.data.text.errors import CorpusError
from common.data.text.manifest import resolve_dir
from common.results import atomic_write_text

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"


def load_tokenizer(out_dir: str | Path | None = None):
    """The corpus tokenizer as a `transformers.PreTrainedTokenizerFast` (eos `<|endoftext|>`, pad `<|pad|>`)."""
    from transformers import PreTrainedTokenizerFast

    path = resolve_dir(out_dir) / "tokenizer"
    if not (path / "tokenizer.json").exists():
        raise CorpusError(f"no tokenizer at {path}: run `python -m common.data.text build --out {path.parent}`")
    return PreTrainedTokenizerFast.from_pretrained(str(path))


def train_tokenizer(out: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Byte-level BPE of `params["vocab_size"]` tokens on the first `params["sample_bytes"]` of the train split,
    saved under `out/tokenizer`; return the stage record (vocab size, sha256, eos/pad ids)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=params["vocab_size"], min_frequency=2, special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    texts = _capped(read_texts(out / "docs" / "train.jsonl"), params["sample_bytes"])
    tokenizer.train_from_iterator(tqdm(texts, desc="tokenizer", unit="doc"), trainer=trainer)
    tok_dir = out / "tokenizer"
    tok_dir.mkdir(parents=True, exist_ok=True)
    tmp = tok_dir / "tokenizer.json.tmp"
    tokenizer.save(str(tmp))
    os.replace(tmp, tok_dir / "tokenizer.json")
    return _save_tokenizer_config(tokenizer, tok_dir)


def copy_tokenizer(source_dir: Path, out: Path) -> dict[str, Any]:
    """Reuse another corpus's `tokenizer.json` from `source_dir` (configs are rewritten identically); return the
    stage record."""
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
        "vocab_size": tokenizer.get_vocab_size(), "sha256": sha256_file(tok_dir / "tokenizer.json"),
        "eos_id": tokenizer.token_to_id(EOS_TOKEN), "pad_id": tokenizer.token_to_id(PAD_TOKEN),
        "files": ["tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json", "tokenizer/special_tokens_map.json"],
    }


def _capped(texts: Iterable[str], max_bytes: int) -> Iterator[str]:
    """`texts` until their UTF-8 total first reaches `max_bytes` (the text that crosses it included)."""
    total = 0
    for text in texts:
        if total >= max_bytes:
            return
        total += len(text.encode())
        yield text
