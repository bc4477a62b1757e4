"""Onset-weighted code loss: the audio frames around each sound onset count more in the LM's loss.

Why: in Foley the instants that matter are the impacts. A struck object's first 100 ms decide what it
sounds like (the LM keeps to a timbre once it has started one) and when it sounds; the frames of ringing
tails and silence around them are far more numerous and easy to predict, so a plain per-frame average
spends most of its gradient on them. Weighting the frames from ``before`` seconds ahead of each onset
to ``after`` seconds past it by ``1 + weight`` puts the loss where a listener's attention is: the
pre-onset frames teach not to strike early, the post-onset frames teach the timbre.

Where onsets come from: the cache's own codes, decoded with the run's codec, through the evaluation's
onset detector (:func:`foleygen.eval.onsets.detect_onsets`). So any cache works, without annotations,
and the onsets are those the codec can reproduce. They are computed once per cache and detector and
kept beside the cache in ``onsets.json`` (a read-only cache just recomputes them each run).

The same onsets also give a jointly trained visual encoder a signal of its own (``visual_weight > 0``,
used by :mod:`foleygen.train.lm_task`): a small head on the visual features predicts, for every video
frame, whether the true audio has an onset within that frame (:func:`onset_frame_targets`). Through the
codes' loss alone the encoder learns *when* things hit only once the LM has learnt to listen to it,
which takes most of a CPU budget; the frame targets tell it directly from the first step, again
without annotations.

Where a data set knows *what* made each sound (SynthFoley's event files: time, class, on screen or not),
the encoder can be told that too (``class_weight > 0`` with ``events`` naming the directory of those
files): a second head predicts, for every video frame, which classes have an on-screen impact within
it (:func:`onset_class_targets`). The clip labels say which objects a clip holds; only these frame
targets say which of them is the one hitting now, which the codes' loss alone teaches only after
thousands of steps (the timbre of the right object at the right frame is what class accuracy scores).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foleygen.config import atomic_write_text
from foleygen.data.cache import CacheReader
from foleygen.errors import ConfigError
from foleygen.eval.onsets import OnsetDetectorConfig, detect_onsets

SIDECAR = "onsets.json"


@dataclass
class OnsetLossConfig:
    """``onsets:`` of an LM training config (see the module docstring).

    Attributes:
        weight: extra weight of the frames near an onset (a frame counts ``1 + weight``; 0 = off).
        before: seconds before an onset that count as near it.
        after: seconds after an onset that count as near it.
        batch_size: clips decoded at once when the onsets are first computed.
        visual_weight: weight of the visual onset loss (see the module docstring; 0 = off). Needs a
            jointly trained (``compact``) visual encoder.
        class_weight: weight of the visual onset-class loss (see the module docstring; 0 = off). Needs
            a jointly trained encoder and ``events``.
        events: directory of per-clip event files, ``<events>/<clip id>.json`` in SynthFoley's format
            (``{"events": [{"time", "class", "kind", "offscreen"}, ...]}``; ``foleygen synth``'s output).
    """

    weight: float = 0.0
    before: float = 0.06
    after: float = 0.1
    batch_size: int = 32
    visual_weight: float = 0.0
    class_weight: float = 0.0
    events: str | None = None

    def __post_init__(self) -> None:
        if min(self.weight, self.before, self.after, self.visual_weight, self.class_weight) < 0:
            got = f"{self.weight}, {self.before}, {self.after}, {self.visual_weight}, {self.class_weight}"
            raise ConfigError(f"onsets: weight, before, after, visual_weight and class_weight must be >= 0 (got {got})")
        if self.class_weight > 0 and not self.events:
            raise ConfigError("onsets.class_weight > 0 needs onsets.events: the directory of the clips' event files")


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
    config: OnsetLossConfig,
) -> torch.Tensor:
    """Per-frame loss weights ``float [B, T]`` (``T = num_frames``) of a batch of crops.

    Args:
        onsets: per clip, its onset times (s) from the clip's start.
        starts: per clip, where its crop starts (s) in the clip.
        num_frames: audio frames per crop.
        frame_rate: audio frames per second; frame ``t`` spans ``[t, t + 1) / frame_rate``.
        config: weight and window.

    A frame is near an onset at time ``o`` (crop time) when it overlaps ``[o - before, o + after)``.
    """
    weights = torch.ones(len(onsets), num_frames)
    if config.weight <= 0:
        return weights
    for b, (times, start) in enumerate(zip(onsets, starts, strict=True)):
        for t in times:
            o = float(t) - float(start)
            # (the epsilon keeps float noise such as 0.56 * 50 = 28.000000000000004 off the frame count)
            first = int(np.floor((o - config.before) * frame_rate + 1e-6))
            last = int(np.ceil((o + config.after) * frame_rate - 1e-6))  # exclusive
            first, last = max(first, 0), min(last, num_frames)
            if first < last:
                weights[b, first:last] = 1.0 + config.weight
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
