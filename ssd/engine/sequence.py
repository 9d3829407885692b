"""A request being generated: its tokens, its KV-cache slots and why it stopped.

Cache invariant shared by every strategy: the target's cache slot holds keys/values for `token_ids[:-1]`
(the last token is fed at the next step); the draft's slot holds at least `token_ids[:-2]` (a draft step first
re-feeds the last two tokens, which makes it catch up after any verification outcome with one static shape).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Sequence:
    """One prompt's generation state."""

    seq_id: int
    prompt_ids: list[int]
    max_new_tokens: int
    stop_token_ids: frozenset[int] = frozenset()
    slot: int = -1
    draft_slots: list[int] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None

    def __post_init__(self) -> None:
        if not self.token_ids:
            self.token_ids = list(self.prompt_ids)

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def output_ids(self) -> list[int]:
        return self.token_ids[len(self.prompt_ids):]

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def append(self, new_tokens: list[int]) -> list[int]:
        """Append a round's tokens, cut at the first stop token or the length limit; return what was kept."""
        kept: list[int] = []
        for token in new_tokens:
            kept.append(token)
            if token in self.stop_token_ids:
                self.finish_reason = "stop"
                break
            if len(self.output_ids) + len(kept) >= self.max_new_tokens:
                self.finish_reason = "length"
                break
        self.token_ids.extend(kept)
        return kept
