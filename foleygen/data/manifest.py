"""Manifests: which clips make a data set, where their files are, and their split/label.

Three sources, one result (a :class:`Manifest` of :class:`ClipEntry`):

* **VGGSound CSV**, as published (``vggsound.csv``): no header, columns
  ``youtube_id, start_seconds, label, split``. Each row is a 10 s excerpt of a YouTube video. The clips
  are looked up in a directory (``video_dir``, searched recursively) by name:

  - ``{youtube_id}_{start_seconds:06d}.mp4`` -- the naming of the common VGGSound dumps
    (e.g. ``---g-f_I2yQ_000001.mp4``); the file holds the excerpt itself (read from 0 s);
  - any ``{youtube_id}_{start}[_{end}|.000|...].{mp4,mkv,webm,avi,mov}`` whose start (padded or not)
    equals ``start_seconds`` (``abc_30_40.mp4``, ``abc_30.000_40.000.mp4``) -- the fallback;
  - ``{youtube_id}.mp4`` -- a full video: the excerpt is read from ``start_seconds``.

  Rows whose clip is not found are listed in :attr:`Manifest.missing` (reported, never fatal).
* **Generic CSV** with a header containing ``path`` and ``split`` (optional ``label``, ``id``,
  ``start``), or **JSONL** with the same keys; relative paths are relative to the manifest file.
* **SynthFoley directory**: ``NNNNN.mp4`` + ``NNNNN.json`` pairs (also one level of subfolders, e.g.
  ``train/``, ``val/``); split and seed come from the JSON.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from foleygen.utils import user_path
from foleygen.errors import DataError

#: a YouTube id is 11 characters of [A-Za-z0-9_-]; the start follows after one more separator
_YT_CLIP = re.compile(r"^(?P<id>[A-Za-z0-9_-]{11})_(?P<start>\d+)(?:\.\d+)?(?:[_.-].*)?$")


@dataclass(frozen=True)
class ClipEntry:
    """One clip of a data set.

    Attributes:
        id: unique name of the clip (``{youtube_id}_{start:06d}`` for VGGSound, the file stem otherwise).
        path: the media file.
        split: ``train``, ``test``, ``val``... as the source says.
        label: class label if any (VGGSound's text label, SynthFoley's classes of on-screen events joined by ``+``).
        start: seconds into the file where the clip starts (0 for pre-cut clips).
    """

    id: str
    path: Path
    split: str
    label: str | None = None
    start: float = 0.0


@dataclass
class Manifest:
    """The clips of a data set, plus the rows whose files were not found."""

    entries: list[ClipEntry]
    source: str
    missing: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.entries)

    def split(self, name: str | Iterable[str] | None) -> Manifest:
        """Only the clips of split(s) ``name`` (``None`` = all)."""
        if name is None:
            return self
        names = {name} if isinstance(name, str) else set(name)
        return Manifest([e for e in self.entries if e.split in names], self.source, [m for m in self.missing])

    def shard(self, index: int, count: int) -> Manifest:
        """Shard ``index`` of ``count``: every ``count``-th clip starting at ``index`` (stable order)."""
        if not 0 <= index < count:
            raise DataError(f"shard {index}/{count} is not in 0..{count - 1}")
        return Manifest(self.entries[index::count], self.source, [])


def index_video_dir(video_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Every video file under ``video_dir`` (recursively) by stem (first one wins; sorted walk)."""
    from foleygen.io.media_types import VIDEO_EXTENSIONS

    root = Path(video_dir)
    if not root.is_dir():
        raise DataError("video directory not found", root)
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in VIDEO_EXTENSIONS and path.is_file():
            found.setdefault(path.stem, path)
    return found


def read_vggsound_csv(csv_path: str | os.PathLike[str], video_dir: str | os.PathLike[str]) -> Manifest:
    """The published VGGSound CSV mapped onto the clips in ``video_dir`` (see the module docstring)."""
    csv_path = Path(csv_path)
    files = index_video_dir(video_dir)
    by_id_start: dict[tuple[str, int], Path] = {}
    for stem, path in files.items():
        m = _YT_CLIP.match(stem)
        if m:
            by_id_start.setdefault((m.group("id"), int(m.group("start"))), path)
    entries: list[ClipEntry] = []
    missing: list[str] = []
    with open(csv_path, newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh), 1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 4:
                raise DataError(f"line {lineno}: expected youtube_id,start_seconds,label,split, got {row}", csv_path)
            yid, start_text, label, split = (c.strip() for c in row[:4])
            try:
                start = int(float(start_text))
            except (ValueError, OverflowError):  # not a number, NaN, or inf
                if lineno == 1:
                    continue  # a header row some copies add
                raise DataError(f"line {lineno}: start_seconds {start_text!r} is not a number", csv_path) from None
            clip_id = f"{yid}_{start:06d}"
            path = files.get(clip_id) or by_id_start.get((yid, start))
            offset = 0.0
            if path is None and yid in files:  # the full video: cut the excerpt at read time
                path, offset = files[yid], float(start)
            if path is None:
                missing.append(clip_id)
                continue
            entries.append(ClipEntry(clip_id, path, split, label or None, offset))
    return Manifest(entries, str(csv_path), missing)


def _generic_entry(record: dict[str, object], manifest: Path, where: str) -> ClipEntry:
    """One manifest row; relative paths are relative to the manifest's folder; errors name the manifest."""
    if "path" not in record or "split" not in record:
        raise DataError(f"{where}: needs 'path' and 'split' (got {sorted(record)})", manifest)
    path = user_path(str(record["path"]))
    if not path.is_absolute():
        path = manifest.parent / path
    label = record.get("label")
    start_value = record.get("start") or 0.0
    try:
        start = float(start_value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        start = math.nan
    if not (math.isfinite(start) and start >= 0):
        raise DataError(f"{where}: start must be a number of seconds >= 0, got {start_value!r}", manifest)
    return ClipEntry(
        str(record.get("id") or path.stem),
        path,
        str(record["split"]),
        None if label in (None, "") else str(label),
        start,
    )


def read_generic_manifest(path: str | os.PathLike[str]) -> Manifest:
    """A CSV with a header (``path,split[,label,id,start]``) or a JSONL file with those keys."""
    path = Path(path)
    records: list[tuple[dict[str, object], str]] = []
    if path.suffix.lower() in (".jsonl", ".json"):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"line {lineno}: not JSON ({err.msg})", path) from None
            if not isinstance(rec, dict):
                raise DataError(f"line {lineno}: expected an object", path)
            records.append((rec, f"line {lineno}"))
    else:
        with open(path, newline="") as fh:
            for lineno, rec in enumerate(csv.DictReader(fh), 2):
                records.append(({k.strip(): (v or "").strip() for k, v in rec.items() if k}, f"line {lineno}"))
    entries, missing = [], []
    for rec, where in records:
        entry = _generic_entry(rec, path, where)
        (entries.append(entry) if entry.path.is_file() else missing.append(entry.id))
    ids = [e.id for e in entries]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataError(f"clip id {dup!r} appears twice (give an 'id' column to disambiguate)", path)
    return Manifest(entries, str(path), missing)


def read_synthfoley_dir(directory: str | os.PathLike[str]) -> Manifest:
    """A SynthFoley output directory (``NNNNN.mp4`` + ``NNNNN.json``, also in split subfolders)."""
    directory = Path(directory)
    entries, missing = [], []
    metas = sorted(directory.glob("*.json")) + sorted(directory.glob("*/*.json"))
    for meta_path in metas:
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            missing.append(str(meta_path.relative_to(directory)))
            continue
        if not isinstance(meta, dict) or "split" not in meta or "events" not in meta:
            continue  # not a clip description (e.g. a data set summary file)
        video = meta_path.with_suffix(".mp4")
        clip_id = str(meta_path.relative_to(directory).with_suffix("")).replace(os.sep, "/")
        if not video.is_file():
            missing.append(clip_id)
            continue
        # The label names what can be *seen* sounding: off-screen sounds have no object in the frames.
        classes = sorted(
            {
                str(e.get("class"))
                for e in meta.get("events", [])
                if isinstance(e, dict) and e.get("class") is not None and not e.get("offscreen")
            }
        )
        entries.append(ClipEntry(clip_id, video, str(meta["split"]), "+".join(classes) or None))
    if not entries and not missing:
        raise DataError("no SynthFoley clips (NNNNN.mp4 + NNNNN.json) here", directory)
    return Manifest(entries, str(directory), missing)


def _looks_like_vggsound(path: Path) -> bool:
    with open(path, newline="") as fh:
        for row in csv.reader(fh):
            if not row:
                continue
            if len(row) < 4:
                return False
            try:
                float(row[1])
                return True
            except ValueError:
                return row[0].strip().lower() in ("youtube_id", "ytid", "# ytid")
    return False


def load_manifest(source: str | os.PathLike[str], *, video_dir: str | os.PathLike[str] | None = None) -> Manifest:
    """Any supported manifest, detected from what ``source`` is.

    Args:
        source: a SynthFoley directory, a VGGSound CSV, or a generic CSV/JSONL manifest.
        video_dir: where VGGSound clips are (default: ``video/`` beside the CSV if present, else the
            CSV's directory).
    """
    source = Path(source)
    if source.is_dir():
        return read_synthfoley_dir(source)
    if not source.is_file():
        raise DataError("manifest not found", source)
    try:
        if source.suffix.lower() == ".csv" and _looks_like_vggsound(source):
            if video_dir is None:
                video_dir = source.parent / "video" if (source.parent / "video").is_dir() else source.parent
            return read_vggsound_csv(source, video_dir)
        return read_generic_manifest(source)
    except UnicodeDecodeError as err:  # every reader above reads text
        raise DataError(f"not a text manifest (byte {err.start} is not UTF-8)", source) from None
    except csv.Error as err:  # a field past csv's size limit, a NUL byte...
        raise DataError(f"not a CSV manifest ({err})", source) from None
    except OSError as err:  # a row naming a path the system refuses (too long...)
        raise DataError(f"cannot be used ({err.strerror or type(err).__name__})", source) from None
    except RecursionError:  # a JSONL line nested deeper than Python's stack
        raise DataError("a JSON line is nested too deeply", source) from None
