"""Errors meant for humans.

Every error foleygen raises on purpose is a :class:`FoleyGenError`. Its ``str()`` is one line that
names the file (when there is one) and the problem; the CLI prints exactly that line and exits 1.
"""

from __future__ import annotations

from pathlib import Path


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
