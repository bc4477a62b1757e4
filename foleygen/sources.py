"""Frame sources for streamed generation: any PyAV-readable input, read as it comes.

``SOURCE`` may be a file (read at full speed, or at its own pace with ``realtime=True``), a V4L2 device
(``/dev/video0``; read as :mod:`foleygen.capture` says), a URL (``rtsp://``, ``http(s)://``, ``udp://``,
``tcp://``, ``srt://``...) or ``-`` for a stream on stdin (MPEG-TS, y4m, or anything FFmpeg recognises by
its content).

A reader thread demuxes and decodes; the caller takes :class:`Event`\\ s from a queue. The frames come
out at a fixed rate (the visual encoder's), picked by presentation timestamp with the rule of
:func:`foleygen.io.read_frames` (frame ``i`` is the source frame on screen at ``i / fps``) and rendered
with its scaling and cropping, so a file read here gives the very frames ``read_frames`` gives. The
thread also hands on the packets (for copying into a muxed output) and, when asked, the decoded
frames (for re-encoding). Taking frames from the queue never blocks longer than ``stall_timeout``
seconds: a source that stalls raises :class:`SourceStalled` (one line) instead of hanging, whatever
the protocol. A file's reader waits for the consumer (bounded queue, bounded memory); a live source's
never does (a device or a network stream would drop frames), and :attr:`FrameSource.backlog` says how
far behind the consumer is.
"""

from __future__ import annotations

import math
import os
import queue
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import av
import numpy as np
import torch

from foleygen.errors import MediaError, quote_path

if TYPE_CHECKING:
    from foleygen.capture import FfmpegCapture

Size = int | tuple[int, int] | None
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
# A live source is opened after little probing: FFmpeg's defaults (5 MB or 5 s of input before the first
# frame) would hold a pipe or camera until that much has arrived, adding seconds of latency, or never
# start a short stream at all.
LIVE_PROBE = {"probesize": "32768", "analyzeduration": "200000"}


class SourceStalled(MediaError):
    """No frame came from a source for ``stall_timeout`` seconds."""


@dataclass
class Event:
    """One item from the reader: ``kind`` is ``"frame"`` (``frame uint8 [H, W, 3]``, ``index`` at the
    output rate), ``"packet"`` (a demuxed packet, for copying) or ``"decoded"`` (an ``av.VideoFrame``,
    for re-encoding). ``t``: seconds from the source's time 0; ``arrived``: ``time.perf_counter()`` when
    the source frame behind it was read."""

    kind: str
    t: float
    arrived: float
    frame: torch.Tensor | None = None
    index: int = -1
    payload: Any = None


def kind_of(spec: str) -> str:
    """``"stdin"``, ``"url"``, ``"device"`` or ``"file"``."""
    if spec == "-":
        return "stdin"
    if _URL.match(spec):
        return "url"
    if spec.startswith("/dev/video") or _is_char_device(spec):
        return "device"
    return "file"


class FrameSource:
    """Frames of ``spec`` at ``fps``, as :class:`Event`\\ s, from a reader thread.

    Args:
        spec: file, device, URL or ``-`` (see the module docs).
        fps: output frame rate (the visual encoder's ``input_fps``).
        size_for: ``(width, height) -> size`` for :func:`foleygen.io.read_frames` (``None``: displayed size).
        realtime: pace a file at its own rate (live sources are paced by nature).
        stall_timeout: seconds without a frame after which the source counts as stalled.
        duration: seconds to read (frames ``round(duration * fps)``, the last one held if the video is
            shorter); default: a file's probed duration, a live source's end.
        packets: also hand on the video packets (and those of ``copy_audio``'s stream).
        decoded: also hand on decoded ``av.VideoFrame``\\ s (to re-encode).
        copy_audio: hand on the source's first audio stream's packets too.
    """

    def __init__(
        self,
        spec: str,
        *,
        fps: float,
        size_for: Callable[[int, int], Size] | None = None,
        realtime: bool = False,
        stall_timeout: float = 10.0,
        duration: float | None = None,
        packets: bool = False,
        decoded: bool = False,
        copy_audio: bool = False,
    ) -> None:
        from foleygen.io._common import audio_stream, rotation_from_tag, start_seconds, stream_duration, video_stream

        if not (stall_timeout > 0 and math.isfinite(stall_timeout)):
            raise MediaError(f"the stall timeout must be a positive number of seconds, got {stall_timeout}")
        self.spec, self.fps, self.kind = spec, float(fps), kind_of(spec)
        self.name = "stdin" if self.kind == "stdin" else quote_path(spec)
        self.stall_timeout = float(stall_timeout)
        self.live = self.kind != "file"
        self.realtime = realtime or self.live
        self.child: FfmpegCapture | None = None  # the ffmpeg reading a camera, on that route
        self.container = self._open_in_time()
        stream = video_stream(self.container)
        if stream is None:
            self._abandon()
            raise MediaError("has no video stream", spec)
        self.stream = stream
        self.audio = audio_stream(self.container) if copy_audio else None
        self.known_duration = None
        if self.kind == "file":
            self.known_duration = stream_duration(self.container, stream, spec)
            if not self.known_duration or self.known_duration <= 0:
                self._abandon()
                raise MediaError("cannot tell the video's duration (empty or broken stream)", spec)
        want = duration if duration is not None else self.known_duration
        span = None if want is None else min(want, self.known_duration or want)
        # at least one frame: a clip shorter than a frame period still shows its first frame
        self.num_frames = None if span is None else max(1, round(max(span, 1.0 / self.fps) * self.fps))
        # time 0: the stream's start (as read_frames has it); a live stream that does not say: its first frame
        self.origin = start_seconds(stream) if self.kind == "file" or stream.start_time is not None else None
        self.size_for, self.rotation_tag = size_for, rotation_from_tag(stream)
        self.packets, self.decoded = packets, decoded
        self.queue: queue.Queue[Event | BaseException | None] = queue.Queue(maxsize=0 if self.live else 256)
        self.stop = threading.Event()
        self.frames_out = 0
        self.emitted = 0  # frames the reader has put (frames_out: those taken)
        self.newest_arrival = 0.0
        self.thread = threading.Thread(target=self._run, name=f"foleygen source {self.name}", daemon=True)
        self.started = False

    def _open_in_time(self) -> Any:
        """Open the source; a live one that sends nothing to probe within ``stall_timeout`` has stalled
        (the open runs in a thread: FFmpeg's own timeouts do not cover every protocol, a pipe among them)."""
        if self.kind == "file":
            return self._open(self.stall_timeout)
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["container"] = self._open(self.stall_timeout)
            except BaseException as err:  # raised in the caller's thread below
                box["error"] = err

        opener = threading.Thread(target=target, name="foleygen source open", daemon=True)
        opener.start()
        try:
            opener.join(self.stall_timeout)
        except BaseException:  # Ctrl-C while opening: a camera's ffmpeg must not outlive the run
            if self.child is not None:
                self.child.close(pipe=False)
            raise
        if opener.is_alive():
            if self.child is not None:  # the camera's ffmpeg sent nothing: stop it (the open then ends)
                self.child.close(pipe=False)
            raise SourceStalled(
                f"nothing to read for {self.stall_timeout:g} s: the source stalled before its first frame",
                "stdin" if self.kind == "stdin" else self.spec,
            )
        if "error" in box:
            raise box["error"]
        return box["container"]

    def _open(self, timeout: float) -> Any:
        from foleygen.io._common import ffmpeg_message, open_input

        if self.kind == "file":
            return open_input(self.spec)
        try:
            if self.kind == "stdin":
                return av.open("pipe:0", mode="r", timeout=timeout, options=LIVE_PROBE)
            if self.kind == "device":
                return self._open_camera(timeout)
            return av.open(self.spec, mode="r", timeout=timeout, options=LIVE_PROBE)
        except (av.FFmpegError, OSError) as err:
            what = "the camera" if self.kind == "device" else "the source"
            raise MediaError(f"cannot open {what} ({ffmpeg_message(err)})", self.spec) from None

    def _open_camera(self, timeout: float) -> Any:
        """A V4L2 device: through PyAV's own input, else an ``ffmpeg`` child (see :mod:`foleygen.capture`)."""
        from foleygen.capture import V4L2, FfmpegCapture, camera_route

        exe = camera_route(self.spec)  # one line when the device is missing or nothing can read it
        if exe is None:
            return av.open(self.spec, mode="r", format=V4L2, timeout=timeout, options=LIVE_PROBE)
        self.child = FfmpegCapture(exe, self.spec)  # seen at once by a stalled open and by close()
        return self.child.open(timeout, LIVE_PROBE)

    def _abandon(self) -> None:
        """Close what was opened when the source fails before it starts."""
        try:
            self.container.close()
        except (av.FFmpegError, OSError):
            pass
        if self.child is not None:
            self.child.close()

    # ------------------------------------------------------------------------------ reader thread
    def _put(self, item: Event | BaseException | None) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        try:
            self._read()
            self._put(self._child_failure())
        except BaseException as err:  # handed to the consumer, who says it in one line
            self._put(self._child_failure() or err)

    def _child_failure(self) -> MediaError | None:
        """The camera's ffmpeg's own error, when its stream ended because it failed (it says why)."""
        if self.child is None or self.stop.is_set():
            return None
        done = self.num_frames is not None and self.emitted >= self.num_frames  # it ended us, not its pipe
        return self.child.failure("the camera stopped", wait=0.0 if done else 2.0)

    def _read(self) -> None:
        from foleygen.io._common import ffmpeg_message, rate_of, rotation_from_frame, video_geometry
        from foleygen.io.video import _Plan  # the rendering rule of read_frames, shared on purpose

        stream = self.stream
        stream.thread_type = "AUTO"
        tb = stream.time_base
        tol = float(tb) / 2 + 1e-9 if tb is not None else 1e-6
        src_rate = rate_of(stream) or self.fps
        n_out = self.num_frames
        plan = None
        prev_img: torch.Tensor | None = None
        prev_arrival = 0.0
        last_t, last_end = -math.inf, 0.0
        wall0: float | None = None
        i = 0
        streams = [stream] + ([self.audio] if self.audio is not None and self.packets else [])
        try:
            for packet in self.container.demux(*streams):
                if self.stop.is_set() or (n_out is not None and i >= n_out):
                    return
                flush = packet.size == 0 and packet.dts is None  # the demuxer's end: decode() empties the decoder
                if self.origin is None and packet.stream is stream and packet.pts is not None and tb is not None:
                    self.origin = float(packet.pts * tb)  # a live stream without a start time: its first frame
                origin = self.origin or 0.0
                if self.packets and not flush:
                    pt = float(packet.pts * packet.time_base) - origin if packet.pts is not None else last_t
                    self._put(Event("packet", pt, time.perf_counter(), payload=packet))
                if packet.stream is not stream:
                    continue
                for frame in packet.decode():
                    arrived = time.perf_counter()
                    if frame.pts is not None and tb is not None:
                        t = float(frame.pts * tb) - origin
                    else:  # no timestamp: it follows the previous frame at the average rate
                        t = last_t + 1.0 / src_rate if last_t > -math.inf else 0.0
                    if self.realtime and not self.live:  # a file at its own pace: wait for its time
                        wall0 = arrived - t if wall0 is None else wall0
                        delay = wall0 + t - time.perf_counter()
                        if delay > 0:
                            time.sleep(delay)
                        arrived = time.perf_counter()
                    if plan is None:
                        rotation = rotation_from_frame(frame) or self.rotation_tag or 0
                        disp_w, disp_h = video_geometry(stream, rotation)
                        size = self.size_for(disp_w, disp_h) if self.size_for else None
                        plan = _Plan(frame.width, frame.height, disp_w, disp_h, rotation, size, "crop")
                    img = np.zeros((plan.out_h, plan.out_w, 3), np.uint8)
                    # Rendered before the frame is handed on, never after: PyAV keeps one scaler per frame
                    # (not thread-safe), and the muxer's thread scales a handed-on frame to re-encode it.
                    # Both at once deadlocked inside swscale (seen in a CI run).
                    plan.render(frame, img)
                    if self.decoded:
                        self._put(Event("decoded", t, arrived, payload=frame))
                    # every output time before this frame starts shows the previous one
                    while prev_img is not None and (n_out is None or i < n_out) and i / self.fps + tol < t:
                        self._emit(prev_img, i, prev_arrival)
                        i += 1
                    if n_out is not None and i >= n_out:
                        return
                    prev_img, prev_arrival = torch.from_numpy(img), arrived
                    last_t = t
                    step = float(frame.duration * tb) if frame.duration and tb is not None else 1.0 / self.fps
                    last_end = t + step
        except av.FFmpegError as err:
            if self.stop.is_set():
                return
            where = f" near {last_t:.2f} s" if last_t > -math.inf else ""
            raise MediaError(f"corrupt or truncated video{where} ({ffmpeg_message(err)})", self.spec) from None
        if prev_img is None:
            raise MediaError("video stream has no decodable frames", self.spec)
        if n_out is not None and self.known_duration is not None and i < n_out:
            # as read_frames: held last frames are fine past the end, not when the data ends early
            slack = max(0.5, 2.0 / src_rate)
            if last_end < min(self.known_duration, n_out / self.fps) - slack:
                raise MediaError(
                    f"truncated: video data ends at {last_end:.2f} s but the stream claims {self.known_duration:.2f} s",
                    self.spec,
                )
        total = n_out if n_out is not None else max(1, round(last_end * self.fps))
        while i < total and not self.stop.is_set():  # the last frame stays on screen to the end
            self._emit(prev_img, i, prev_arrival)
            i += 1

    def _emit(self, img: torch.Tensor, index: int, arrived: float) -> None:
        self._put(Event("frame", index / self.fps, arrived, frame=img, index=index))
        self.emitted = index + 1

    # ------------------------------------------------------------------------------ consumer
    def events(self) -> Iterator[Event]:
        """The events in order, until the source ends. Raises :class:`SourceStalled` when nothing comes
        for ``stall_timeout`` seconds, and the reader's own error (one line) when it fails."""
        if not self.started:
            self.thread.start()
            self.started = True
        last = time.perf_counter()
        while True:
            try:
                item = self.queue.get(timeout=0.2)  # short waits: Ctrl-C is seen at once
            except queue.Empty:
                if time.perf_counter() - last > self.stall_timeout:
                    raise SourceStalled(
                        f"no frame for {self.stall_timeout:g} s: the source stalled (--stall-timeout sets the wait)",
                        self.spec if self.kind != "stdin" else "stdin",
                    ) from None
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            if item.kind == "frame":
                last = time.perf_counter()
                self.frames_out += 1
                self.newest_arrival = item.arrived
            yield item

    @property
    def backlog(self) -> int:
        """Events read but not yet taken (a live source's queue grows when the consumer is slow)."""
        return self.queue.qsize()

    def close(self) -> None:
        """Stop the reader. A reader blocked in a read that never returns (a dead network peer) is a
        daemon thread: it is left behind rather than waited for."""
        self.stop.set()
        if self.child is not None:
            self.child.stop()  # its pipe then ends, which ends a reader waiting in it
        if self.started:
            self.thread.join(timeout=1.0)
        if not self.thread.is_alive():
            try:
                self.container.close()
            except (av.FFmpegError, OSError):
                pass
        if self.child is not None:  # reaped; the video pipe stays open under a reader left behind
            self.child.close(pipe=not self.thread.is_alive())

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_char_device(spec: str) -> bool:
    try:
        return stat.S_ISCHR(os.stat(spec).st_mode)
    except OSError:
        return False
