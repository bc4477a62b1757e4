"""Folders given on the command line, expanded into the files to work on (``info``, ``generate``).

Matching is by extension. Every entry named like a media file is kept, whatever it turns out to be:
a broken link, a symbolic link loop, a FIFO or a folder called ``x.mp4`` comes back with the reason
it cannot be used, so that the command reports it (one line) and counts it as failed instead of
dropping it without a word. Listing never opens a file, so a FIFO cannot block it.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Entry:
    """One file found in a folder, or a problem met while looking.

    ``problem`` is None for a candidate (still to be opened, which may fail later); otherwise it is
    the one-line reason, and ``path`` the file or folder it is about.
    """

    path: Path
    problem: str | None = None


def _problem(path: Path) -> str | None:
    from foleygen.io._common import not_a_file_problem

    return not_a_file_problem(path)


def expand_folder(folder: Path, extensions: Collection[str], *, recursive: bool = True) -> list[Entry]:
    """The entries of ``folder`` whose (lower-cased) suffix is in ``extensions``, sorted by path.

    Subfolders are searched when ``recursive``; symbolic links to folders are followed, each real
    folder once (a link back to a parent is not a loop). A subfolder that cannot be listed is an
    entry with a problem. The result is empty when nothing matched (the caller words that case).
    """
    entries: list[Entry] = []
    seen: set[tuple[int, int]] = set()

    def walk(directory: Path) -> None:
        try:
            st = directory.stat()
            if (st.st_dev, st.st_ino) in seen:
                return
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(directory) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as err:
            entries.append(Entry(directory, f"cannot list folder ({err.strerror or type(err).__name__})"))
            return
        for child in children:
            path = Path(child.path)
            try:
                is_dir = child.is_dir()  # follows links; False for a broken link or a loop
            except OSError:
                is_dir = False
            if os.path.splitext(child.name)[1].lower() in extensions:
                # A folder named like a video is reported; its contents are still searched below.
                entries.append(Entry(path, _problem(path)))
            if is_dir and recursive:
                walk(path)

    walk(folder)
    return sorted(entries, key=lambda e: str(e.path))
