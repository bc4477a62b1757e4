"""Video files -> visual features, one file or a resumable directory of ``.npy`` files.

Frames are read by :func:`foleygen.vision.frames.read_encoder_frames`, the one rule shared with
``prepare`` and generation (time: the encoder's ``input_fps`` by timestamp; space: what the encoder's
``preprocess`` takes), so features written here equal those :class:`foleygen.FoleyGen` computes.

Memory stays bounded on long videos: when the encoder allows it (``encoder.chunk_multiple``), the
video is read and encoded ``chunk_frames`` input frames at a time (rounded to a multiple of
``chunk_multiple``) with the same result as a single pass.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from foleygen.errors import ConfigError, FoleyGenError
from foleygen.vision.base import VisualEncoder

log = logging.getLogger(__name__)

META_NAME = "features.json"


def extract_features(
    video_path: str | os.PathLike[str],
    encoder: VisualEncoder,
    *,
    start: float = 0.0,
    duration: float | None = None,
    chunk_frames: int = 256,
) -> torch.Tensor:
    """Features of one video -> ``float32 [F', D]`` at ``encoder.fps``.

    Args:
        video_path: a video file.
        encoder: any :class:`VisualEncoder` (frozen ones run under inference mode).
        start: seconds from the video stream's start.
        duration: seconds to encode; default the rest of the video. ``F = round(duration *
            input_fps)`` frames are read, ``F' = encoder.num_features(F)`` features returned.
        chunk_frames: input frames per read + encode step when the encoder allows chunking.

    Raises:
        MediaError: unreadable video (from :mod:`foleygen.io`).
    """
    from foleygen.io import probe  # imported lazily: foleygen.io pulls in PyAV
    from foleygen.vision.frames import read_encoder_frames

    fps = float(encoder.input_fps)
    info = probe(video_path)
    if duration is None:
        duration = max(float(info.duration or 0.0) - start, 0.0)
    total = max(1, round(duration * fps))
    step = _chunk_length(encoder, chunk_frames, total)
    outs = []
    for first in range(0, total, step):
        n = min(step, total - first)
        frames = read_encoder_frames(video_path, encoder, start=start + first / fps, duration=n / fps, info=info)
        if frames.shape[0] != n:  # a reader that rounds differently must not shift later chunks silently
            raise ConfigError(f"read {frames.shape[0]} frames, expected {n}", video_path)
        outs.append(encoder.encode(frames[None])[0].float())
    return torch.cat(outs)


def _chunk_length(encoder: VisualEncoder, chunk_frames: int, total: int) -> int:
    multiple = encoder.chunk_multiple
    if multiple is None:
        return total
    return max(multiple, (int(chunk_frames) // multiple) * multiple)


@dataclass
class ExtractionReport:
    """What :func:`extract_features_to_dir` did: output paths written, inputs skipped (already done),
    and ``(input, one-line error)`` for files that failed."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def _encoder_meta(encoder: VisualEncoder) -> dict[str, object]:
    return {
        "encoder": type(encoder).__name__,
        "fps": float(encoder.fps),
        "input_fps": float(encoder.input_fps),
        "dim": int(encoder.dim),
        "image_size": int(encoder.image_size),
    }


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    from foleygen.atomic import atomic_write

    atomic_write(path, lambda fh: np.save(fh, array))


def extract_features_to_dir(
    videos: Iterable[str | os.PathLike[str]],
    encoder: VisualEncoder,
    out_dir: str | os.PathLike[str],
    *,
    names: Sequence[str] | None = None,
    dtype: str = "float32",
    **kwargs: object,
) -> ExtractionReport:
    """Write ``out_dir/<name>.npy`` (``[F', D]``) for each video; resumable and fault tolerant.

    * Resumable: a video whose ``.npy`` exists is skipped. Files are written to a temporary name and
      renamed, so an interrupted run never leaves a truncated ``.npy`` under the final name.
    * A video that cannot be read (any :class:`FoleyGenError`) is logged and listed in
      ``report.failed``; the others go on.
    * ``out_dir/features.json`` records the encoder (class, fps, dim); reusing the directory with an
      encoder that disagrees raises :class:`ConfigError` instead of mixing features.

    Args:
        videos: video paths.
        encoder: the visual encoder.
        out_dir: output directory (created).
        names: output names (default: each video's file stem; they must be unique).
        dtype: stored dtype (``"float32"`` or ``"float16"``).
        kwargs: passed to :func:`extract_features` (``start``, ``duration``, ``chunk_frames``).
    """
    videos = [Path(v) for v in videos]
    names = list(names) if names is not None else [v.stem for v in videos]
    if len(names) != len(videos):
        raise ConfigError(f"{len(names)} names for {len(videos)} videos")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"output names are not unique: {dupes[:3]} (pass names=...)")
    if dtype not in ("float32", "float16"):
        raise ConfigError(f"dtype must be float32 or float16, got {dtype!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = dict(_encoder_meta(encoder), dtype=dtype)
    meta_path = out / META_NAME
    if meta_path.is_file():
        old = json.loads(meta_path.read_text())
        if old != meta:
            raise ConfigError(f"holds features of another encoder ({old}); use a new directory", out)
    else:
        from foleygen.atomic import atomic_write_text

        atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")
    report = ExtractionReport()
    for video, name in zip(videos, names, strict=True):
        target = out / f"{name}.npy"
        if target.is_file():
            report.skipped.append(video)
            continue
        try:
            feats = extract_features(video, encoder, **kwargs)
        except FoleyGenError as err:
            log.warning("skipping %s", err)
            report.failed.append((video, str(err)))
            continue
        if not math.isfinite(float(feats.float().abs().sum())):
            report.failed.append((video, f"{video}: non-finite features"))
            continue
        _atomic_save_npy(target, feats.cpu().numpy().astype(dtype))
        report.written.append(target)
    return report
