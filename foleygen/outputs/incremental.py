"""Writers that grow as streamed audio arrives: a WAV/FLAC file, raw PCM on a pipe, a video with the new
audio muxed in.

Every writer takes ``write(wav)`` with ``wav [C, n]`` float at the model's rate, any ``n``, in order,
then ``close()`` (finish: a complete, valid file) or ``abort()`` (something failed: remove what a staged
writer made). Two placements:

* ``staged=True`` (``foleygen generate``): the file is assembled under a hidden temporary name beside
  the final one, locked against other runs' clean-up (:func:`foleygen.staging.hold`), and renamed over
  the final name only by :func:`commit` once every output of the video is complete. A failure or a
  kill leaves nothing under a final name.
* ``staged=False`` (``foleygen live``): the file grows in place, readable while it grows. A WAV's
  header is rewritten after every chunk, so the file is valid at every moment, even after SIGKILL;
  FLAC packets are flushed as they are made (a killed FLAC lacks only its total-sample count, which
  readers do not need); an MPEG-TS or fragmented MP4 is playable up to its last flushed fragment.

The muxer copies the source's video packets (no re-encoding) when their codec fits the container, and
holds each packet until the audio has reached its time, so the file stays interleaved and the packets
waiting are at most the pipeline's latency.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import av
import numpy as np
import torch

from foleygen.errors import MediaError
from foleygen.io._common import atomic_output
from foleygen.io.media_types import STREAM_MUX_FORMATS, describe_extensions

#: Video codecs copied as they are into each container; others are re-encoded to H.264.
COPYABLE = {
    "mp4": frozenset({"h264", "hevc", "av1", "vp9", "mpeg4"}),
    "mpegts": frozenset({"h264", "hevc", "mpeg2video", "mpeg1video", "mpeg4"}),
}
# A fragment per key frame, the header without sample tables: each fragment is playable as it lands.
FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}


class AudioSink(Protocol):
    """What every writer offers: ``write(wav [C, n])``, then ``close()`` or ``abort()``."""

    def write(self, wav: torch.Tensor) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


def to_s16(wav: torch.Tensor) -> np.ndarray:
    """``wav [C, n]`` float -> interleaved ``int16 [n, C]`` (clipped to [-1, 1], NaN as 0, scaled by
    32768 and rounded, as :func:`foleygen.io.write_audio` does)."""
    data = torch.nan_to_num(torch.as_tensor(wav).detach().to("cpu", torch.float32), nan=0.0).clamp_(-1.0, 1.0)
    if data.dim() != 2:
        raise MediaError(f"audio chunks must be [C, n], got {tuple(data.shape)}")
    return np.clip((data.T.numpy() * 32768.0).round(), -32768, 32767).astype("<i2")


class _Place:
    """Where a writer writes: the final path itself, or a locked temporary beside it
    (:func:`foleygen.io._common.atomic_output`) that :meth:`commit` renames over the final one."""

    def __init__(self, path: str | os.PathLike[str], staged: bool) -> None:
        self.final = Path(path)
        if not (self.final.parent if str(self.final.parent) else Path(".")).is_dir():
            raise MediaError("output folder does not exist", self.final)
        self._temp = atomic_output(self.final) if staged else None
        self.path = self._temp.path if self._temp is not None else self.final

    @property
    def staged(self) -> bool:
        """Whether the file is still under its temporary name."""
        return self._temp is not None and self._temp.open

    def commit(self) -> None:
        if self._temp is not None:
            self._temp.commit()

    def abort(self) -> None:
        if self._temp is not None:
            self._temp.abort()


class _FileWriter:
    """A writer of one file: :meth:`finish` completes it where it is written, :meth:`close` also moves
    a staged file under its final name."""

    place: _Place

    def finish(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.finish()
        self.place.commit()

    def abort(self) -> None:
        raise NotImplementedError


class WavWriter(_FileWriter):
    """16-bit PCM WAV that is valid after every :meth:`write` (its sizes are rewritten each time)."""

    def __init__(self, path: str | os.PathLike[str], sample_rate: int, channels: int, *, staged: bool) -> None:
        self.place = _Place(path, staged)
        self.sample_rate, self.channels = int(sample_rate), int(channels)
        self.data_bytes = 0
        try:
            self.file: BinaryIO = open(self.place.path, "wb")  # noqa: SIM115 (kept open while the stream lasts)
            self._header()
        except OSError as err:
            self.place.abort()
            raise MediaError(f"cannot write audio ({err.strerror})", self.place.final) from None

    def _header(self) -> None:
        block = 2 * self.channels
        self.file.seek(0)
        self.file.write(
            b"RIFF"
            + struct.pack("<I", 36 + self.data_bytes)
            + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, self.channels, self.sample_rate, self.sample_rate * block, block, 16)
            + b"data"
            + struct.pack("<I", self.data_bytes)
        )

    def write(self, wav: torch.Tensor) -> None:
        """Append ``wav [C, n]`` and flush: the file on disk is a complete WAV of everything so far."""
        if wav.shape[-1] == 0:
            return
        pcm = to_s16(wav)
        if pcm.shape[1] != self.channels:
            raise MediaError(f"expected {self.channels} channels, got {pcm.shape[1]}", self.place.final)
        if 44 + self.data_bytes + pcm.nbytes > 0xFFFFFFFF:
            raise MediaError("a WAV file holds at most 4 GiB of audio; use .flac for longer runs", self.place.final)
        self.file.seek(44 + self.data_bytes)
        self.file.write(pcm.tobytes())
        self.data_bytes += pcm.nbytes
        self._header()
        self.file.flush()

    def finish(self) -> None:
        self.file.close()

    def abort(self) -> None:
        self.file.close()
        self.place.abort()


class FlacWriter(_FileWriter):
    """16-bit FLAC encoded as it goes; each packet is flushed to the file when made."""

    def __init__(self, path: str | os.PathLike[str], sample_rate: int, channels: int, *, staged: bool) -> None:
        from foleygen.io.audio import layout_for

        self.place = _Place(path, staged)
        self.sample_rate, self.layout = int(sample_rate), layout_for(int(channels))
        try:
            self.out = av.open(str(self.place.path), mode="w", format="flac", options={"flush_packets": "1"})
            self.stream = self.out.add_stream("flac", rate=self.sample_rate, layout=self.layout)
            self.stream.codec_context.format = "s16"
            self.out.start_encoding()
        except (av.FFmpegError, OSError) as err:
            self.place.abort()
            raise MediaError(f"cannot write audio ({err})", self.place.final) from None
        self.pos = 0

    def write(self, wav: torch.Tensor) -> None:
        if wav.shape[-1] == 0:
            return
        pcm = to_s16(wav)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm).reshape(1, -1), format="s16", layout=self.layout)
        frame.sample_rate, frame.pts = self.sample_rate, self.pos
        self.pos += pcm.shape[0]
        for packet in self.stream.encode(frame):
            self.out.mux(packet)

    def finish(self) -> None:
        for packet in self.stream.encode(None):
            self.out.mux(packet)
        self.out.close()

    def abort(self) -> None:
        with contextlib.suppress(av.FFmpegError, OSError):
            self.out.close()
        self.place.abort()


class PcmWriter:
    """Raw interleaved s16le on a pipe (stdout by default: ``| aplay -f S16_LE -r RATE -c C``).

    A reader that goes away (``aplay`` closed) ends the output quietly: :attr:`closed_by_reader` is set
    and further chunks are dropped, so other outputs go on."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout.buffer
        self.closed_by_reader = False

    def write(self, wav: torch.Tensor) -> None:
        if wav.shape[-1] == 0 or self.closed_by_reader:
            return
        try:
            self.stream.write(to_s16(wav).tobytes())
            self.stream.flush()
        except BrokenPipeError:
            self.closed_by_reader = True
            with contextlib.suppress(OSError):  # stop Python complaining at exit about the dead pipe
                os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.stream.flush()

    def abort(self) -> None:
        self.close()


class MuxWriter(_FileWriter):
    """A video (MPEG-TS, fragmented or plain MP4) of the source's picture and the new audio (AAC).

    Args:
        path: ``.ts``, ``.mp4``, ``.m4v`` or ``.mov``.
        sample_rate / channels: of the audio written.
        video: the source's video stream (its codec parameters are the template for a copy).
        copy_video: copy packets (:meth:`video_packet`); False: re-encode decoded frames
            (:meth:`video_frame`) to H.264, for codecs the container cannot hold (raw webcam video, FFV1).
        copied: other source streams whose packets are copied too (the video's own audio).
        staged: see the module docs; a plain MP4 (index at the end) when staged, fragmented when not.
        length: the audio's exact length in samples when known (the video's: longer audio is cut,
            shorter is padded with silence at :meth:`finish`, as :func:`foleygen.io.mux` does).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        sample_rate: int,
        channels: int,
        *,
        video: Any,
        copy_video: bool,
        copied: list[Any] | None = None,
        staged: bool,
        audio_codec: str = "aac",
        bitrate: int = 128_000,
        length: int | None = None,
    ) -> None:
        from foleygen.io.audio import layout_for

        self.length = length
        target = Path(path)
        fmt = STREAM_MUX_FORMATS.get(target.suffix.lower())
        if fmt is None:
            raise MediaError(
                f"a muxed output must be {describe_extensions(STREAM_MUX_FORMATS)}, not {target.suffix!r}", target
            )
        self.place = _Place(target, staged)
        self.sample_rate, self.layout = int(sample_rate), layout_for(int(channels))
        options = FRAGMENTED if fmt == "mp4" and not staged else {}
        try:
            self.out = av.open(str(self.place.path), mode="w", format=fmt, options=options)
            if copy_video:
                self.video = self.out.add_stream_from_template(video)
            else:
                self.video = _h264(self.out, video, live=not staged)
            self.targets = {s.index: self.out.add_stream_from_template(s) for s in (copied or [])}
            self.audio = self.out.add_stream(audio_codec, rate=self.sample_rate, layout=self.layout)
            self.audio.bit_rate = bitrate
        except (av.FFmpegError, ValueError, OSError) as err:
            self.place.abort()
            raise MediaError(f"cannot write video ({err})", target) from None
        self.targets[video.index] = self.video
        self.source_video = video.index  # the source's index: its streams need not be numbered like ours
        self.copy_video = copy_video
        self.pos = 0  # audio samples encoded
        self.waiting: list[tuple[float, Any]] = []  # packets (or frames) held until the audio reaches them

    def video_packet(self, packet: Any, t: float, origin: float) -> None:
        """A source packet (video or a copied stream) at ``t`` seconds (0 = the first video frame);
        ``origin``: the source's time 0 in its own clock, subtracted so the output starts at 0."""
        index = packet.stream.index
        if index not in self.targets or (index == self.source_video and not self.copy_video):
            return
        if packet.pts is None and packet.dts is None:
            raise MediaError("video packets carry no timestamps; cannot copy them", self.place.final)
        if origin and packet.time_base is not None:
            ticks = round(origin / float(packet.time_base))
            if packet.pts is not None:
                packet.pts -= ticks
            if packet.dts is not None:
                packet.dts -= ticks
        packet.stream = self.targets[packet.stream.index]
        self.waiting.append((t, packet))
        self._release()

    def video_frame(self, frame: Any, t: float) -> None:
        """A decoded source frame at ``t`` seconds, for the re-encoding path."""
        if self.copy_video:
            return
        self.waiting.append((t, frame))
        self._release()

    def write(self, wav: torch.Tensor) -> None:
        if self.length is not None:
            wav = wav[:, : max(0, self.length - self.pos)]
        if wav.shape[-1] == 0:
            return
        data = torch.nan_to_num(wav.detach().to("cpu", torch.float32), nan=0.0).clamp_(-1.0, 1.0).numpy()
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format="fltp", layout=self.layout)
        frame.sample_rate, frame.pts, frame.time_base = self.sample_rate, self.pos, Fraction(1, self.sample_rate)
        self.pos += data.shape[1]
        for packet in self.audio.encode(frame):
            self.out.mux(packet)
        self._release()

    def _release(self, everything: bool = False) -> None:
        """Mux the held video up to the audio written so far, in the order it came. Packets come in decode
        order, which is not their presentation order when a codec reorders frames (B-frames): releasing
        each by its own time would hand the muxer decreasing DTS, which it refuses. So the first packet
        not yet due holds back those after it."""
        now = self.pos / self.sample_rate
        done = 0
        for t, item in self.waiting:
            if not (everything or t <= now):
                break
            if isinstance(item, av.VideoFrame):
                for packet in _encode(self.video, item, t):
                    self.out.mux(packet)
            else:
                self.out.mux(item)
            done += 1
        del self.waiting[:done]

    def finish(self) -> None:
        if self.length is not None and self.pos < self.length:
            self.write(torch.zeros(len(self.audio.layout.channels), self.length - self.pos))
        self._release(everything=True)
        if not self.copy_video:
            for packet in self.video.encode(None):
                self.out.mux(packet)
        for packet in self.audio.encode(None):
            self.out.mux(packet)
        self.out.close()

    def abort(self) -> None:
        with contextlib.suppress(av.FFmpegError, OSError):
            self.out.close()
        self.place.abort()


def _h264(out: Any, video: Any, *, live: bool) -> Any:
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    stream = out.add_stream(codec, rate=Fraction(video.average_rate or 25).limit_denominator(1001))
    cc = video.codec_context
    stream.width, stream.height = max(2, cc.width - cc.width % 2), max(2, cc.height - cc.height % 2)
    stream.pix_fmt = "yuv420p"
    stream.codec_context.time_base = Fraction(1, 90_000)
    if codec == "libx264":
        # zerolatency: no frame reordering or look-ahead queue, each frame leaves the encoder at once
        stream.options = {"preset": "veryfast", "crf": "20", **({"tune": "zerolatency"} if live else {})}
    return stream


def _encode(stream: Any, frame: Any, t: float) -> list[Any]:
    if (frame.width, frame.height) != (stream.width, stream.height) or frame.format.name != "yuv420p":
        frame = frame.reformat(width=stream.width, height=stream.height, format="yuv420p")
    frame.pts, frame.time_base = round(t * 90_000), Fraction(1, 90_000)
    frame.pict_type = av.video.frame.PictureType.NONE
    return stream.encode(frame)


def commit(writers: list[Any]) -> None:
    """Finish every writer (each temporary complete), then move all of them under their final names;
    on any failure nothing stays under a final name."""
    try:
        for w in writers:
            w.finish() if isinstance(w, _FileWriter) else w.close()
    except BaseException:
        abort(writers)
        raise
    done: list[Path] = []
    try:
        for w in writers:
            if isinstance(w, _FileWriter) and w.place.staged:
                w.place.commit()
                done.append(w.place.final)
    except BaseException:
        for path in done:
            path.unlink(missing_ok=True)
        abort(writers)
        raise


def abort(writers: list[Any]) -> None:
    """Give up: close every writer, removing staged temporaries (outputs growing in place are kept)."""
    for w in writers:
        with contextlib.suppress(Exception):
            w.abort()
