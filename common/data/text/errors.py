"""The one error a corpus raises: its message names the file or package and what was expected, on one line."""

from __future__ import annotations

from common.errors import PaperclubError


class CorpusError(PaperclubError):
    """A corpus cannot be built, read or verified; the message names the file/package and what was expected."""
