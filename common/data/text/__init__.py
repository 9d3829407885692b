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
`manifest.json`, and `shard_scans.json` (the cache of shard checks made on load). CLI:
`python -m common.data.text {build,verify,tiny} --help`.

Modules, in the order a build uses them: `sources` (Debian packages, local files, reading a document),
`cleaning` (HTML and roff to text), `collect` (stage 1), `tokenizer` (stage 2, `load_tokenizer`), `shards`
(stage 3, `load_split`), `build` (the stages and the manifest), `tiny` (the test corpus); `manifest` (where a
corpus lives), `verify` and `digests` (checks against the manifest, the scan cache), `errors`; `__main__`: the CLI.
"""

from common.data.text.build import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MIN_DOC_BYTES,
    DEFAULT_SHARD_TOKENS,
    DEFAULT_TOKENIZER_SAMPLE_BYTES,
    DEFAULT_VOCAB_SIZE,
    build_corpus,
)
from common.data.text.cleaning import html_to_text, normalise, roff_to_text
from common.data.text.errors import CorpusError
from common.data.text.manifest import FORMAT_VERSION, SPLITS, default_corpus_dir, eos_id
from common.data.text.shards import load_split
from common.data.text.sources import CODE_SOURCES, CORPORA, ENGLISH_SOURCES, Source
from common.data.text.tiny import build_tiny_corpus
from common.data.text.tokenizer import EOS_TOKEN, PAD_TOKEN, load_tokenizer
from common.data.text.verify import verify_corpus

__all__ = [
    "CODE_SOURCES", "CORPORA", "DEFAULT_MAX_BYTES", "DEFAULT_MIN_DOC_BYTES", "DEFAULT_SHARD_TOKENS",
    "DEFAULT_TOKENIZER_SAMPLE_BYTES", "DEFAULT_VOCAB_SIZE", "ENGLISH_SOURCES", "EOS_TOKEN", "FORMAT_VERSION",
    "PAD_TOKEN", "SPLITS", "CorpusError", "Source", "build_corpus", "build_tiny_corpus", "default_corpus_dir",
    "eos_id", "html_to_text", "load_split", "load_tokenizer", "normalise", "roff_to_text", "verify_corpus",
]
