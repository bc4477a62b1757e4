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


def quote_path(path: str | Path) -> str:
    """``path`` as it appears in a message: as is when plain, else quoted like Python's ``repr``.

    A file may be named with a newline, a tab, a control character or bytes that are not UTF-8
    (they reach Python as lone surrogates); printed raw, such a name would split the one error line
    or fail to print at all. Quoting only those names keeps the common messages unchanged.
    """
    text = str(path)
    if text.isprintable() and text == text.strip() and text[:1] not in ("'", '"'):
        return text
    return repr(text)  # escapes newlines, control characters and surrogates: one printable line


class FoleyGenError(Exception):
    """Base class: a problem the user can act on, described in one line.

    ``path`` is kept as given (``err.path``); the message quotes it when it holds characters that
    would break the line (see :func:`quote_path`).
    """

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        self.message = " ".join(str(message).split())  # one line, always
        super().__init__(f"{quote_path(self.path)}: {self.message}" if self.path else self.message)


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
        # A library's message may hold newlines and may repeat the raw file name (with its newline).
        detail = " ".join(str(err).split()) or "no message"
        text = f"unexpected {type(err).__name__}: {detail} (rerun with --debug for the traceback)"
    if path is not None and not text.startswith(quote_path(path)):
        text = f"{quote_path(path)}: {text}"
    return text


MAX_REPEATS = 4096
"""The most repeated blocks (layers, codebooks, resolutions) a config may ask for. Each is a module built
one by one (even on the ``meta`` device, where sizes cost nothing), so a damaged config asking for 2**63
codebooks would otherwise spin for ever before any memory check could refuse it."""


def check_counts(owner: str, **counts: int) -> None:
    """Raise one :class:`ConfigError` unless each count is within ``1..MAX_REPEATS``."""
    for name, value in counts.items():
        if not 1 <= value <= MAX_REPEATS:
            raise ConfigError(f"{owner}.{name} must be between 1 and {MAX_REPEATS}, got {value}")
