"""Per-file failures of one evaluation: one line each, the file left out, the run goes on.

An evaluation over thousands of clips must not end on the first unreadable file or on a bug met by one
clip: :meth:`FileFailures.attempt` runs one file's step, and any exception (ours or not) becomes that
file's one-line failure (:func:`foleygen.errors.one_line`), reported once through ``on_failure`` and
listed in the report. A stem with any failed file (generated, reference, video or events) is left out of
every metric, so all metrics of one report are computed over the same clips.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from foleygen.errors import DataError, one_line

__all__ = ["FileFailures", "skipped", "errored"]

T = TypeVar("T")


def skipped(reason: str) -> dict[str, Any]:
    """A metric's result when it cannot run and was not asked for by name."""
    return {"value": None, "skipped": reason}


def errored(reason: str) -> dict[str, Any]:
    """A metric's result when it was asked for but cannot run, or raised: an error (the CLI exits 1)."""
    return {"value": None, "skipped": None, "error": reason}


class FileFailures:
    """The files that failed so far, in the order they failed.

    Args:
        on_failure: called with each failure's one line as it happens (the CLI prints it); None: silent.
    """

    def __init__(self, on_failure: Callable[[str], None] | None = None) -> None:
        self.on_failure = on_failure
        self.entries: list[dict[str, str]] = []
        self._failed: set[Path] = set()
        self._stems: set[str] = set()

    def failed(self, path: str | Path) -> bool:
        """Whether ``path`` failed already (later steps skip it: one line per bad file, not one per step)."""
        return Path(path) in self._failed

    def record(self, path: str | Path, stage: str, err: BaseException) -> None:
        """Note ``err`` as the failure of ``path`` in ``stage`` (the first failure of a file is kept)."""
        path = Path(path)
        if path in self._failed:
            return
        message = one_line(err, path)
        self._failed.add(path)
        self._stems.add(path.stem)
        self.entries.append({"file": str(path), "stage": stage, "error": message})
        if self.on_failure is not None:
            self.on_failure(message)

    def record_problem(self, path: str | Path, problem: str) -> None:
        """Note a problem found without an exception (two files for one stem...) as ``path``'s failure."""
        self.record(path, "pairing", DataError(problem))

    def attempt(self, path: str | Path, stage: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """``fn(*args, **kwargs)``, or None when ``path`` failed before or ``fn`` raises (then recorded)."""
        if self.failed(path):
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # any failure is this file's: the other files still get scored
            self.record(path, stage, err)
            return None

    def stem_failed(self, stem: str) -> bool:
        """Whether any file of ``stem`` failed (its clip is out already: no need to read the others)."""
        return stem in self._stems

    @property
    def stems(self) -> set[str]:
        """Stems of the failed files: pairing is by stem, so these clips leave every metric."""
        return set(self._stems)
