"""Shared plumbing of :mod:`foleygen.io`: opening files with clear errors, picking streams, durations.

Everything here speaks PyAV. Times are in seconds (``float``) unless a name says otherwise; the
*origin* of a file is the start time of its video stream (or of its audio stream when there is no
video), so that frame ``i`` and sample ``n`` of the same file are on one clock.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from foleygen.atomic import AtomicFile
from foleygen.errors import MediaError, quote_path

PathLike = str | os.PathLike[str]

log = logging.getLogger(__name__)


def ffmpeg_message(err: BaseException) -> str:
    """A short one-line description of a PyAV/FFmpeg error (no file name: MediaError adds it)."""
    if isinstance(err, av.FFmpegError):
        text = err.strerror or type(err).__name__
    else:
        text = str(err) or type(err).__name__
    return " ".join(str(text).split())


_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def not_a_file_problem(path: PathLike) -> str | None:
    """Why ``path`` cannot be opened as an input file, or None if it is a readable regular file.

    Only ``stat`` and ``access`` are used: nothing here opens the path, so a FIFO or a device never
    blocks the caller (opening a FIFO for reading waits for a writer, forever). Symbolic links are
    followed; a broken one or a loop is named as such rather than as a missing file.
    """
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        if p.is_symlink():
            return f"broken symbolic link (to {quote_path(os.readlink(p))})"
        return "file not found"
    except PermissionError:
        return "permission denied"
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symbolic link loop"
        return f"cannot access file ({err.strerror})"
    if stat.S_ISDIR(st.st_mode):
        return "is a directory, not a media file"
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "something else")
        return f"not a regular file but {kind}; give a file (save a stream to one first)"
    if st.st_size == 0:
        return "empty file (0 bytes)"
    if not os.access(p, os.R_OK):
        return "permission denied"
    return None


def check_readable(path: PathLike) -> Path:
    """Fail early, with a precise one-line :class:`MediaError`, for the usual reasons a path cannot be
    a media file (see :func:`not_a_file_problem`)."""
    problem = not_a_file_problem(path)
    if problem is not None:
        raise MediaError(problem, path)
    return Path(path)


def make_output_dir(path: PathLike) -> Path:
    """Create the folder ``path`` (and its parents) for results, or say in one line why it cannot be.

    Raises:
        MediaError: ``path`` is a file, a part of it is a file, it cannot be created (permissions,
            read-only file system), or it exists but cannot be written to.
    """
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        what = "a broken symbolic link" if p.is_symlink() and not p.exists() else "a file"
        raise MediaError(f"output folder is {what}, not a folder", p) from None
    except NotADirectoryError:
        raise MediaError("output folder cannot be created: a part of its path is a file", p) from None
    except OSError as err:
        raise MediaError(f"output folder cannot be created ({err.strerror or type(err).__name__})", p) from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise MediaError("output folder is not writable (permission denied or a read-only file system)", p)
    return p


def open_input(path: PathLike) -> av.container.InputContainer:
    """Open ``path`` for reading; every failure becomes a one-line :class:`MediaError`."""
    p = check_readable(path)
    try:
        container = av.open(str(p), mode="r", metadata_errors="replace")
    except PermissionError:
        raise MediaError("permission denied", p) from None
    except (av.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise MediaError(f"not a readable media file or corrupt ({ffmpeg_message(err)})", p) from None
    if not any(s.type in ("video", "audio") for s in container.streams):
        container.close()
        raise MediaError("no audio or video stream", p)
    return container


def video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The main video stream, ignoring cover art (an 'attached picture' is a one-frame video stream)."""
    # A stream of a codec FFmpeg does not know has no codec context: nothing of it can be read.
    candidates = [
        s
        for s in container.streams.video
        if not (s.disposition & av.stream.Disposition.attached_pic) and s.codec_context is not None
    ]
    return candidates[0] if candidates else None


def audio_stream(container: av.container.InputContainer) -> av.audio.stream.AudioStream | None:
    """The first audio stream, or None."""
    known = [s for s in container.streams.audio if s.codec_context is not None]  # see video_stream
    return known[0] if known else None


def start_seconds(stream: av.stream.Stream) -> float:
    """The stream's first presentation time in seconds (0 when the container does not say)."""
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def origin_seconds(container: av.container.InputContainer) -> float:
    """Time 0 of the file as foleygen sees it: the video stream's start, else the audio stream's."""
    v = video_stream(container)
    if v is not None:
        return start_seconds(v)
    a = audio_stream(container)
    return start_seconds(a) if a is not None else 0.0


_DURATION_TAG = re.compile(r"^(\d+):(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


def _duration_tag_seconds(stream: av.stream.Stream) -> float | None:
    """Matroska/WebM per-track ``DURATION`` tag (``HH:MM:SS.nnnnnnnnn``), if present."""
    for key, value in stream.metadata.items():
        if key.upper() == "DURATION":
            m = _DURATION_TAG.match(value.strip())
            if m:
                return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    return None


def declared_duration(stream: av.stream.Stream) -> float | None:
    """How long the container's header says the stream lasts (seconds from its start); None if unsaid.

    The stream's duration field, else Matroska's per-track ``DURATION`` tag. Headers can be wrong
    (a damaged or hand-edited file, a muxer bug, a file cut short): :func:`stream_duration` checks
    them against the packets.
    """
    if stream.duration is not None and stream.duration > 0 and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    tagged = _duration_tag_seconds(stream)
    if tagged is not None and tagged > 0:
        return max(0.0, tagged - start_seconds(stream))
    return None


def scan_packets(path: PathLike, stream_index: int) -> tuple[int, float | None]:
    """Demux (no decoding) one stream: its packet count and the end time ``max(pts + duration)``.

    Used for containers that store no frame count (Matroska, WebM, raw streams). It reads the whole
    file, but decodes nothing, so it is I/O bound.
    """
    count = 0
    end: Fraction | None = None
    with av.open(str(path), mode="r", metadata_errors="replace") as container:
        stream = container.streams[stream_index]
        tb = stream.time_base
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the flush packet PyAV appends at the end
                    continue
                count += 1
                if packet.pts is not None and tb is not None:
                    t = (packet.pts + (packet.duration or 0)) * tb
                    end = t if end is None or t > end else end
        except av.FFmpegError:
            pass  # a damaged tail: report what could be read; decoding will name the problem
    return count, (None if end is None else float(end))


# Seek this far (seconds) to land on a stream's last keyframe: past the end of any real file.
_FAR_S = 10_000_000


def packet_end(path: PathLike, stream_index: int) -> float | None:
    """Where the stream's packets end (seconds, ``max(pts + duration)``, on the file's clock).

    Cheap: seek to the last keyframe (containers with an index, MP4 and Matroska, jump there) and
    demux the rest; when the container cannot seek, or the seek lands past every packet, demux the
    whole stream. Nothing is decoded. None when no packet has a timestamp.
    """
    with av.open(str(path), mode="r", metadata_errors="replace") as container:
        stream = container.streams[stream_index]
        tb = stream.time_base
        if tb is None:
            return None
        end: Fraction | None = None
        try:
            container.seek(int(_FAR_S / tb), stream=stream, backward=True, any_frame=False)
            for packet in container.demux(stream):
                if packet.size and packet.pts is not None:
                    t = (packet.pts + (packet.duration or 0)) * tb
                    end = t if end is None or t > end else end
        except (av.FFmpegError, OSError):
            end = None
    if end is None:
        return scan_packets(path, stream_index)[1]
    return float(end)


# A header within this of the packets is believed (it is exact where the packets are rounded);
# beyond it, the packets are (relative part: a long file's header may be rounded to the second).
_HEADER_SLACK_S = 0.25
_HEADER_SLACK_REL = 0.02

_ends: dict[tuple[Any, ...], float | None] = {}  # packet ends per file version, and per stream
_warned: set[tuple[Any, ...]] = set()


def _file_key(path: PathLike, stream_index: int) -> tuple[Any, ...] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.path.abspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, stream_index)


def _cached_packet_end(path: PathLike, stream_index: int) -> float | None:
    """:func:`packet_end`, once per file version: probe, read_frames, read_audio and mux each ask."""
    key = _file_key(path, stream_index)
    if key is None:
        return packet_end(path, stream_index)
    if key not in _ends:
        if len(_ends) > 4096:  # a long-running server: forget, do not grow without bound
            _ends.clear()
        _ends[key] = packet_end(path, stream_index)
    return _ends[key]


def stream_duration(container: av.container.InputContainer, stream: av.stream.Stream, path: PathLike) -> float | None:
    """Duration of one stream in seconds, from its own start: the header's, checked against the packets.

    The header (:func:`declared_duration`) is used when it agrees with where the stream's packets end
    (:func:`packet_end`). When it does not (a header that claims a tenth of the real length, a tag that
    claims an hour, a file cut short after its header was written), the packets win: they are what a
    decoder will actually produce. That is said once per file, as a warning on the ``foleygen.io``
    logger. Without a header value, the packets give the duration, else the container's duration.
    None if nothing says.
    """
    start = start_seconds(stream)
    declared = declared_duration(stream)
    end = _cached_packet_end(path, stream.index)
    measured = None if end is None or end <= start else end - start
    if measured is None:
        if declared is not None:
            return declared
        if container.duration is not None and container.duration > 0:
            return max(0.0, container.duration / av.time_base - start)
        return None
    if declared is None:
        return measured
    if abs(declared - measured) <= max(_HEADER_SLACK_S, _HEADER_SLACK_REL * measured):
        return declared
    key = (_file_key(path, stream.index), declared)
    if key not in _warned:
        _warned.add(key)
        log.warning(
            "%s: the header says the %s stream lasts %.2f s but its packets end at %.2f s; using %.2f s",
            quote_path(path),
            stream.type,
            declared,
            measured,
            measured,
        )
    return measured


MIN_SAMPLE_ASPECT = 1 / 16
"""Sample aspect ratios outside [1/16, 16] are damage, not anamorphic video (real ones lie within 1/3..4)."""


def video_geometry(stream: av.video.stream.VideoStream, rotation: int) -> tuple[int, int]:
    """Displayed (width, height): coded size stretched by the sample aspect ratio, then rotated."""
    width = stream.codec_context.width
    height = stream.codec_context.height
    sar = stream.sample_aspect_ratio
    if sar is not None and MIN_SAMPLE_ASPECT <= sar <= 1 / MIN_SAMPLE_ASPECT and sar != 1:
        # Anamorphic video: pixels are not square; the display width is what a player shows. A ratio
        # beyond any real format (a damaged header; the fuzzer found a PNG saying 2e9:1) is ignored,
        # as players ignore it, instead of asking the scaler for a frame billions of pixels wide.
        width = max(1, round(width * sar))
    if rotation in (90, 270):
        width, height = height, width
    return width, height


def rotation_from_frame(frame: av.VideoFrame) -> int:
    """Clockwise display rotation (0, 90, 180, 270) from a frame's display-matrix side data.

    PyAV reports the counter-clockwise angle of the matrix; we store the clockwise angle that
    the classic ``rotate`` tag used (a portrait phone video says 90), snapped to quarter turns.
    """
    try:
        ccw = float(frame.rotation)
    except (AttributeError, TypeError, ValueError):
        return 0
    if ccw != ccw:  # NaN: no usable matrix
        return 0
    return round(-ccw / 90.0) % 4 * 90


def rotation_from_tag(stream: av.stream.Stream) -> int | None:
    """Clockwise rotation from an old-style ``rotate`` metadata tag, if the container kept one."""
    value = stream.metadata.get("rotate")
    if value is None:
        return None
    try:
        return round(float(value) / 90.0) % 4 * 90
    except ValueError:
        return None


def codec_name(stream: av.stream.Stream) -> str:
    """The format's codec name (``"mp3"``, ``"h264"``), not the decoder's (``"mp3float"``, ``"libdav1d"``)."""
    codec = stream.codec_context.codec
    return getattr(codec, "canonical_name", None) or codec.name


def rate_of(stream: av.video.stream.VideoStream) -> float | None:
    """Average frame rate (frames / duration) as a float, falling back to FFmpeg's guess."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return float(rate)
    return None


def atomic_output(path: PathLike, suffix: str | None = None) -> AtomicFile:
    """:func:`foleygen.atomic.atomic_file` for a media output, its problems as :class:`MediaError`.

    ``with atomic_output(path) as tmp:`` writes ``tmp`` (a locked temporary beside ``path`` with the
    extension ``suffix``, default ``path``'s) and renames it over ``path`` when the block succeeds, or
    removes it. Not flushed to disk before the rename (large files that a re-run writes again).

    Raises:
        MediaError: the output folder does not exist, or no file can be created in it.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise MediaError("output directory does not exist", target)
    try:
        return AtomicFile(target, target.suffix if suffix is None else suffix, fsync=False)
    except OSError as err:
        raise MediaError(f"cannot write here ({err.strerror})", target) from None


def first_frame(container: av.container.InputContainer, stream: av.stream.Stream) -> Any | None:
    """Decode frames of ``stream`` until the first one; None if the stream yields no frame."""
    for frame in container.decode(stream):
        return frame
    return None
