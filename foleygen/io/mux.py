"""``mux``: put a generated soundtrack next to the original video in an .mp4, without re-encoding the video.

The video packets are copied byte for byte (stream copy: no quality loss, no time spent encoding).
Only sources whose codec does not belong in an .mp4 (FFV1, VP8, Theora, raw...) are re-encoded, to
H.264; that fallback is logged and can be refused with ``reencode_video=False``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from foleygen.errors import MediaError, quote_path
from foleygen.io._common import (
    PathLike,
    atomic_output,
    audio_stream,
    codec_name,
    ffmpeg_message,
    open_input,
    rotation_from_frame,
    start_seconds,
    stream_duration,
    video_stream,
)
from foleygen.io.audio import layout_for, read_audio
from foleygen.io.media_types import MUX_FORMATS, describe_extensions

log = logging.getLogger(__name__)

# Codecs that players expect inside .mp4 and that FFmpeg's mp4 muxer writes with standard tags.
# Anything else could be written by FFmpeg, but browsers and phones would refuse to play it.
MP4_VIDEO_CODECS = frozenset({"h264", "hevc", "av1", "vp9", "mpeg4"})
MP4_AUDIO_CODECS = frozenset({"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"})

# Audio is encoded ahead of the video packets by this much, so that the muxer's interleaving queue
# stays short (bounded memory) whatever the length of the video.
_AUDIO_LEAD_S = 1.0


def _prepare_wav(wav: torch.Tensor, num_samples: int, path: PathLike) -> np.ndarray:
    """[C, S] float -> float32 numpy [C, num_samples], clipped, NaN-free, trimmed or zero-padded."""
    data = torch.as_tensor(wav).detach().to("cpu", torch.float32)
    if data.ndim == 1:
        data = data[None]
    if data.ndim != 2 or not 1 <= data.shape[0] <= 8:
        raise MediaError(f"wav must be [C, S] with 1 to 8 channels, got shape {tuple(data.shape)}", path)
    data = torch.nan_to_num(data, nan=0.0).clamp_(-1.0, 1.0)
    out = np.zeros((data.shape[0], num_samples), np.float32)
    n = min(num_samples, data.shape[1])
    out[:, :n] = data[:, :n].numpy()
    return out


class _AudioEncoder:
    """Encodes a float waveform [C, S] into an output audio stream, a bounded slice at a time."""

    def __init__(
        self,
        output: av.container.OutputContainer,
        wav: np.ndarray,
        sample_rate: int,
        codec: str,
        bitrate: int,
        target: Path,
    ) -> None:
        # ``target`` is the file the user asked for (``output`` is its temporary twin): errors name it.
        self.output = output
        self.wav = wav
        self.sample_rate = sample_rate
        self.layout = layout_for(wav.shape[0])
        try:
            rates = av.Codec(codec, "w").audio_rates
        except (av.FFmpegError, ValueError):
            rates = None  # unknown encoder: add_stream below names the problem
        if rates and sample_rate not in rates:
            raise MediaError(
                f"{codec} cannot encode {sample_rate} Hz audio; resample to one of {sorted(rates)}", target
            )
        try:
            self.stream = output.add_stream(codec, rate=sample_rate, layout=self.layout)
        except (av.FFmpegError, ValueError) as err:
            raise MediaError(f"cannot encode audio with {codec!r} ({ffmpeg_message(err)})", target) from None
        self.stream.bit_rate = bitrate
        self.pos = 0  # samples handed to the encoder so far

    def until(self, seconds: float) -> None:
        """Encode and mux the audio up to ``seconds`` (or to its end)."""
        total = self.wav.shape[1]
        stop = total if seconds * self.sample_rate >= total else max(0, math.ceil(seconds * self.sample_rate))
        block = 16 * 1024
        while self.pos < stop:
            end = min(stop, self.pos + block)
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(self.wav[:, self.pos : end]), format="fltp", layout=self.layout
            )
            frame.sample_rate = self.sample_rate
            frame.pts = self.pos
            frame.time_base = Fraction(1, self.sample_rate)
            for packet in self.stream.encode(frame):
                self.output.mux(packet)
            self.pos = end

    def finish(self) -> None:
        self.until(math.inf)
        for packet in self.stream.encode(None):
            self.output.mux(packet)


def mux(
    video_path: PathLike,
    wav: torch.Tensor,
    sample_rate: int,
    out_path: PathLike,
    *,
    keep_original_audio: bool = False,
    audio_codec: str = "aac",
    audio_bitrate: int = 192_000,
    reencode_video: bool | None = None,
    shown_as: PathLike | None = None,
) -> None:
    """Write ``out_path`` (.mp4/.m4v/.mov): the video of ``video_path`` with ``wav`` as its audio track.

    Args:
        video_path: source video. Its video packets are copied unchanged (byte-identical).
        wav: float tensor ``[C, S]`` (or ``[S]``) at ``sample_rate``; clipped to [-1, 1] and trimmed or
            zero-padded to the video stream's duration (sample 0 = the first video frame).
        sample_rate: Hz of ``wav``.
        out_path: the result; written atomically (temporary file beside it, then renamed).
        keep_original_audio: also keep the source's first audio track, as a second track after
            the new one. Copied when its codec fits in .mp4, else re-encoded to ``audio_codec``.
        audio_codec: encoder for the new track (default AAC, which every player reads).
        audio_bitrate: bits per second for encoded tracks.
        reencode_video: None (default): copy the video when its codec belongs in .mp4, else
            re-encode it to H.264. False: never re-encode (a MediaError instead). True: always re-encode.
        shown_as: the name messages give the output (default ``out_path``): a caller that writes to a
            temporary of its own names the final file.

    Raises:
        MediaError: unreadable source, no video stream, bad output extension, codec problems.
    """
    out = Path(out_path)
    shown = Path(shown_as) if shown_as is not None else out
    fmt = MUX_FORMATS.get(out.suffix.lower())
    if fmt is None:
        wanted = describe_extensions(MUX_FORMATS)
        raise MediaError(f"output must be {wanted}, not {out.suffix or '(no extension)'!r}", out)
    if not (isinstance(sample_rate, int) and sample_rate > 0):
        raise MediaError(f"sample_rate must be a positive int, got {sample_rate!r}", out)
    with open_input(video_path) as source:
        v = video_stream(source)
        if v is None:
            raise MediaError("no video stream to put the soundtrack on", video_path)
        duration = stream_duration(source, v, video_path)
        if duration is None:
            raise MediaError("video duration is unknown", video_path)
        samples = _prepare_wav(wav, round(duration * sample_rate), shown)
        copy_video = codec_name(v) in MP4_VIDEO_CODECS
        if reencode_video is True:
            copy_video = False
        elif not copy_video and reencode_video is False:
            raise MediaError(
                f"video codec {codec_name(v)!r} does not belong in {out.suffix}; "
                "pass reencode_video=None to convert it to H.264",
                video_path,
            )
        elif not copy_video:
            log.warning(
                "%s: video codec %s is re-encoded to H.264 for %s",
                quote_path(video_path),
                codec_name(v),
                quote_path(shown.name),
            )
        orig = audio_stream(source) if keep_original_audio else None
        if keep_original_audio and orig is None:
            log.warning("%s: no original audio to keep", quote_path(video_path))
        orig_wav = None
        if orig is not None and codec_name(orig) not in MP4_AUDIO_CODECS:
            # Re-encoding goes through read_audio, which already aligns the audio with the video.
            rate = int(orig.codec_context.sample_rate or sample_rate)
            channels = int(min(8, max(1, orig.codec_context.channels or 1)))
            orig_wav = (read_audio(video_path, rate, channels).numpy(), rate)
        with atomic_output(out, out.suffix) as tmp:
            try:
                _write(
                    source,
                    v,
                    orig,
                    orig_wav,
                    copy_video,
                    samples,
                    sample_rate,
                    tmp,
                    shown,
                    fmt,
                    audio_codec,
                    audio_bitrate,
                )
            except av.FFmpegError as err:
                raise MediaError(f"cannot write ({ffmpeg_message(err)})", shown) from None


def _write(
    source: av.container.InputContainer,
    v: av.video.stream.VideoStream,
    orig: av.audio.stream.AudioStream | None,
    orig_wav: tuple[np.ndarray, int] | None,
    copy_video: bool,
    samples: np.ndarray,
    sample_rate: int,
    tmp: Path,
    target: Path,
    fmt: str,
    audio_codec: str,
    audio_bitrate: int,
) -> None:
    origin = start_seconds(v)
    with av.open(str(tmp), mode="w", format=fmt) as output:
        if copy_video:
            out_v = output.add_stream_from_template(v)
        else:
            out_v = _h264_stream(output, source, v)
        new_audio = _AudioEncoder(output, samples, sample_rate, audio_codec, audio_bitrate, target)
        copied_audio = None
        orig_encoder = None
        if orig is not None and orig_wav is None:
            copied_audio = output.add_stream_from_template(orig)
        elif orig_wav is not None:
            orig_encoder = _AudioEncoder(output, orig_wav[0], orig_wav[1], audio_codec, audio_bitrate, target)
        encoders = [e for e in (new_audio, orig_encoder) if e is not None]

        targets = {v.index: out_v}
        if copied_audio is not None:
            targets[orig.index] = copied_audio
        for packet, t in _packets(source, v, targets, copy_video, origin):
            for enc in encoders:
                enc.until(t + _AUDIO_LEAD_S)
            output.mux(packet)
        for enc in encoders:
            enc.finish()


def _shift(packet: av.Packet, seconds: float) -> None:
    """Move a packet earlier by ``seconds`` (so that the video starts at 0 in the output)."""
    if not seconds or packet.time_base is None:
        return
    ticks = round(seconds / float(packet.time_base))
    if packet.pts is not None:
        packet.pts -= ticks
    if packet.dts is not None:
        packet.dts -= ticks


def _packets(
    source: av.container.InputContainer,
    v: av.video.stream.VideoStream,
    targets: dict[int, av.stream.Stream],
    copy_video: bool,
    origin: float,
) -> Iterator[tuple[av.Packet, float]]:
    """Packets for the output in file order: the video (copied, or re-encoded when ``copy_video`` is
    False) and any copied audio, already moved to their output stream and shifted so the video
    starts at 0. Each comes with its time in seconds, to interleave the encoded audio with it."""
    in_streams = [source.streams[i] for i in sorted(targets)]
    out_v = targets[v.index]
    try:
        for packet in source.demux(*in_streams):
            is_video = packet.stream.index == v.index
            if packet.size == 0 and packet.dts is None:  # the demuxer's end of a stream
                if is_video and not copy_video:  # decoding it empties the decoder: its last frames
                    for frame in packet.decode():
                        t = float(frame.pts * frame.time_base) - origin if frame.pts is not None else math.inf
                        for encoded in _encode_video(out_v, frame, origin):
                            yield encoded, t
                continue
            t = float(packet.pts * packet.time_base) - origin if packet.pts is not None else 0.0
            if is_video and not copy_video:
                for frame in packet.decode():
                    for encoded in _encode_video(out_v, frame, origin):
                        yield encoded, t
                continue
            if is_video and packet.pts is None and packet.dts is None:
                raise MediaError("video packets carry no timestamps; cannot copy them", source.name)
            # Original audio keeps every packet, even those before the first video frame: AAC's
            # priming packet has a negative time and the decoder needs it.
            _shift(packet, origin)
            packet.stream = targets[packet.stream.index]
            yield packet, t
        if not copy_video:
            for encoded in out_v.encode(None):
                yield encoded, math.inf
    except av.FFmpegError as err:
        raise MediaError(f"corrupt or truncated video ({ffmpeg_message(err)})", source.name) from None


def _h264_stream(
    output: av.container.OutputContainer, source: av.container.InputContainer, v: av.video.stream.VideoStream
) -> av.video.stream.VideoStream:
    """An H.264 stream for the re-encode fallback: same timestamps, even size, same display rotation."""
    codec = "libx264" if "libx264" in av.codecs_available else "h264"
    stream = output.add_stream(codec, rate=v.average_rate or v.guessed_rate or 25)
    # 4:2:0 chroma needs even dimensions; drop at most one edge row/column.
    stream.width = max(2, v.codec_context.width - v.codec_context.width % 2)
    stream.height = max(2, v.codec_context.height - v.codec_context.height % 2)
    stream.pix_fmt = "yuv420p"
    stream.codec_context.time_base = v.time_base
    stream.options = {"crf": "18", "preset": "veryfast"}
    stream.thread_type = "AUTO"
    # The display matrix travels as frame side data; copy it so a phone video stays upright.
    with av.open(source.name, mode="r") as peek:
        for frame in peek.decode(peek.streams[v.index]):
            ccw = -rotation_from_frame(frame)
            if ccw:
                stream.set_display_rotation(ccw)
            break
    return stream


def _encode_video(stream: av.video.stream.VideoStream, frame: av.VideoFrame, origin: float) -> list[av.Packet]:
    if frame.pts is not None and frame.time_base is not None:
        frame.pts -= round(origin / float(frame.time_base))
    if (frame.width, frame.height) != (stream.width, stream.height) or frame.format.name != "yuv420p":
        pts, tb = frame.pts, frame.time_base
        frame = frame.reformat(width=stream.width, height=stream.height, format="yuv420p")
        frame.pts, frame.time_base = pts, tb
    frame.pict_type = av.video.frame.PictureType.NONE  # let the encoder choose frame types
    return stream.encode(frame)
