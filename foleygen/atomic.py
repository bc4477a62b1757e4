"""Atomic writes: every file and folder foleygen produces appears complete under its final name, or not at all.

One way to do it, for every writer in the package:

* :func:`atomic_file` (:class:`AtomicFile`): a temporary file beside the final one, hidden, locked while
  written, with the final name's extension so that encoders (FFmpeg, matplotlib, NumPy) pick the right
  format from it; on success it is flushed to disk and renamed over the final name with :func:`os.replace`
  (atomic on one file system: a reader sees the old file or the whole new one); on any exception it is
  removed and an existing final file is left as it was.
* :func:`atomic_dir`: the same for a folder (a checkpoint, a study): written under a temporary name,
  then renamed into place. An existing folder is replaced in two renames (old one aside to
  ``.NAME.old-PID``, new one in, old one removed); a process killed between them leaves the old folder
  aside, and :func:`foleygen.staging.remove_stale_temporaries` moves it back.
* :func:`atomic_write`, :func:`atomic_write_bytes`, :func:`atomic_write_text`, :func:`atomic_write_json`:
  a whole small file in one call.

Temporaries are named ``.NAME.XXXXXXXX.tmp[.ext]`` (:func:`foleygen.utils.temp_file_beside`,
:func:`~foleygen.utils.temp_dir_beside`), the names :mod:`foleygen.staging` recognises, and held with
:func:`foleygen.staging.hold`, so a killed writer's leftovers are removed by the next run and a live
writer's are not. This module is low in the layers: it imports only :mod:`foleygen.staging` and
:mod:`foleygen.utils`; callers turn ``OSError`` into their own error types.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from foleygen.staging import hold
from foleygen.utils import temp_dir_beside, temp_file_beside

PathLike = str | os.PathLike[str]

__all__ = [
    "AtomicFile",
    "atomic_file",
    "atomic_dir",
    "replace_dir",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "fsync_dir",
]

# An extension the stale-temporary clean-up recognises (foleygen.staging.TEMP_NAME): 1 to 8 letters/digits.
_KEPT_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


def _fsync_file(path: PathLike) -> None:
    """Flush a file (or a folder's entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: PathLike) -> None:
    """Flush a folder's entries (a rename into it) to disk; best effort: not every file system allows it."""
    with contextlib.suppress(OSError):
        _fsync_file(path)


def _default_suffix(final: Path) -> str:
    suffix = final.suffix
    return suffix if _KEPT_SUFFIX.match(suffix) else ""


class AtomicFile:
    """A temporary file beside ``final``, renamed over it by :meth:`commit` or removed by :meth:`abort`.

    As a context manager it yields the temporary path and commits when the block ends normally, aborts
    when it raises. Without ``with`` (a writer that grows a file over many calls) call :meth:`commit`
    or :meth:`abort` yourself; after either, the other does nothing.

    Args:
        final: the path the result gets; its folder must exist.
        suffix: the temporary's extension (after ``.tmp``); default: ``final``'s, so that encoders that go
            by the extension write the right format.
        fsync: flush the file (and the folder's new entry) to disk before and after the rename, so that a
            power cut cannot leave an empty file under the final name. Off for large media outputs that a
            re-run rewrites anyway.

    Raises:
        OSError: the temporary cannot be created (folder missing, read-only, full).
    """

    def __init__(self, final: PathLike, suffix: str | None = None, *, fsync: bool = True) -> None:
        self.final = Path(final)
        suffix = _default_suffix(self.final) if suffix is None else suffix
        self.path = temp_file_beside(self.final, f".tmp{suffix}")
        self.fsync = fsync
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(hold(self.path))
        self.open = True

    def relock(self) -> None:
        """Hold the file now at :attr:`path` (a writer that wrote it by renaming a file of its own over it
        made a new one: the lock taken at creation is on the old, unlinked file)."""
        if self.open:
            self._lock.close()
            self._lock = contextlib.ExitStack()
            self._lock.enter_context(hold(self.path))

    def commit(self) -> Path:
        """Rename the temporary over :attr:`final` (flushed first when ``fsync``); returns :attr:`final`.

        On failure the temporary is still there: :meth:`abort` removes it (the context manager does)."""
        if self.open:
            if self.fsync:
                _fsync_file(self.path)
            os.replace(self.path, self.final)
            self.open = False
            self._lock.close()
            if self.fsync:
                fsync_dir(self.final.parent if str(self.final.parent) else ".")
        return self.final

    def abort(self) -> None:
        """Remove the temporary; the final file (if any) is untouched."""
        if self.open:
            self.open = False
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)
            self._lock.close()

    def __enter__(self) -> Path:
        return self.path

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()
            return
        try:
            self.commit()
        except BaseException:
            self.abort()
            raise


def atomic_file(path: PathLike, suffix: str | None = None, *, fsync: bool = True) -> AtomicFile:
    """``with atomic_file(path) as tmp: write(tmp)``: ``path`` appears complete or not at all.

    See :class:`AtomicFile` for ``suffix`` and ``fsync``."""
    return AtomicFile(path, suffix, fsync=fsync)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def replace_dir(new: PathLike, final: PathLike) -> None:
    """Rename the folder ``new`` to ``final``, replacing whatever ``final`` is (a folder, a file).

    With nothing at ``final`` it is one rename. Otherwise the old ``final`` goes aside to
    ``.NAME.old-PID`` first, ``new`` takes its name, and the old one is removed; if the second rename
    fails the old one is put back. A process killed in between leaves the old folder aside, which
    :func:`foleygen.staging.remove_stale_temporaries` restores.
    """
    new, final = Path(new), Path(final)
    if not final.exists() and not final.is_symlink():
        os.replace(new, final)
        return
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    _remove(old)
    os.replace(final, old)
    try:
        os.replace(new, final)
    except BaseException:
        os.replace(old, final)
        raise
    _remove(old)


@contextlib.contextmanager
def atomic_dir(path: PathLike, *, fsync: bool = True) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; when the block ends normally it becomes ``path``
    (:func:`replace_dir`: an existing folder is replaced), when it raises it is removed and ``path`` is
    untouched. ``fsync`` flushes the folders' entries to disk around the rename (the files in it are the
    writer's business). ``path``'s parent must exist.

    Raises:
        OSError: the temporary cannot be created, or the rename fails.
    """
    final = Path(path)
    tmp = temp_dir_beside(final)
    try:
        with hold(tmp):  # another run's clean-up leaves it alone while we write; once we die, it does not
            yield tmp
            if fsync:
                fsync_dir(tmp)
            replace_dir(tmp, final)
            if fsync:
                fsync_dir(final.parent if str(final.parent) else ".")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None], *, fsync: bool = True) -> None:
    """Call ``write(file)`` on a temporary file beside ``path`` (its parent folders are created), then
    rename it over ``path``. A crash or an exception never leaves a partial file under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, fsync=fsync) as tmp, open(tmp, "wb") as fh:
        write(fh)


def atomic_write_bytes(path: PathLike, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda fh: fh.write(data), fsync=fsync)


def atomic_write_text(path: PathLike, text: str, *, fsync: bool = True) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write_bytes(path, text.encode(), fsync=fsync)


def atomic_write_json(path: PathLike, data: Any, *, indent: int | None = None, fsync: bool = True) -> None:
    """Write ``data`` as JSON and a newline to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write_text(path, json.dumps(data, indent=indent) + "\n", fsync=fsync)
