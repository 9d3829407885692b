"""The error family for bad input, and how an entry point reports one.

`PaperclubError` is raised for anything a user can fix by changing what they passed in: a config value out of
range (`common.config.ConfigError`), a missing or foreign checkpoint (`common.checkpoint.CheckpointError`), a
results file that is not ours (`common.results.ResultError`), a corrupt data file. Its message names the key or
path and what was expected, on one line. An entry point prints that line to stderr and exits with status 2,
without a traceback; `PAPERCLUB_FULL_ERROR=1` (or Hydra's own `HYDRA_FULL_ERROR=1`) re-raises it instead, so the
full traceback is shown. Anything that is not a `PaperclubError` is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

BAD_INPUT_STATUS = 2  # the exit status of an entry point given bad input (argparse uses the same)
FULL_ERROR_VARIABLES = ("PAPERCLUB_FULL_ERROR", "HYDRA_FULL_ERROR")


class PaperclubError(Exception):
    """Bad input a user can fix: the message names the key or path and what was expected."""


def wants_traceback() -> bool:
    """True when the environment asks for full tracebacks (`PAPERCLUB_FULL_ERROR=1` or `HYDRA_FULL_ERROR=1`)."""
    return any(os.environ.get(name) == "1" for name in FULL_ERROR_VARIABLES)


def one_line(message: str) -> str:
    """`message` as a single line: its non-empty lines, stripped, joined by '; ' (by ' ' after a colon)."""
    text = ""
    for line in (line.strip() for line in message.splitlines()):
        if line and text.endswith(":"):
            text += " " + line
        elif line:
            text = f"{text.rstrip('.')}; {line}" if text else line
    return text


def exit_bad_input(message: str) -> NoReturn:
    """Print `error: <message>` as one line to stderr and exit with status 2 (SystemExit, not an Exception)."""
    sys.stdout.flush()
    sys.stderr.write(f"error: {one_line(message)}\n")
    sys.stderr.flush()
    raise SystemExit(BAD_INPUT_STATUS)
