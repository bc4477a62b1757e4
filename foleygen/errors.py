"""Errors meant for humans.

Every error foleygen raises on purpose is a :class:`FoleyGenError`. Its ``str()`` is one line that
names the file (when there is one) and the problem; the CLI prints exactly that line and exits 1.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

DEBUG_ENV = "FOLEYGEN_DEBUG"
"""Set to 1 (or pass ``--debug`` to any command) to see the traceback behind an unexpected error."""


class FoleyGenError(Exception):
    """Base class: a problem the user can act on, described in one line."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        self.message = " ".join(str(message).split())  # one line, always
        super().__init__(f"{self.path}: {self.message}" if self.path else self.message)


class MediaError(FoleyGenError):
    """A media file that is missing, unreadable, corrupt or lacks the needed stream."""


class ConfigError(FoleyGenError):
    """A configuration that is invalid or does not match a checkpoint or cache."""


class CheckpointError(FoleyGenError):
    """A checkpoint that is missing, of an unknown format, or unsafe to load."""


class CodecError(FoleyGenError):
    """Codes or audio that do not fit a codec (wrong codebook count, out-of-range codes...)."""


class DataError(FoleyGenError):
    """A data set, manifest or cache that is malformed or inconsistent."""


def debug_requested() -> bool:
    """Whether tracebacks of unexpected errors should be shown (``--debug`` or ``FOLEYGEN_DEBUG=1``)."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def one_line(err: BaseException, path: str | Path | None = None) -> str:
    """The single line a user reads for any error, ours or not, about the file ``path``.

    A :class:`FoleyGenError` is already a sentence; anything else is a bug on our side (or a library's),
    said as such, with the way to get the traceback for a report. When ``debug_requested()``, the
    traceback of ``err`` is printed on stderr first.
    """
    if debug_requested() and not isinstance(err, FoleyGenError):
        traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
    if isinstance(err, FoleyGenError):
        text = str(err)
    else:
        detail = " ".join(str(err).split()) or "no message"
        text = f"unexpected {type(err).__name__}: {detail} (rerun with --debug for the traceback)"
    if path is not None and not text.startswith(str(path)):
        text = f"{path}: {text}"
    return text
