"""``read_frames``: video frames sampled at a fixed rate by presentation timestamp.

The rule: output frame ``i`` is the source frame *being shown* at time ``t_i = start + i / fps``
(seconds from the video stream's start), i.e. the latest source frame whose timestamp is
``<= t_i``. This is what a viewer sees at that instant, whatever the source rate (fractional
NTSC rates, variable frame rate, duplicated or dropped frames). Before the first source frame the
first frame is used; past the last one, the last frame is held.

Decoding streams: each source frame is converted (scaled, cropped, rotated) only when it is
picked, straight into a preallocated output array, so memory is the output plus one decoded frame.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import av
import numpy as np
import torch

from foleygen.errors import MediaError
from foleygen.io._common import (
    PathLike,
    ffmpeg_message,
    open_input,
    rate_of,
    rotation_from_frame,
    rotation_from_tag,
    start_seconds,
    stream_duration,
    video_geometry,
    video_stream,
)

Size = int | tuple[int, int] | None


class _SeekOvershot(Exception):
    """The demuxer landed after the wanted time; decode from the beginning instead."""


class _Plan:
    """How one decoded frame becomes one output image.

    Scale the coded frame to ``(coded_w, coded_h)`` (swscale, antialiased when shrinking), turn it
    ``quarter_turns_ccw`` times (display rotation), then crop ``crop_y/crop_x`` off (mode "crop") or
    paste it at ``pad_y/pad_x`` into black bars (mode "letterbox").
    """

    def __init__(self, src_w: int, src_h: int, disp_w: int, disp_h: int, rotation: int, size: Size, mode: str) -> None:
        if size is None:
            out_h, out_w = disp_h, disp_w
        elif isinstance(size, int):
            out_h = out_w = size
        else:
            out_h, out_w = size
        self.out_h, self.out_w = out_h, out_w
        if size is None:
            scaled_w, scaled_h = disp_w, disp_h
        elif mode == "crop":
            # Cover the target box, then cut the overflow evenly on both sides.
            scale = max(out_h / disp_h, out_w / disp_w)
            scaled_w = max(out_w, round(disp_w * scale))
            scaled_h = max(out_h, round(disp_h * scale))
        else:
            # Fit inside the target box; the rest stays black.
            scale = min(out_h / disp_h, out_w / disp_w)
            scaled_w = min(out_w, max(1, round(disp_w * scale)))
            scaled_h = min(out_h, max(1, round(disp_h * scale)))
        self.scaled_w, self.scaled_h = scaled_w, scaled_h
        self.crop_y = max(0, (scaled_h - out_h) // 2)
        self.crop_x = max(0, (scaled_w - out_w) // 2)
        self.pad_y = max(0, (out_h - scaled_h) // 2)
        self.pad_x = max(0, (out_w - scaled_w) // 2)
        swap = rotation in (90, 270)
        self.coded_w, self.coded_h = (scaled_h, scaled_w) if swap else (scaled_w, scaled_h)
        # np.rot90 turns counter-clockwise; a clockwise display rotation r is (360 - r) / 90 turns.
        self.quarter_turns_ccw = (-rotation // 90) % 4
        shrinking = self.coded_w < src_w or self.coded_h < src_h
        # AREA averages every source pixel when shrinking (no aliasing of fine detail); bicubic
        # is the better interpolator when enlarging.
        self.interpolation = "AREA" if shrinking else "BICUBIC"

    def render(self, frame: av.VideoFrame, out: np.ndarray) -> None:
        """Write ``frame`` as an RGB image into ``out`` ([out_h, out_w, 3] uint8, pre-zeroed)."""
        if (frame.width, frame.height) == (self.coded_w, self.coded_h):
            # Already the wanted size (checked per frame: a stream may change resolution midway).
            img = frame.to_ndarray(format="rgb24")
        else:
            img = frame.reformat(
                width=self.coded_w, height=self.coded_h, format="rgb24", interpolation=self.interpolation
            ).to_ndarray()
        if self.quarter_turns_ccw:
            img = np.rot90(img, self.quarter_turns_ccw)
        img = img[self.crop_y : self.crop_y + self.out_h, self.crop_x : self.crop_x + self.out_w]
        out[self.pad_y : self.pad_y + img.shape[0], self.pad_x : self.pad_x + img.shape[1]] = img


def _check_args(fps: float, size: Size, mode: str, start: float, duration: float | None, path: PathLike) -> None:
    if not (isinstance(fps, numbers.Real) and math.isfinite(fps) and fps > 0):
        raise MediaError(f"fps must be a positive number, got {fps!r}", path)
    if mode not in ("crop", "letterbox"):
        raise MediaError(f"mode must be 'crop' or 'letterbox', got {mode!r}", path)
    if size is not None:
        dims = (size,) if isinstance(size, int) else tuple(size)
        if len(dims) not in (1, 2) or not all(isinstance(d, int) and d > 0 for d in dims):
            raise MediaError(f"size must be a positive int or (height, width), got {size!r}", path)
    if not (math.isfinite(start) and start >= 0):
        raise MediaError(f"start must be >= 0 seconds, got {start!r}", path)
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise MediaError(f"duration must be > 0 seconds, got {duration!r}", path)


@dataclass(frozen=True)
class FrameRequest:
    """One frame sequence to cut from a decoding pass (see :func:`read_frames_at`).

    ``fps``, ``size`` and ``mode`` as for :func:`read_frames`; ``duration``: seconds to read (None:
    the rest of the video stream).
    """

    fps: float
    size: Size = None
    mode: Literal["crop", "letterbox"] = "crop"
    duration: float | None = None


def read_frames(
    path: PathLike,
    fps: float,
    size: Size = None,
    *,
    mode: Literal["crop", "letterbox"] = "crop",
    start: float = 0.0,
    duration: float | None = None,
) -> torch.Tensor:
    """Frames of a video at ``fps``, picked by presentation timestamp.

    Args:
        path: a video file.
        fps: output frame rate.
        size: ``None`` keeps the displayed size; an int gives a square ``size x size``; ``(H, W)``
            gives that size. The displayed aspect ratio is kept: ``mode="crop"`` scales the short
            side to fit and cuts the centre, ``mode="letterbox"`` scales the long side to fit and
            pads with black bars.
        start: seconds from the video stream's start.
        duration: seconds to read; default: the rest of the video stream (``probe(path).duration - start``).

    Returns:
        uint8 tensor ``[F, H, W, 3]`` (RGB), ``F = round(duration * fps)``; frame ``i`` is the
        source frame shown at ``start + i / fps``. Display rotation is applied.

    Raises:
        MediaError: unreadable file, no video stream, ``start`` past the end, corrupt or truncated data.
    """
    return read_frames_at(path, [FrameRequest(fps, size, mode, duration)], start=start)[0]


def read_frames_at(path: PathLike, requests: Sequence[FrameRequest], *, start: float = 0.0) -> list[torch.Tensor]:
    """Several frame sequences of one video (rates, sizes, lengths) from a single open and decoding pass.

    Each result is exactly what :func:`read_frames` returns for that request; the file is decoded
    once, as far as the longest request needs. Generation reads the visual encoder's frames and the
    alignment picture's thumbnails this way.

    Returns:
        one uint8 ``[F_j, H_j, W_j, 3]`` tensor per request, in order.
    """
    if not requests:
        return []
    for r in requests:
        _check_args(r.fps, r.size, r.mode, start, r.duration, path)
    try:
        return _read_frames(path, list(requests), float(start), allow_seek=True)
    except _SeekOvershot:
        return _read_frames(path, list(requests), float(start), allow_seek=False)


class _Target:
    """The output of one request during the decoding pass: its times, its array, how far it got."""

    def __init__(self, request: FrameRequest, start: float, duration: float) -> None:
        self.request = request
        self.fps = float(request.fps)
        self.num_out = round(duration * self.fps)
        self.times = start + np.arange(self.num_out, dtype=np.float64) / self.fps
        self.out: np.ndarray | None = None
        self.plan: _Plan | None = None
        self.i = 0
        self.prev_rendered = -1  # output index holding the previous frame's image, to copy

    def begin(self, frame: av.VideoFrame, disp_w: int, disp_h: int, rotation: int) -> None:
        self.plan = _Plan(frame.width, frame.height, disp_w, disp_h, rotation, self.request.size, self.request.mode)
        self.out = np.zeros((self.num_out, self.plan.out_h, self.plan.out_w, 3), dtype=np.uint8)

    @property
    def done(self) -> bool:
        return self.i >= self.num_out

    def fill_until(self, t: float, tol: float, prev: av.VideoFrame) -> None:
        """Every output time before ``t`` (where the next frame starts) shows ``prev``."""
        assert self.plan is not None and self.out is not None
        while self.i < self.num_out and (t == math.inf or self.times[self.i] + tol < t):
            if self.prev_rendered >= 0:
                self.out[self.i] = self.out[self.prev_rendered]
            else:
                self.plan.render(prev, self.out[self.i])
            self.prev_rendered = self.i
            self.i += 1

    def new_frame(self) -> None:
        self.prev_rendered = -1


def _read_frames(path: PathLike, requests: list[FrameRequest], start: float, *, allow_seek: bool) -> list[torch.Tensor]:
    with open_input(path) as container:
        stream = video_stream(container)
        if stream is None:
            raise MediaError("no video stream", path)
        total = stream_duration(container, stream, path)
        spans = []
        for r in requests:
            duration = r.duration
            if duration is None:
                if total is None:
                    raise MediaError("video duration is unknown; pass duration=", path)
                duration = total - start
                if duration <= 0:
                    raise MediaError(f"start {start:.3f} s is at or past the end of the video ({total:.3f} s)", path)
            spans.append(duration)
        targets = [_Target(r, start, d) for r, d in zip(requests, spans, strict=True)]
        stream.thread_type = "AUTO"  # frame + slice threads: decoding is the bottleneck
        tb = stream.time_base
        origin = start_seconds(stream)
        # Containers store timestamps in ticks of the time base (1 ms in Matroska), rounded. A frame
        # whose stored time is within half a tick after t_i may truly start at t_i: count it as shown.
        tol = float(tb) / 2 + 1e-9 if tb is not None else 1e-6
        src_rate = rate_of(stream) or targets[0].fps

        if allow_seek and start > 0 and tb is not None:
            # Land on the keyframe at or before the first wanted time; frames before it are decoded
            # but only the latest of them is kept (it may be the one shown at t_0).
            container.seek(int(math.floor((origin + start) / float(tb))), stream=stream, backward=True)

        prev: av.VideoFrame | None = None
        last_time = -math.inf
        last_end = -math.inf
        try:
            for frame in container.decode(stream):
                if frame.pts is not None and tb is not None:
                    t = float(frame.pts * tb) - origin
                else:  # no timestamp: assume it follows the previous frame at the average rate
                    t = (last_time + 1.0 / src_rate) if last_time > -math.inf else 0.0
                if prev is None:
                    if allow_seek and start > 0 and t > start + tol and any(x.num_out for x in targets):
                        raise _SeekOvershot
                    rotation = rotation_from_frame(frame) or rotation_from_tag(stream) or 0
                    disp_w, disp_h = video_geometry(stream, rotation)
                    for x in targets:
                        x.begin(frame, disp_w, disp_h, rotation)
                    prev = frame  # times before the first frame show the first frame
                for x in targets:
                    x.fill_until(t, tol, prev)
                if all(x.done for x in targets):
                    break
                if frame is not prev:
                    prev = frame
                    for x in targets:
                        x.new_frame()
                last_time = t
                step = float(frame.duration * tb) if frame.duration and tb is not None else 1.0 / src_rate
                last_end = t + step
        except av.FFmpegError as err:
            where = f" near {last_time:.2f} s" if last_time > -math.inf else ""
            raise MediaError(f"corrupt or truncated video{where} ({ffmpeg_message(err)})", path) from None
        if prev is None:
            raise MediaError("video stream has no decodable frames (corrupt or truncated)", path)
        for x, duration in zip(targets, spans, strict=True):
            if not x.done and total is not None:
                # Decoding ended before the wanted span. Held last frames are fine for a requested span
                # past the end, but not when the container promised more video than the data holds.
                slack = max(0.5, 2.0 / src_rate)
                if last_end < min(total, start + duration) - slack:
                    raise MediaError(
                        f"truncated: video data ends at {last_end:.2f} s but the stream claims {total:.2f} s", path
                    )
            try:
                x.fill_until(math.inf, tol, prev)  # hold the last frame
            except av.FFmpegError as err:  # a damaged last frame the scaler refuses (found by the fuzzer)
                why = ffmpeg_message(err)
                raise MediaError(f"corrupt video: its last frame cannot be converted ({why})", path) from None
        return [torch.from_numpy(x.out) for x in targets]  # type: ignore[arg-type]
