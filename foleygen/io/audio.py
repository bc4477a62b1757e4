"""``read_audio`` (any file FFmpeg reads -> float waveform) and ``write_audio`` (.wav / .flac, atomic).

Sample ``n`` of ``read_audio(path, sr, start=s)`` is the sound at ``s + n / sr`` seconds on the
same clock as :func:`foleygen.io.read_frames` (time 0 = the video stream's start), so audio and
frames read from one file stay in sync even when the audio stream starts later than the video.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import av
import numpy as np
import torch

from foleygen.errors import MediaError
from foleygen.io._common import (
    PathLike,
    atomic_output,
    audio_stream,
    ffmpeg_message,
    open_input,
    origin_seconds,
    start_seconds,
    stream_duration,
    video_stream,
)
from foleygen.io.media_types import AUDIO_OUTPUT_EXTENSIONS, describe_extensions

# FFmpeg's default layout for each channel count (what `-ac N` gives).
_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}

# Seeking saves decoding the part before `start`, but lands on a packet boundary whose timestamp
# may be rounded (1 ms in Matroska). Below this start we decode from the beginning, which is
# sample-exact; above it, long files matter more than sub-millisecond offsets.
_SEEK_AFTER_S = 30.0


def layout_for(channels: int) -> str:
    """FFmpeg channel layout name for a channel count (1 -> mono, 2 -> stereo, 6 -> 5.1...)."""
    try:
        return _LAYOUTS[channels]
    except KeyError:
        raise ValueError(f"unsupported channel count {channels} (1 to 8)") from None


def _mix(chunk: np.ndarray, channels: int) -> np.ndarray:
    """[C_in, n] -> [channels, n]. Mono is the mean of all channels; mono input is repeated."""
    c_in = chunk.shape[0]
    if c_in == channels:
        return chunk
    if channels == 1:
        # The mean never clips and treats channels alike; FFmpeg's default downmix weights
        # channels by 1/sqrt(2) and can exceed [-1, 1] on correlated stereo.
        return chunk.mean(axis=0, keepdims=True)
    if c_in == 1:
        return np.repeat(chunk, channels, axis=0)
    raise AssertionError("other layouts are converted by the resampler")


def read_audio(
    path: PathLike,
    sample_rate: int,
    channels: int = 1,
    *,
    start: float = 0.0,
    duration: float | None = None,
) -> torch.Tensor:
    """Decode, resample and mix the first audio stream of a file.

    Args:
        path: any file with an audio stream (video or audio-only).
        sample_rate: output rate in Hz (resampled with FFmpeg's swresample).
        channels: output channels; 1 = mean of the source channels, a mono source is repeated,
            other conversions use FFmpeg's standard rematrixing.
        start: seconds from the file's time origin (the video stream's start when there is video).
        duration: seconds to return. Default: the video stream's duration minus ``start`` when
            there is a video stream, else all the audio from ``start`` on.

    Returns:
        float32 tensor ``[channels, S]`` in [-1, 1] (as decoded; not clipped), with
        ``S = round(duration * sample_rate)``: zeros pad where the audio starts late or ends early.

    Raises:
        MediaError: unreadable file, no audio stream, or corrupt audio data.
    """
    if not (isinstance(sample_rate, int) and sample_rate > 0):
        raise MediaError(f"sample_rate must be a positive int, got {sample_rate!r}", path)
    if not (isinstance(channels, int) and 1 <= channels <= 8):
        raise MediaError(f"channels must be 1 to 8, got {channels!r}", path)
    if not (math.isfinite(start) and start >= 0):
        raise MediaError(f"start must be >= 0 seconds, got {start!r}", path)
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise MediaError(f"duration must be > 0 seconds, got {duration!r}", path)
    with open_input(path) as container:
        a = audio_stream(container)
        if a is None:
            raise MediaError("no audio stream", path)
        origin = origin_seconds(container)
        v = video_stream(container)
        if duration is None and v is not None:
            total = stream_duration(container, v, path)
            if total is not None:
                duration = max(0.0, total - start)
        wanted = None if duration is None else round(duration * sample_rate)
        t0 = origin + start
        seeked = start > _SEEK_AFTER_S and a.time_base is not None
        if seeked:
            container.seek(int(math.floor(t0 / float(a.time_base))), stream=a, backward=True)
        try:
            chunks = _decode(container, a, sample_rate, channels, t0, wanted, path, seeked=seeked)
        except _SeekOvershot:
            container.seek(0)
            chunks = _decode(container, a, sample_rate, channels, t0, wanted, path, seeked=False)
    wav = np.concatenate(chunks, axis=1) if chunks else np.zeros((channels, 0), np.float32)
    if wanted is not None:
        if wav.shape[1] < wanted:
            wav = np.pad(wav, ((0, 0), (0, wanted - wav.shape[1])))
        wav = wav[:, :wanted]
    return torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))


def _check_complete(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream, last_end: float | None, path: PathLike
) -> None:
    """Decoding hit the end of the file: refuse to zero-pad audio that the stream says is there.

    Audio shorter than the video is normal (zero padding is the documented behaviour); audio whose
    decoding stops well before its *own* end (its packets' end, see ``stream_duration``) was lost.
    """
    length = stream_duration(container, stream, path)
    if last_end is None or length is None:
        return
    claimed = start_seconds(stream) + length
    if last_end < claimed - 0.5:
        raise MediaError(f"truncated: audio data ends at {last_end:.2f} s but the stream claims {claimed:.2f} s", path)


class _SeekOvershot(Exception):
    """The seek landed after the wanted start; decode from the beginning instead."""


def _decode(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    sample_rate: int,
    channels: int,
    t0: float,
    wanted: int | None,
    path: PathLike,
    *,
    seeked: bool,
) -> list[np.ndarray]:
    """Resampled chunks covering ``[t0, t0 + wanted / sample_rate)``; leading zeros if the audio starts late.

    Samples are counted, not re-derived from each frame's timestamp: the audio is treated as
    contiguous from its first frame, which is what makes FLAC/PCM reads sample-exact.
    """

    def resampler_for(src_channels: int) -> av.AudioResampler:
        direct = src_channels == channels or channels == 1 or src_channels == 1
        if not direct and src_channels > 8:  # swresample has no standard layout to rematrix from
            raise MediaError(f"{src_channels}-channel audio can be read as mono only, not as {channels} channels", path)
        # Keep the source layout when we mix ourselves (mean/repeat); otherwise let swresample rematrix.
        # Packed (interleaved) output, not planar: PyAV reads a planar frame's planes from AVFrame.data,
        # which holds 8, so to_ndarray() of a planar frame with more channels (a 64-channel WAV) reads past
        # it and crashes the process. One packed plane holds any channel count.
        layout = None if direct else layout_for(channels)
        return av.AudioResampler(format="flt", layout=layout, rate=sample_rate)

    resampler = resampler_for(stream.codec_context.channels or 0)
    setup: tuple[str, str, int] | None = None  # the input format the resampler was set up on
    tb = stream.time_base
    skip: int | None = None  # output samples still to drop before t0 (negative: zeros to prepend)
    have = 0
    last_end: float | None = None  # end time of the last decoded frame (seconds)
    chunks: list[np.ndarray] = []

    def take(frames: list[av.AudioFrame]) -> bool:
        nonlocal skip, have
        for out in frames:
            packed = out.to_ndarray().astype(np.float32, copy=False)  # [1, n * C_out], frame-major
            data = _mix(packed.reshape(-1, len(out.layout.channels)).T, channels)
            if skip is not None and skip > 0:
                drop = min(skip, data.shape[1])
                data = data[:, drop:]
                skip -= drop
            if data.shape[1] == 0:
                continue
            if wanted is not None:
                data = data[:, : wanted - have]
            chunks.append(np.array(data, dtype=np.float32))
            have += data.shape[1]
            if wanted is not None and have >= wanted:
                return True
        return False

    try:
        for frame in container.decode(stream):
            if skip is None:
                first = float(frame.pts * tb) if frame.pts is not None and tb is not None else start_seconds(stream)
                skip = round((t0 - first) * sample_rate)
                if skip < 0:
                    if seeked:  # landed after t0: the audio before it was skipped, not missing
                        raise _SeekOvershot
                    chunks.append(np.zeros((channels, -skip), np.float32))
                    have = -skip
                    if wanted is not None and have >= wanted:
                        chunks[-1] = chunks[-1][:, :wanted]
                        return chunks
            if frame.pts is not None and tb is not None:
                last_end = float(frame.pts * tb) + frame.samples / (frame.sample_rate or sample_rate)
            shape = (frame.format.name, frame.layout.name, frame.sample_rate)
            if setup is not None and shape != setup:
                # The stream changed format midway (a broadcast switching from 5.1 to stereo, a new
                # rate): a resampler takes one input format, so the old one is emptied and a new one made.
                if take(resampler.resample(None)):
                    return chunks
                resampler = resampler_for(len(frame.layout.channels))
            setup = shape
            if take(resampler.resample(frame)):
                return chunks
        take(resampler.resample(None))  # flush the resampler's buffered tail
        _check_complete(container, stream, last_end, path)
    except av.FFmpegError as err:
        raise MediaError(f"corrupt or truncated audio ({ffmpeg_message(err)})", path) from None
    return chunks


Subtype = Literal["PCM_16", "FLOAT"]

_WAV_CODECS = {"PCM_16": ("pcm_s16le", "s16"), "FLOAT": ("pcm_f32le", "flt")}


def write_audio(path: PathLike, wav: torch.Tensor, sample_rate: int, *, subtype: Subtype = "PCM_16") -> None:
    """Write a waveform to ``.wav`` (16-bit PCM or 32-bit float) or ``.flac`` (16-bit), atomically.

    Args:
        path: output file; the extension chooses the format.
        wav: float tensor ``[C, S]`` (or ``[S]`` for mono); clipped to [-1, 1], NaN written as 0.
        sample_rate: Hz.
        subtype: ``"PCM_16"`` (default) or ``"FLOAT"`` (WAV only).

    The file appears complete or not at all: it is written to a temporary file in the same
    directory and renamed over ``path``; on any error the temporary file is removed.
    """
    target = Path(path)
    ext = target.suffix.lower()
    if ext not in AUDIO_OUTPUT_EXTENSIONS:
        use = describe_extensions(AUDIO_OUTPUT_EXTENSIONS)
        raise MediaError(f"unsupported audio extension {ext or '(none)'!r}; use {use}", target)
    if subtype not in _WAV_CODECS:
        raise MediaError(f"unsupported subtype {subtype!r}; use 'PCM_16' or 'FLOAT'", target)
    if ext == ".flac" and subtype != "PCM_16":
        raise MediaError("FLAC stores integers: use subtype='PCM_16' or a .wav file", target)
    if not (isinstance(sample_rate, int) and sample_rate > 0):
        raise MediaError(f"sample_rate must be a positive int, got {sample_rate!r}", target)
    data = torch.as_tensor(wav).detach().to("cpu", torch.float32)
    if data.ndim == 1:
        data = data[None]
    if data.ndim != 2 or not 1 <= data.shape[0] <= 8:
        raise MediaError(f"wav must be [C, S] with 1 to 8 channels, got shape {tuple(data.shape)}", target)
    data = torch.nan_to_num(data, nan=0.0).clamp_(-1.0, 1.0)
    channels = data.shape[0]
    if ext == ".flac" or subtype == "PCM_16":
        codec, sample_fmt = ("flac", "s16") if ext == ".flac" else _WAV_CODECS["PCM_16"]
        # Scale by 32768 like FFmpeg's s16 <-> float conversion, so that write then read returns
        # every sample within half a step; only +1.0 itself saturates (to 32767). Round, not truncate.
        interleaved = np.clip((data.T.numpy() * 32768.0).round(), -32768, 32767).astype(np.int16)
    else:
        codec, sample_fmt = _WAV_CODECS["FLOAT"]
        interleaved = np.ascontiguousarray(data.T.numpy())
    container_format = "flac" if ext == ".flac" else "wav"
    layout = layout_for(channels)
    with atomic_output(target, ext) as tmp:
        try:
            with av.open(str(tmp), mode="w", format=container_format) as out:
                stream = out.add_stream(codec, rate=sample_rate, layout=layout)
                stream.codec_context.format = sample_fmt
                out.start_encoding()  # write the header now: an empty waveform still makes a valid file
                block = 8192  # frames of a bounded size keep encoder buffers small
                for pos in range(0, interleaved.shape[0], block):
                    part = np.ascontiguousarray(interleaved[pos : pos + block]).reshape(1, -1)
                    frame = av.AudioFrame.from_ndarray(part, format=sample_fmt, layout=layout)
                    frame.sample_rate = sample_rate
                    frame.pts = pos
                    for packet in stream.encode(frame):
                        out.mux(packet)
                for packet in stream.encode(None):
                    out.mux(packet)
        except (av.FFmpegError, OSError) as err:
            raise MediaError(f"cannot write audio ({ffmpeg_message(err)})", target) from None
