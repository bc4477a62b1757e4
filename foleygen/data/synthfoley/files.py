"""Writing SynthFoley clips to disk: ``NNNNN.mp4`` (H.264 + ALAC) and ``NNNNN.json`` (events).

Container choice: MP4 with H.264 video (libx264, yuv420p; MPEG-4 Part 2 when libx264 is missing) and
**ALAC** audio (Apple Lossless, 16-bit). ALAC in MP4 is standard, every FFmpeg-based reader decodes it,
and it is lossless: the decoded samples equal ``round(audio * 32767)`` exactly, with no encoder delay
(checked by the tests). FLAC-in-MP4 is refused by this FFmpeg's muxer, and AAC would blur the very
onsets the metrics measure. 16-bit quantisation noise (-96 dBFS) sits far below the clips' own
background noise (-62..-48 dB).

Both files are written under temporary names and renamed into place; the JSON side-car is written
last, so a clip is complete exactly when its ``.json`` exists and names the same clip (see
:func:`clip_is_complete`, which makes ``foleygen synth`` resumable).
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from foleygen.atomic import atomic_file, atomic_write_text
from foleygen.data.synthfoley.config import GENERATOR_VERSION, SynthFoleyConfig
from foleygen.data.synthfoley.generator import SynthClip
from foleygen.errors import DataError, MediaError

_VIDEO_CODECS = ("libx264", "mpeg4")


def _video_codec() -> str:
    import av

    available = av.codecs_available
    for name in _VIDEO_CODECS:
        if name in available:
            return name
    raise MediaError("this PyAV/FFmpeg build has neither libx264 nor mpeg4 encoders")


def audio_to_pcm16(audio: np.ndarray) -> np.ndarray:
    """``float32 [S]`` in [-1, 1] -> ``int16 [S]``, exactly as stored in the files."""
    return np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)


def _encode_mp4(path: Path, frames: np.ndarray, audio: np.ndarray, fps: float, sample_rate: int) -> None:
    import av

    codec = _video_codec()
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w", format="mp4") as container:
        video = container.add_stream(codec, rate=rate)
        video.width, video.height = frames.shape[2], frames.shape[1]
        video.pix_fmt = "yuv420p"
        if codec == "libx264":
            # crf 15 + veryfast: as close as crf 18 + fast and twice as fast; one thread each because
            # `synth --workers` parallelises clips
            video.options = {"crf": "15", "preset": "veryfast", "threads": "1"}
        else:
            video.options = {"qscale": "3"}
            video.codec_context.qmin, video.codec_context.qmax = 2, 4
        stream = container.add_stream("alac", rate=sample_rate)
        stream.layout = "mono"
        stream.format = "s16p"
        for frame_array in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_array), format="rgb24")
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        pcm = audio_to_pcm16(audio)[None, :]
        aframe = av.AudioFrame.from_ndarray(pcm, format="s16p", layout="mono")
        aframe.sample_rate = sample_rate
        aframe.pts = 0
        for packet in stream.encode(aframe):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def write_clip(clip: SynthClip, out_dir: str | os.PathLike[str], stem: str | None = None) -> Path:
    """Write ``out_dir/<stem>.mp4`` and ``out_dir/<stem>.json`` atomically; returns the mp4 path.

    ``stem`` defaults to the zero-padded clip index (``00042``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = stem or f"{clip.index:05d}"
    mp4 = out_dir / f"{stem}.mp4"
    try:
        with atomic_file(mp4, ".mp4", fsync=False) as tmp:
            _encode_mp4(tmp, clip.frames, clip.audio, clip.fps, clip.sample_rate)
    except MediaError:
        raise
    except Exception as err:
        raise MediaError(f"cannot write SynthFoley clip ({err})", mp4) from err
    meta = clip.metadata()
    meta["video"] = mp4.name
    atomic_write_text(out_dir / f"{stem}.json", json.dumps(meta, indent=1) + "\n")
    return mp4


def read_clip_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON side-car of a written clip (``.json`` path, or the ``.mp4`` next to it)."""
    path = Path(path).with_suffix(".json")
    if not path.is_file():
        raise DataError("SynthFoley side-car not found", path)
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"SynthFoley side-car is not valid JSON ({err})", path) from None
    missing = [k for k in ("duration", "fps", "sample_rate", "split", "seed", "index", "events") if k not in meta]
    if missing:
        raise DataError(f"SynthFoley side-car lacks {missing}", path)
    return meta


def clip_is_complete(
    out_dir: str | os.PathLike[str],
    stem: str,
    *,
    split: str | None = None,
    seed: int | None = None,
    index: int | None = None,
    config: SynthFoleyConfig | None = None,
) -> bool:
    """True when ``<stem>.json`` and ``<stem>.mp4`` exist and the side-car names this clip (and config)."""
    out_dir = Path(out_dir)
    if not (out_dir / f"{stem}.mp4").is_file():
        return False
    try:
        meta = read_clip_meta(out_dir / f"{stem}.json")
    except DataError:
        return False
    wanted: dict[str, Any] = {"split": split, "seed": seed, "index": index, "generator_version": GENERATOR_VERSION}
    if config is not None:
        wanted.update(duration=config.duration, fps=config.fps, sample_rate=config.sample_rate, size=config.size)
    return all(v is None or meta.get(k) == v for k, v in wanted.items())
