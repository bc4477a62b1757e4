"""Test media made on the fly with PyAV, shared by every test folder (``tests/`` is on ``sys.path``).

:func:`make_media` writes tiny videos whose pixels say which frame they are; :func:`write_tone_video`
writes a small mp4 with a sine (or beeping) soundtrack for the data and training tests.

Frame ``i`` is painted flat grey in two halves: the left half encodes ``i % 16`` and the right half
``i // 16`` as ``16 * k + 8``. Lossy codecs move flat grey by a level or two, far less than the 16
between codes, so :func:`frame_index` recovers ``i`` exactly from any decoded, resized frame.
Frames narrower than 2 pixels carry only ``i % 16``; wider ones carry ``i % 256`` (tests stay below 256 frames).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def code(k: int) -> int:
    return 16 * k + 8


def decode_code(value: float) -> int:
    return int(round((float(value) - 8) / 16))


def paint(i: int, width: int, height: int) -> np.ndarray:
    """RGB image [H, W, 3] for frame ``i``."""
    img = np.empty((height, width, 3), np.uint8)
    if width < 2:
        img[:] = code(i % 16)
        return img
    half = width // 2
    img[:, :half] = code(i % 16)
    img[:, half:] = code((i // 16) % 16)
    return img


def frame_index(img, two_halves: bool = True) -> int:
    """Inverse of :func:`paint` for an [H, W, 3] image (numpy or torch), sampling the middle of each half."""
    img = np.asarray(img)
    h, w = img.shape[:2]
    if not two_halves or w < 4:
        return decode_code(img[h // 2, w // 2].mean())
    left = img[h // 2, w // 4].mean()
    right = img[h // 2, (3 * w) // 4].mean()
    return decode_code(left) + 16 * decode_code(right)


def expected_indices(src_times: Sequence[Fraction], fps: Fraction | float, n_out: int, start: float = 0.0) -> list[int]:
    """The frame-picking rule, in exact arithmetic: latest source frame with time <= start + i / fps."""
    fps = Fraction(fps)
    start_f = Fraction(start).limit_denominator(10**6)  # the decimal the caller meant, not its binary float
    picked = []
    for i in range(n_out):
        t = start_f + i / fps
        j = 0
        for k, p in enumerate(src_times):
            if p <= t:
                j = k
        picked.append(j)
    return picked


@dataclass
class Made:
    path: Path
    times: list[Fraction]  # presentation time of each source frame (exact, as stored)
    audio: np.ndarray | None  # int16 [C, S] that was encoded (None: no audio)


def _audio_signal(sample_rate: int, channels: int, seconds: float) -> np.ndarray:
    """Deterministic int16 [C, S]: a different saw-tooth per channel (sample-exact checks)."""
    n = round(seconds * sample_rate)
    t = np.arange(n)
    rows = [(((t * (c + 3)) % 401) - 200) * 60 for c in range(channels)]
    return np.stack(rows).astype(np.int16)


def _write_audio_stream(container, stream, audio: np.ndarray, sample_rate: int, offset: int = 0) -> None:
    layout = {1: "mono", 2: "stereo"}[audio.shape[0]]
    block = 4096
    for pos in range(0, audio.shape[1], block):
        part = np.ascontiguousarray(audio[:, pos : pos + block].T).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(part, format="s16", layout=layout)
        frame.sample_rate = sample_rate
        frame.pts = offset + pos
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def make_media(
    path: Path,
    *,
    fps: Fraction | int | None = 25,
    duration: float = 1.0,
    size: tuple[int, int] = (32, 24),
    codec: str | None = None,
    times: Sequence[float] | None = None,
    rotation: int | None = None,
    audio_rate: int | None = None,
    audio_channels: int = 1,
    audio_codec: str | None = None,
    audio_duration: float | None = None,
    audio_offset: float = 0.0,
    gop: int | None = None,
    bframes: bool = False,
) -> Made:
    """Write a test file. ``size`` is (width, height). ``fps=None`` makes an audio-only file.

    ``times`` (seconds) gives variable-frame-rate timestamps instead of ``i / fps``; ``rotation`` is
    the clockwise display rotation written as a display matrix; ``audio_offset`` (seconds) starts the
    audio after the video; ``gop`` sets the keyframe interval (frames) so that seeking has keyframes;
    ``bframes`` makes H.264 reorder frames (decode order != presentation order, negative first DTS).
    """
    ext = path.suffix.lower()
    width, height = size
    if codec is None:
        odd = width % 2 or height % 2
        codec = "ffv1" if ext == ".mkv" or odd else "libx264"
    if audio_codec is None and audio_rate:
        audio_codec = {".mp4": "aac", ".mkv": "flac", ".wav": "pcm_s16le", ".flac": "flac"}.get(ext, "aac")
    src_times: list[Fraction] = []
    audio = None
    with av.open(str(path), "w") as container:
        audio_stream = None
        if audio_rate:  # every stream must exist before the first packet is written
            layout = {1: "mono", 2: "stereo"}[audio_channels]
            audio_stream = container.add_stream(audio_codec, rate=audio_rate, layout=layout)
        if fps is not None:
            rate = Fraction(fps)
            if times is None:
                n = round(duration * rate)
                tb = 1 / rate
                pts = list(range(n))
            else:
                tb = Fraction(1, 90000)
                pts = [round(Fraction(t) / tb) for t in times]
            stream = container.add_stream(codec, rate=rate)
            stream.width, stream.height = width, height
            stream.pix_fmt = "yuv444p" if codec == "ffv1" else "yuv420p"
            stream.codec_context.time_base = tb
            if codec == "libx264":
                preset = {"preset": "fast", "bf": "3"} if bframes else {"preset": "ultrafast"}
                stream.options = {**preset, "crf": "10"}
            if gop is not None:
                stream.codec_context.gop_size = gop
            if rotation:
                stream.set_display_rotation(-rotation)  # PyAV takes counter-clockwise degrees
            for i, p in enumerate(pts):
                frame = av.VideoFrame.from_ndarray(paint(i, width, height), format="rgb24")
                frame.pts = p
                frame.time_base = tb
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
            src_times = [p * tb for p in pts]
        if audio_rate:
            audio = _audio_signal(audio_rate, audio_channels, audio_duration or duration)
            _write_audio_stream(container, audio_stream, audio, audio_rate, round(audio_offset * audio_rate))
    return Made(path, src_times, audio)


def write_tone_video(
    path: Path,
    seconds: float = 1.0,
    fps: int = 10,
    size: int = 32,
    sr: int = 16000,
    freq: float = 440.0,
    audio: bool = True,
    beep_every: int | None = None,
) -> Path:
    """A small mp4: mpeg4 video + AAC sine at ``freq`` (``audio=False``: no audio stream).

    ``beep_every=None``: the frame brightness ramps (``20 * i % 255``) and the sine is continuous.
    ``beep_every=N``: frames ``0, N, 2N, ...`` flash bright and the sine sounds only during them, so
    sound and picture are in sync (what a model trained on these clips can learn).
    """
    with av.open(str(path), "w") as c:
        vs = c.add_stream("mpeg4", rate=fps)
        vs.width = vs.height = size
        vs.pix_fmt = "yuv420p"
        aus = c.add_stream("aac", rate=sr) if audio else None
        if aus is not None:
            aus.layout = "mono"
        for i in range(round(seconds * fps)):
            level = (i * 20) % 255 if beep_every is None else 40 + 200 * (i % beep_every == 0)
            img = np.full((size, size, 3), level, np.uint8)
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        if aus is not None:
            t = np.arange(round(seconds * sr)) / sr
            if beep_every is None:
                wav = 0.3 * np.sin(2 * np.pi * freq * t)
            else:
                gate = ((t * fps).astype(int) % beep_every == 0).astype(np.float32)
                wav = 0.4 * gate * np.sin(2 * np.pi * freq * t)
            wav = wav.astype(np.float32)
            for s in range(0, len(wav), 1024):
                frame = av.AudioFrame.from_ndarray(wav[None, s : s + 1024], format="fltp", layout="mono")
                frame.sample_rate, frame.pts = sr, s
                for p in aus.encode(frame):
                    c.mux(p)
            for p in aus.encode():
                c.mux(p)
    return path
