"""The training cache: codec tokens and visual data of every clip, memory-mapped, written once.

Layout of a cache directory::

    CACHE/cache.json                      fingerprint: codec, visual encoder, duration, dtypes
    CACHE/shard-00000-of-00002/           a finished shard (renamed from ``*.partial`` when complete)
        codes.bin     flat codes, clip i at codes_offset as [K, T_i] (int16 if cardinality <= 32767)
        visual.bin    flat visual data, clip i at visual_offset as [F_i, D] float16 (frozen encoder
                      features) or [F_i, S, S, 3] uint8 (frames, for a trainable encoder)
        index.jsonl   one line per clip: id, split, label, offsets, T_i, F_i, seconds
        failures.jsonl  clips that could not be prepared, with the reason
        shard.json    summary (written last)
    CACHE/shard-00001-of-00002.partial/   a shard being written (resumable)
    CACHE/failures.jsonl                  all shards' failures (rewritten after each prepare run)

Writing is append-only: a clip's data is appended to the ``.bin`` files and flushed *before* its index
line is, so after a crash (even SIGKILL) the index names only complete clips; reopening truncates the
``.bin`` files back to the end of the last indexed clip and carries on. Training reads only this
(:class:`CacheReader`, :class:`foleygen.data.datasets.CachedClipDataset`): no video decoding.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from foleygen.atomic import atomic_write_text
from foleygen.errors import ConfigError, DataError

CACHE_FORMAT = 1
CACHE_META = "cache.json"
_SHARD = re.compile(r"^shard-(\d{5})-of-(\d{5})$")


def shard_name(index: int, count: int) -> str:
    """``shard-00001-of-00004``."""
    return f"shard-{index:05d}-of-{count:05d}"


def codes_dtype(cardinality: int) -> str:
    """Smallest signed dtype holding codes ``[0, cardinality)``: int16 up to 32767 entries."""
    return "int16" if cardinality <= 32767 else "int32"


def make_fingerprint(*, codec: dict[str, Any], visual: dict[str, Any], duration: float) -> dict[str, Any]:
    """The cache's identity, checked by the training reader.

    Args:
        codec: ``name, sample_rate, frame_rate, num_codebooks, cardinality, channels``.
        visual: ``kind, path, fps, dim, image_size, trainable`` (``store`` is derived: ``frames`` for a
            trainable encoder, else ``features``).
        duration: longest stored length per clip, in seconds.
    """
    visual = dict(visual)
    visual["store"] = "frames" if visual.get("trainable") else "features"
    return {
        "format": CACHE_FORMAT,
        "codec": dict(codec),
        "visual": visual,
        "duration": float(duration),
        "codes_dtype": codes_dtype(int(codec["cardinality"])),
        "visual_dtype": "uint8" if visual["store"] == "frames" else "float16",
    }


def _comparable(fp: dict[str, Any]) -> dict[str, Any]:
    # the codec/encoder *path* may legitimately move; the numbers and kinds define compatibility
    codec = {k: v for k, v in fp["codec"].items() if k != "name"}
    visual = {k: v for k, v in fp["visual"].items() if k != "path"}
    return {**fp, "codec": codec, "visual": visual}


def init_cache(cache_dir: str | os.PathLike[str], fingerprint: dict[str, Any]) -> Path:
    """Create ``cache_dir`` with ``cache.json``, or check that an existing cache has the same fingerprint."""
    cache_dir = Path(cache_dir)
    meta = cache_dir / CACHE_META
    if meta.is_file():
        existing = read_cache_meta(cache_dir)
        a, b = _comparable(existing), _comparable(fingerprint)
        if a != b:
            diff = _first_difference(a, b)
            raise ConfigError(
                f"the cache was made with {diff[0]} = {diff[1]!r}, this run uses {diff[2]!r}; "
                "use another cache directory",
                meta,
            )
        return cache_dir
    cache_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(meta, json.dumps(fingerprint, indent=2) + "\n")
    return cache_dir


def _first_difference(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> tuple[str, Any, Any]:
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            if va != vb:
                return _first_difference(va, vb, f"{prefix}{key}.")
        elif va != vb:
            return f"{prefix}{key}", va, vb
    return prefix or "?", None, None


def read_cache_meta(cache_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``cache.json`` of a cache directory."""
    meta = Path(cache_dir) / CACHE_META
    if not meta.is_file():
        raise DataError(f"not a foleygen cache (no {CACHE_META}; make one with `foleygen prepare`)", cache_dir)
    try:
        data = json.loads(meta.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"corrupt ({err.msg})", meta) from None
    if data.get("format") != CACHE_FORMAT:
        raise DataError(f"cache format {data.get('format')} is not {CACHE_FORMAT}", meta)
    return data


def _read_jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Complete JSON lines of ``path`` and the byte length they span (a torn last line is dropped)."""
    if not path.is_file():
        return [], 0
    raw = path.read_bytes()
    records, good = [], 0
    for line in raw.split(b"\n")[:-1]:  # the piece after the last newline is empty or torn
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
        good += len(line) + 1
    return records, good


class ShardWriter:
    """Appends clips to one shard; resumable after any crash; :meth:`finalize` publishes it.

    Args:
        cache_dir: the cache (``cache.json`` must exist: :func:`init_cache`).
        index, count: which shard of how many.
    """

    def __init__(self, cache_dir: str | os.PathLike[str], index: int, count: int) -> None:
        self.cache_dir = Path(cache_dir)
        self.meta = read_cache_meta(self.cache_dir)
        self.final = self.cache_dir / shard_name(index, count)
        self.partial = self.final.with_name(self.final.name + ".partial")
        self.complete = self.final.is_dir()
        self.done: set[str] = set()
        self.failed: set[str] = set()
        self.codes_dtype = np.dtype(self.meta["codes_dtype"])
        self.visual_dtype = np.dtype(self.meta["visual_dtype"])
        self.num_clips = 0
        if self.complete:
            records, _ = _read_jsonl(self.final / "index.jsonl")
            self.done = {r["id"] for r in records}
            self.failed = {r["id"] for r in _read_jsonl(self.final / "failures.jsonl")[0]}
            return
        self.partial.mkdir(parents=True, exist_ok=True)
        records, good = _read_jsonl(self.partial / "index.jsonl")
        self.codes_end = self.visual_end = 0
        for r in records:
            self.codes_end = max(self.codes_end, r["codes_offset"] + r["codes_size"])
            self.visual_end = max(self.visual_end, r["visual_offset"] + r["visual_size"])
        self.done = {r["id"] for r in records}
        self.num_clips = len(records)
        # Drop whatever a crash left after the last complete clip.
        self._truncate(self.partial / "index.jsonl", good)
        self._truncate(self.partial / "codes.bin", self.codes_end * self.codes_dtype.itemsize)
        self._truncate(self.partial / "visual.bin", self.visual_end * self.visual_dtype.itemsize)
        failures, fgood = _read_jsonl(self.partial / "failures.jsonl")
        self._truncate(self.partial / "failures.jsonl", fgood)
        self.failed = {r["id"] for r in failures}
        self._codes = open(self.partial / "codes.bin", "ab")  # noqa: SIM115 -- closed in finalize/close
        self._visual = open(self.partial / "visual.bin", "ab")  # noqa: SIM115
        self._index = open(self.partial / "index.jsonl", "ab")  # noqa: SIM115
        self._failures = open(self.partial / "failures.jsonl", "ab")  # noqa: SIM115

    @staticmethod
    def _truncate(path: Path, size: int) -> None:
        if path.exists() and path.stat().st_size != size:
            with open(path, "r+b") as fh:
                fh.truncate(size)

    def add(
        self, clip_id: str, codes: np.ndarray, visual: np.ndarray, *, split: str, label: str | None, seconds: float
    ) -> None:
        """Append one clip: ``codes [K, T]`` and ``visual [F, D]`` / ``[F, S, S, 3]``."""
        if self.complete:
            raise DataError("shard is already finalised", self.final)
        codes = np.ascontiguousarray(codes, dtype=self.codes_dtype)
        visual = np.ascontiguousarray(visual, dtype=self.visual_dtype)
        self._codes.write(codes.tobytes())
        self._visual.write(visual.tobytes())
        self._codes.flush()
        self._visual.flush()
        record = {
            "id": clip_id,
            "split": split,
            "label": label,
            "seconds": round(float(seconds), 6),
            "codes_offset": self.codes_end,
            "codes_size": int(codes.size),
            "codes_shape": list(codes.shape),
            "visual_offset": self.visual_end,
            "visual_size": int(visual.size),
            "visual_shape": list(visual.shape),
        }
        self._index.write((json.dumps(record) + "\n").encode())
        self._index.flush()
        self.codes_end += int(codes.size)
        self.visual_end += int(visual.size)
        self.done.add(clip_id)
        self.num_clips += 1

    def fail(self, clip_id: str, path: str, reason: str) -> None:
        """Record a clip that could not be prepared (it is skipped on resume too)."""
        self._failures.write((json.dumps({"id": clip_id, "path": path, "reason": reason}) + "\n").encode())
        self._failures.flush()
        self.failed.add(clip_id)

    def close(self) -> None:
        """Close the files without publishing (the shard stays resumable)."""
        if not self.complete:
            for fh in (self._codes, self._visual, self._index, self._failures):
                fh.close()

    def finalize(self) -> Path:
        """fsync, write ``shard.json`` and rename ``*.partial`` to the final shard name (atomic)."""
        if self.complete:
            return self.final
        for fh in (self._codes, self._visual, self._index, self._failures):
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
        summary = {
            "clips": self.num_clips,
            "failures": len(self.failed),
            "codes_elements": self.codes_end,
            "visual_elements": self.visual_end,
        }
        atomic_write_text(self.partial / "shard.json", json.dumps(summary) + "\n")
        # Not foleygen.atomic: the .partial folder is the resumable shard itself (kept across runs), not a
        # temporary to remove on failure; publishing it is this one rename.
        os.replace(self.partial, self.final)
        self.complete = True
        return self.final


def collect_failures(cache_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every shard's failures (finished or not), and rewrite ``CACHE/failures.jsonl`` with them."""
    cache_dir = Path(cache_dir)
    records: list[dict[str, Any]] = []
    for shard in sorted(cache_dir.glob("shard-*")):
        # Other shards may be running concurrently (one process per shard): a shard directory can be
        # renamed from .partial to final, or not yet hold its failures file, between glob and read.
        try:
            records.extend(_read_jsonl(shard / "failures.jsonl")[0])
        except FileNotFoundError:
            continue
    atomic_write_text(cache_dir / "failures.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    return records


@dataclass(frozen=True)
class CachedClip:
    """Where one clip lives in the cache (see ``index.jsonl``)."""

    id: str
    split: str
    label: str | None
    seconds: float
    shard: int
    codes_offset: int
    codes_shape: tuple[int, int]
    visual_offset: int
    visual_shape: tuple[int, ...]


class CacheReader:
    """Read-only view of a finished cache: clips of every shard, data as numpy memmaps.

    Args:
        cache_dir: the cache directory.
        allow_partial: also read ``*.partial`` shards' complete clips (default: every shard of the
            cache must be finished, else :class:`DataError` names the missing ones).
    """

    def __init__(self, cache_dir: str | os.PathLike[str], *, allow_partial: bool = False) -> None:
        self.cache_dir = Path(cache_dir)
        self.meta = read_cache_meta(self.cache_dir)
        self.codes_dtype = np.dtype(self.meta["codes_dtype"])
        self.visual_dtype = np.dtype(self.meta["visual_dtype"])
        finished = {}
        counts = set()
        for path in self.cache_dir.iterdir():
            m = _SHARD.match(path.name.removesuffix(".partial"))
            if not m or not path.is_dir():
                continue
            counts.add(int(m.group(2)))
            if not path.name.endswith(".partial") or allow_partial:
                finished[int(m.group(1))] = path
        if len(counts) > 1:
            raise DataError(f"shards of different splittings {sorted(counts)} in one cache", self.cache_dir)
        if not counts:
            raise DataError("cache has no shards (did `foleygen prepare` run?)", self.cache_dir)
        count = counts.pop()
        absent = [i for i in range(count) if i not in finished]
        if absent and not allow_partial:
            raise DataError(
                f"shard(s) {absent} of {count} are not finished; run `foleygen prepare ... --shard i/{count}` for them",
                self.cache_dir,
            )
        self.shard_dirs = [finished.get(i) for i in range(count)]
        self.clips: list[CachedClip] = []
        for i, shard in enumerate(self.shard_dirs):
            if shard is None:
                continue
            for r in _read_jsonl(shard / "index.jsonl")[0]:
                self.clips.append(
                    CachedClip(
                        r["id"],
                        r["split"],
                        r.get("label"),
                        float(r["seconds"]),
                        i,
                        int(r["codes_offset"]),
                        tuple(r["codes_shape"]),  # type: ignore[arg-type]
                        int(r["visual_offset"]),
                        tuple(r["visual_shape"]),
                    )
                )
        self._maps: dict[tuple[int, str], np.memmap] = {}

    @property
    def codec(self) -> dict[str, Any]:
        """The codec part of the fingerprint (sample_rate, frame_rate, num_codebooks, cardinality...)."""
        return self.meta["codec"]

    @property
    def visual(self) -> dict[str, Any]:
        """The visual part of the fingerprint (kind, fps, dim, image_size, store...)."""
        return self.meta["visual"]

    def __len__(self) -> int:
        return len(self.clips)

    def _map(self, shard: int, name: str, dtype: np.dtype) -> np.memmap:
        # Opened lazily, per process: DataLoader workers each map the files themselves.
        key = (shard, name)
        if key not in self._maps:
            self._maps[key] = np.memmap(self.shard_dirs[shard] / name, dtype=dtype, mode="r")  # type: ignore[operator]
        return self._maps[key]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_maps"] = {}  # memmaps are reopened in the worker, not pickled
        return state

    def codes(self, i: int) -> np.ndarray:
        """Codes of clip ``i``: ``[K, T_i]`` (a view into the memmap; copy before modifying)."""
        c = self.clips[i]
        n = c.codes_shape[0] * c.codes_shape[1]
        return self._map(c.shard, "codes.bin", self.codes_dtype)[c.codes_offset : c.codes_offset + n].reshape(
            c.codes_shape
        )

    def visual_data(self, i: int) -> np.ndarray:
        """Visual data of clip ``i``: features ``[F_i, D]`` float16 or frames ``[F_i, S, S, 3]`` uint8."""
        c = self.clips[i]
        n = int(np.prod(c.visual_shape))
        return self._map(c.shard, "visual.bin", self.visual_dtype)[c.visual_offset : c.visual_offset + n].reshape(
            c.visual_shape
        )

    def failures(self) -> list[dict[str, Any]]:
        """Failures recorded by the shards."""
        out: list[dict[str, Any]] = []
        for shard in self.shard_dirs:
            if shard is not None:
                out.extend(_read_jsonl(shard / "failures.jsonl")[0])
        return out

    def check(self, **expected: Any) -> None:
        """Raise :class:`ConfigError` unless the cache has the ``expected`` values.

        Keys: ``num_codebooks, cardinality, sample_rate, frame_rate, channels`` (codec) and
        ``visual_dim, fps, image_size, store, kind`` (visual); ``None`` values are not checked.
        """
        where = {
            "visual_dim": ("visual", "dim"),
            "fps": ("visual", "fps"),
            "image_size": ("visual", "image_size"),
            "store": ("visual", "store"),
            "kind": ("visual", "kind"),
        }
        for key, want in expected.items():
            if want is None:
                continue
            section, name = where.get(key, ("codec", key))
            have = self.meta[section].get(name)
            same = (
                abs(float(have) - float(want)) < 1e-6
                if isinstance(want, int | float) and isinstance(have, int | float)
                else have == want
            )
            if not same:
                raise ConfigError(
                    f"cache has {section} {name} = {have}, the model expects {want}; prepare a "
                    "cache for this model or change the model config",
                    self.cache_dir,
                )
