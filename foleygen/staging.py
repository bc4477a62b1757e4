"""Temporaries beside their final name: who is still writing one, and removing the ones left behind.

Every result foleygen writes is assembled under a hidden name in its destination folder and renamed
over the final name when complete (:mod:`foleygen.atomic`: ``.NAME.XXXXXXXX.tmp[.ext]`` from
:func:`foleygen.utils.temp_file_beside` and :func:`~foleygen.utils.temp_dir_beside`; older versions also
wrote ``.NAME.tmp.png`` for pictures and ``.NAME.staging-PID`` for a saved model). A process that is killed
(SIGKILL, the out-of-memory killer, a power cut) cannot remove its temporary, so the next run does:

* a writer :func:`hold`\\ s an exclusive ``flock`` on its temporary for as long as it writes; the
  kernel drops the lock when the process dies, however it dies;
* :func:`remove_stale_temporaries` removes the temporaries of our naming in a folder that nobody holds
  and that have not changed for ``grace_s`` seconds. The grace covers the instant between creating a
  temporary and locking it, and writers that do not lock (older versions, other tools).

It also finishes the two-step rename of a folder being replaced (the old one is moved to
``.NAME.old[-PID]`` first): such a folder whose ``NAME`` is missing is moved back, not deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path

# `.NAME` + optional mkstemp/mkdtemp part (8 characters of [a-z0-9_]) + `.tmp` + optional extension;
# or `.NAME.staging-PID` (where FoleyGen.save_pretrained assembled a checkpoint before foleygen.atomic).
TEMP_NAME = re.compile(r"^\.(?P<final>.+?)(?:(?:\.[a-z0-9_]{8})?\.tmp(?:\.[A-Za-z0-9]{1,8})?|\.staging-\d+)$")
# The previous version of a folder being replaced: `.NAME.old` or `.NAME.old-PID`.
OLD_NAME = re.compile(r"^\.(?P<final>.+)\.old(?:-\d+)?$")
GRACE_S = 60.0


_OURS: set[str] = set()  # temporaries this process created (some long renamed or removed)


def note_temporary(path: str | os.PathLike[str]) -> None:
    """Remember that this process created the temporary ``path``, for :func:`remove_own_temporaries`."""
    if len(_OURS) >= 256:  # forget those already renamed or removed: the set stays small
        _OURS.difference_update([p for p in list(_OURS) if not os.path.lexists(p)])
    _OURS.add(os.fspath(path))


def remove_own_temporaries() -> list[Path]:
    """Remove the temporaries this process created that are still there; return them.

    For a process being interrupted (``foleygen``'s Ctrl-C handler): every writer removes its own
    temporary when it fails, but a ``KeyboardInterrupt`` can land between the creation of a temporary
    and the ``try`` that guards it. Only names of our naming (:data:`TEMP_NAME`) are touched, never links.
    """
    removed = []
    for name in sorted(_OURS):
        path = Path(name)
        if not TEMP_NAME.match(path.name) or path.is_symlink() or not path.exists():
            continue
        if _remove(path, path.is_dir()):
            removed.append(path)
    _OURS.clear()
    return removed


@contextlib.contextmanager
def hold(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on the temporary file or folder ``path`` while the block runs.

    Another process's :func:`remove_stale_temporaries` then leaves it alone. Renaming ``path`` inside
    the block is fine (the lock is on the inode). On file systems without ``flock`` it is a no-op and
    the grace period alone protects the writer.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def _held(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return True  # cannot tell: leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False  # no flock here: the age decides
    finally:
        os.close(fd)
    return False


def _last_change(path: Path, st: os.stat_result) -> float:
    """Newest modification time of ``path`` and, for a folder, of the entries directly in it."""
    newest = st.st_mtime
    if stat.S_ISDIR(st.st_mode):
        with contextlib.suppress(OSError), os.scandir(path) as it:
            for entry in it:
                with contextlib.suppress(OSError):
                    newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
    return newest


def _remove(path: Path, is_dir: bool) -> bool:
    try:
        if is_dir:
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return False  # another process cleaned it first
    except OSError:
        return False  # not ours to remove after all (permissions): leave it
    return True


def remove_stale_temporaries(
    folder: str | os.PathLike[str], *, grace_s: float = GRACE_S, now: float | None = None
) -> list[Path]:
    """Remove the temporaries a killed writer left directly in ``folder``; return what was removed.

    Only regular files and folders named like ours (:data:`TEMP_NAME`) are touched, never links;
    only when no process holds them (:func:`hold`) and they are older than ``grace_s``. A leftover
    ``.NAME.old`` folder is removed when ``NAME`` exists, else renamed back to ``NAME``. A folder
    that cannot be listed holds nothing to remove.
    """
    root = Path(folder)
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return removed
    for entry in entries:
        temp = TEMP_NAME.match(entry.name)
        old = None if temp else OLD_NAME.match(entry.name)
        if not (temp or old):
            continue
        path = Path(entry.path)
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        is_dir = stat.S_ISDIR(st.st_mode)
        if not (is_dir or stat.S_ISREG(st.st_mode)) or (old and not is_dir):
            continue
        if now - _last_change(path, st) < grace_s or _held(path):
            continue
        if old:
            final = root / old.group("final")
            if not final.exists() and not final.is_symlink():
                with contextlib.suppress(OSError):
                    os.replace(path, final)  # the new folder never arrived: the old one is the checkpoint
                continue
        if _remove(path, is_dir):
            removed.append(path)
    return removed
