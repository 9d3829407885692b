"""The tiny test corpus: ~140 KB of deterministic English from a small template grammar, vocab 512, built in seconds.

Text and tokenizer are identical across machines for a given seed (only `random.Random` choices are used).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from common.data.text.build import build_corpus
from common.results import atomic_write_text


def build_tiny_corpus(out_dir: str | Path, seed: int = 0) -> dict[str, Any]:
    """Build (or resume) the tiny corpus in `out_dir` (its raw documents under `out_dir/raw`); return the manifest."""
    out = Path(out_dir)
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(tiny_documents(seed)):
        path = raw / f"doc_{i:04d}.txt"
        if not path.exists() or path.read_text() != text:
            atomic_write_text(path, text)
    return build_corpus(out, corpus="tiny", max_bytes=None, vocab_size=512, seed=seed, sources=[raw],
                        tokenizer_sample_bytes=2**20, shard_tokens=2**15, min_doc_bytes=64,
                        eval_fraction=0.05, workers=1)


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


def tiny_documents(seed: int, n_docs: int = 320) -> list[str]:
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
