"""The command line: `python -m common.data.text {build,verify,tiny}`; a CorpusError is one line on stderr, exit 2."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from common.data import text
from common.data.text.build import (
    DEFAULT_MAX_BYTES,
    DEFAULT_SHARD_TOKENS,
    DEFAULT_TOKENIZER_SAMPLE_BYTES,
    DEFAULT_VOCAB_SIZE,
    build_corpus,
)
from common.data.text.errors import CorpusError
from common.data.text.manifest import SPLITS, default_corpus_dir
from common.data.text.sources import CORPORA
from common.data.text.tiny import build_tiny_corpus
from common.data.text.verify import verify_corpus
from common.errors import BAD_INPUT_STATUS, one_line


def main(argv: list[str] | None = None) -> int:
    """`build`, `verify` or `tiny`; returns the exit code (2, the bad-input status, with a one-line message on CorpusError)."""
    parser = argparse.ArgumentParser(prog="python -m common.data.text", description=text.__doc__.split("\n")[0])
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
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        return BAD_INPUT_STATUS
    print(_summary(manifest))
    return 0


def _parse_bytes(value: str) -> int:
    """"64M" -> 67108864; also K, G suffixes (binary) and plain integers; 0 means no cap."""
    match = re.fullmatch(r"(\d+)([KMG]?)i?B?", value.strip(), flags=re.I)
    if not match:
        raise argparse.ArgumentTypeError(f"expected a size like 64M or 1000000, got {value!r}")
    return int(match.group(1)) * 1024 ** " KMG".index(match.group(2).upper() or " ")


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
