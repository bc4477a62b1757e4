"""Where the SynthFoley recipe's onset terms get their targets: onsets of the true audio, impacts of events.

Onsets of the true audio (:func:`load_or_compute_onsets`): the cache's own codes, decoded with the run's
codec, through the evaluation's onset detector (:func:`foleygen.eval.onsets.detect_onsets`). So any cache
works, without annotations, and the onsets are those the codec can reproduce. They are computed once per
cache and detector and kept beside the cache in ``onsets.json`` (a read-only cache just recomputes them
each run). From them: per-frame weights of the codes' loss around each onset
(:func:`onset_frame_weights`) and per-video-frame onset targets (:func:`onset_frame_targets`).

Impacts with their classes (:func:`load_clip_impacts`): SynthFoley's event files (time, class, on screen or
not), where a data set knows *what* made each sound; from them, per-video-frame class targets
(:func:`onset_class_targets`). Why each target helps: :mod:`foleygen.train.recipes.synthfoley.onsets`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foleygen.atomic import atomic_write_text
from foleygen.data.cache import CacheReader
from foleygen.eval.onsets import OnsetDetectorConfig, detect_onsets

SIDECAR = "onsets.json"


def compute_onsets(
    reader: CacheReader,
    decode: Callable[[torch.Tensor], torch.Tensor],
    sample_rate: int,
    *,
    batch_size: int = 32,
    detector: OnsetDetectorConfig | None = None,
) -> dict[str, list[float]]:
    """Onset times (s) of every clip of ``reader``: ``{clip id: [t0, t1, ...]}``.

    ``decode(codes int64 [B, K, T]) -> wav [B, C, S]`` turns the cached codes into audio; clips of one
    batch have one length (clips are grouped by their code length).
    """
    by_length: dict[int, list[int]] = {}
    for i, clip in enumerate(reader.clips):
        by_length.setdefault(int(clip.codes_shape[1]), []).append(i)
    out: dict[str, list[float]] = {}
    for indices in by_length.values():
        for s in range(0, len(indices), max(1, batch_size)):
            group = indices[s : s + max(1, batch_size)]
            codes = torch.stack([torch.from_numpy(np.asarray(reader.codes(i), dtype=np.int64)) for i in group])
            with torch.inference_mode():
                wav = decode(codes).float().cpu().numpy()  # [B, C, S]
            for i, w in zip(group, wav, strict=True):
                times = detect_onsets(w, sample_rate, detector)
                out[reader.clips[i].id] = [round(float(t), 4) for t in times]
    return out


def codec_key(path: str) -> str:
    """The name that keys a codec's onsets in the sidecar: one codec directory named two ways (relative,
    absolute, through a link) is one key, so neither run recomputes and overwrites the other's onsets."""
    where = Path(path)
    return str(where.resolve()) if where.exists() else path


def _sidecar_key(codec_name: str, detector: OnsetDetectorConfig) -> dict[str, Any]:
    return {"codec": codec_name, "detector": asdict(detector)}


def load_or_compute_onsets(
    reader: CacheReader,
    decode: Callable[[torch.Tensor], torch.Tensor],
    sample_rate: int,
    codec_name: str,
    *,
    batch_size: int = 32,
    detector: OnsetDetectorConfig | None = None,
) -> dict[str, list[float]]:
    """:func:`compute_onsets`, read from the cache's ``onsets.json`` when it was made with the same codec
    and detector and covers every clip; otherwise computed and written there (atomically; skipped when
    the cache directory is read-only)."""
    detector = detector or OnsetDetectorConfig()
    key = _sidecar_key(codec_name, detector)
    path = Path(reader.cache_dir) / SIDECAR
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError):
            stored = {}
        clips = stored.get("clips") or {}
        if stored.get("key") == key and all(c.id in clips for c in reader.clips):
            return {c.id: list(clips[c.id]) for c in reader.clips}
    onsets = compute_onsets(reader, decode, sample_rate, batch_size=batch_size, detector=detector)
    try:
        atomic_write_text(path, json.dumps({"key": key, "clips": onsets}))
    except OSError:  # a read-only cache (or a full disk): use the onsets of this run only (no debris is left)
        pass
    return onsets


def onset_frame_weights(
    onsets: Sequence[Sequence[float]],
    starts: Sequence[float],
    num_frames: int,
    frame_rate: float,
    *,
    weight: float,
    before: float,
    after: float,
) -> torch.Tensor:
    """Per-frame loss weights ``float [B, T]`` (``T = num_frames``) of a batch of crops.

    Args:
        onsets: per clip, its onset times (s) from the clip's start.
        starts: per clip, where its crop starts (s) in the clip.
        num_frames: audio frames per crop.
        frame_rate: audio frames per second; frame ``t`` spans ``[t, t + 1) / frame_rate``.
        weight: a frame near an onset weighs ``1 + weight`` (0: all frames weigh 1).
        before / after: seconds before / after an onset that count as near it.

    A frame is near an onset at time ``o`` (crop time) when it overlaps ``[o - before, o + after)``.
    """
    weights = torch.ones(len(onsets), num_frames)
    if weight <= 0:
        return weights
    for b, (times, start) in enumerate(zip(onsets, starts, strict=True)):
        for t in times:
            o = float(t) - float(start)
            # (the epsilon keeps float noise such as 0.56 * 50 = 28.000000000000004 off the frame count)
            first = int(np.floor((o - before) * frame_rate + 1e-6))
            last = int(np.ceil((o + after) * frame_rate - 1e-6))  # exclusive
            first, last = max(first, 0), min(last, num_frames)
            if first < last:
                weights[b, first:last] = 1.0 + weight
    return weights


def _video_frame(time: float, start: float, fps: float) -> int:
    """The video frame of a crop starting at ``start`` s that holds clip time ``time`` s (may lie outside
    the crop); the epsilon keeps float noise such as 0.29 * 100 = 28.999999999999996 off the frame."""
    return int(np.floor((float(time) - float(start)) * fps + 1e-6))


def onset_frame_targets(
    onsets: Sequence[Sequence[float]], starts: Sequence[float], num_frames: int, fps: float
) -> torch.Tensor:
    """Per video frame, whether an onset falls in it: ``float [B, F]`` (``F = num_frames``) of 0 and 1.

    Args:
        onsets: per clip, its onset times (s) from the clip's start.
        starts: per clip, where its crop starts (s) in the clip.
        num_frames: video frames per crop.
        fps: video frames per second; frame ``f`` spans ``[f, f + 1) / fps`` of crop time.
    """
    targets = torch.zeros(len(onsets), num_frames)
    for b, (times, start) in enumerate(zip(onsets, starts, strict=True)):
        for t in times:
            f = _video_frame(t, start, fps)
            if 0 <= f < num_frames:
                targets[b, f] = 1.0
    return targets


def load_clip_impacts(events_dir: str | Path, clip_ids: Sequence[str]) -> dict[str, list[tuple[float, str]]]:
    """On-screen impacts of each clip, ``{clip id: [(time s, class), ...]}``, from ``<events_dir>/<id>.json``.

    Off-screen impacts are left out (the video cannot show them) and so are continuous sounds (rolling,
    spinning: no instant to point at). A clip without an event file is left out of the result (its
    frames then add nothing to the loss); :class:`DataError` names an unreadable file, and the
    directory when no clip has one.
    """
    from foleygen.errors import DataError

    root = Path(events_dir)
    out: dict[str, list[tuple[float, str]]] = {}
    for clip_id in clip_ids:
        path = root / f"{clip_id}.json"
        if not path.is_file():
            continue
        try:
            events = json.loads(path.read_text())["events"]
            out[clip_id] = [
                (float(e["time"]), str(e["class"]))
                for e in events
                if e.get("kind", "impact") == "impact" and not e.get("offscreen", False)
            ]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DataError(f"not a readable event file ({err})", path) from err
    if clip_ids and not out:
        raise DataError(f"no event file <clip id>.json for any of the {len(clip_ids)} clips", root)
    return out


def onset_class_targets(
    impacts: Sequence[Sequence[tuple[float, str]] | None],
    starts: Sequence[float],
    num_frames: int,
    fps: float,
    class_index: dict[str, int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per video frame, which classes have an impact within it: ``(targets float [B, F, C], known bool [B])``.

    Args:
        impacts: per clip, its ``(time s, class)`` impacts from the clip's start (``None``: not known,
            e.g. no event file; the clip's ``known`` is then False).
        starts: per clip, where its crop starts (s) in the clip.
        num_frames: video frames per crop (``F``).
        fps: video frames per second; frame ``f`` spans ``[f, f + 1) / fps`` of crop time.
        class_index: class name -> column (``C = len(class_index)``); other classes are ignored.
    """
    targets = torch.zeros(len(impacts), num_frames, len(class_index))
    known = torch.tensor([i is not None for i in impacts], dtype=torch.bool)
    for b, (events, start) in enumerate(zip(impacts, starts, strict=True)):
        for t, name in events or ():
            f = _video_frame(t, start, fps)
            if 0 <= f < num_frames and name in class_index:
                targets[b, f, class_index[name]] = 1.0
    return targets, known
