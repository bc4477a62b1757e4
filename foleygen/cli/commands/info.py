"""``foleygen info``: one JSON line per media file (duration, fps, size, rotation, frames, audio)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "describe media files: one JSON object per line (duration, fps, size, frames, audio)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``foleygen info``."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="media files, or directories of them")
    parser.add_argument("-r", "--recursive", action="store_true", help="look for media files in subdirectories too")


def expand(paths: list[str], recursive: bool = False) -> list[tuple[str, str | None]]:
    """Each argument as ``(path, None)``; a directory becomes its media files, sorted by name, or
    ``(directory, problem)`` when it holds none. Entries named like media that cannot be files (broken
    links, loops, FIFOs, folders) come with their problem too."""
    from foleygen.cli.inputs import expand_folder
    from foleygen.io.media_types import MEDIA_EXTENSIONS  # by extension only: each file is still probed

    result: list[tuple[str, str | None]] = []
    for raw in paths:
        p = Path(raw)
        if not p.is_dir():
            result.append((raw, None))
            continue
        found = expand_folder(p, MEDIA_EXTENSIONS, recursive=recursive)
        if found:
            result.extend((str(e.path), e.problem) for e in found)
        else:
            where = "in it or below" if recursive else "in it (try -r for subdirectories)"
            result.append((raw, f"directory with no media files {where}"))
    return result


def run(args: argparse.Namespace) -> int:
    """Print one JSON line per file; errors go to stderr, one line each. Exit 1 if any file failed."""
    from foleygen.errors import one_line, quote_path
    from foleygen.io import probe

    failed = 0
    for path, problem in expand(args.paths, args.recursive):
        if problem is not None:
            print(f"foleygen info: error: {quote_path(path)}: {problem}", file=sys.stderr)
            failed += 1
            continue
        try:
            info = probe(path)
        except Exception as err:  # ours, or a bug met by this file: either way the others are still described
            print(f"foleygen info: error: {one_line(err, path)}", file=sys.stderr)
            failed += 1
            continue
        print(json.dumps(info.to_dict()), flush=True)
    return 1 if failed else 0
