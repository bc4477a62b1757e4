"""From a source to outputs: the loop behind ``foleygen live`` and long videos in ``foleygen generate``.

:class:`StreamRun` takes the events of a :class:`foleygen.sources.FrameSource`, pushes its frames
through a :class:`foleygen.stream.StreamSession` and writes the audio that becomes final to every
writer of :mod:`foleygen.outputs.incremental` (the source's packets go to the muxer). Memory holds
one generation window and the pipeline's latency of frames and packets, whatever the length.

It measures as it goes: the real-time factor (seconds of video per second of compute), each frame's
latency (from the moment its source frame was due, which is when it was read or, for a stream arriving
faster than real time, its place on the source's clock, to the moment the audio of its period was
written) and, for a paced source, how far behind the source it is. **Degrade rule** (paced sources
only): when a frame's audio leaves more than ``max_lag`` seconds after the frame came in, guidance is
dropped from the next window on (one decoding row instead of two; the window under way finishes as it
began), and it is said on stderr. If that is not enough, the lag is reported again every 10 s; the
audio never drifts from the picture (its timeline is the frames' timestamps, in the files as in the
muxed video), only its delay grows.

:func:`generate_long_video` is the long-video path of ``foleygen generate``: the same loop on a file
read at full speed, every output staged under a temporary name and renamed when complete.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from foleygen.errors import ConfigError, MediaError
from foleygen.io.media_types import AUDIO_OUTPUT_EXTENSIONS, STREAM_MUX_FORMATS, describe_extensions
from foleygen.outputs.incremental import COPYABLE, FlacWriter, MuxWriter, WavWriter, abort, commit
from foleygen.sources import FrameSource
from foleygen.stream import StreamSession

if TYPE_CHECKING:
    from foleygen.api import FoleyGen, GenerationParams


@dataclass
class RunStats:
    """What a run measured. ``latencies``: seconds from a frame's arrival to its audio's writing."""

    media_seconds: float = 0.0
    busy_seconds: float = 0.0  # generation and writing (not waiting for the source)
    wall_seconds: float = 0.0
    frames: int = 0
    latencies: list[float] = field(default_factory=list)
    degraded: list[str] = field(default_factory=list)
    interrupted: bool = False
    ended_by: str = "end of source"
    error: Exception | None = None  # what ended the source early, when finish_on_error kept the outputs

    @property
    def real_time_factor(self) -> float:
        """Seconds of video generated per second of compute (> 1: faster than real time)."""
        return self.media_seconds / self.busy_seconds if self.busy_seconds > 0 else math.inf


def audio_writer(path: str | Path, sample_rate: int, channels: int, *, staged: bool) -> WavWriter | FlacWriter:
    """A growing ``.wav`` or ``.flac`` by the extension."""
    suffix = Path(path).suffix.lower()
    if suffix == ".wav":
        return WavWriter(path, sample_rate, channels, staged=staged)
    if suffix == ".flac":
        return FlacWriter(path, sample_rate, channels, staged=staged)
    wanted = describe_extensions(AUDIO_OUTPUT_EXTENSIONS)
    raise ConfigError(f"audio output must be {wanted}, not {suffix or '(no extension)'!r}: {path}")


def copies_video(source: FrameSource, mux_path: str | Path) -> bool:
    """Whether the source's video packets can go into ``mux_path`` as they are (else re-encoded)."""
    from foleygen.io._common import codec_name

    fmt = STREAM_MUX_FORMATS.get(Path(mux_path).suffix.lower(), "mp4")
    return codec_name(source.stream) in COPYABLE[fmt]


class StreamRun:
    """One source through one session into writers.

    Args:
        model: the :class:`FoleyGen`.
        source: an opened :class:`FrameSource` at ``model.visual_encoder.input_fps``.
        writers: audio writers (``write(wav [C, n])``), the muxer among them if any.
        muxer: the :class:`MuxWriter` that also takes the source's packets (or decoded frames).
        seed / params: the decoding, as for :meth:`FoleyGen.stream`.
        known_duration: seconds of audio when known up front (a file: the offline length rule); None
            (live): the frames taken decide, so Ctrl-C ends the audio where the video stopped.
        allow_full_mask: run a ``full``-mask model (its latency is a whole window).
        max_lag: seconds of delay past which the degrade rule acts (paced sources; None: never).
        status: called with a one-line status about twice a second (None: silent).
        warn: called with each degrade message.
        finish_on_error: a source that stalls or breaks after its first frame ends the run like its end
            (the audio so far finished, :attr:`RunStats.error` set) instead of raising.
    """

    def __init__(
        self,
        model: FoleyGen,
        source: FrameSource,
        writers: list[Any],
        *,
        muxer: MuxWriter | None = None,
        seed: int = 0,
        params: GenerationParams | None = None,
        known_duration: float | None = None,
        allow_full_mask: bool = False,
        max_lag: float | None = None,
        status: Callable[[str], None] | None = None,
        warn: Callable[[str], None] | None = None,
        finish_on_error: bool = False,
    ) -> None:
        self.model, self.source, self.writers, self.muxer = model, source, writers, muxer
        self.session = StreamSession(
            model,
            fps=source.fps,
            seed=seed,
            params=params,
            known_duration=known_duration,
            allow_full_mask=allow_full_mask,
        )
        self.max_lag = max_lag if source.realtime else None
        self.status, self.warn = status, warn or (lambda _m: None)
        self.stats = RunStats()
        self.finish_on_error = finish_on_error
        self._pending: collections.deque[tuple[float, float]] = collections.deque()  # (period end, arrival)
        self._written = 0  # samples written

    def _write(self, wav: torch.Tensor) -> None:
        if wav.shape[-1] == 0:
            return
        for w in self.writers:
            w.write(wav)
        self._written += wav.shape[-1]
        heard = self._written / self.model.sample_rate
        now = time.perf_counter()
        while self._pending and self._pending[0][0] <= heard + 1e-9:
            self.stats.latencies.append(max(0.0, now - self._pending.popleft()[1]))  # 0: ready before due

    def _degrade(self, lag: float, media: float) -> None:
        if self.max_lag is None or lag <= self.max_lag:
            return
        if self.session.codes.drop_guidance():
            message = (
                f"cannot keep up ({lag:.2f} s behind at {media:.1f} s): classifier-free guidance off from the "
                "next window"
            )
            self.stats.degraded.append(message)
            self.warn(message)
        elif lag > 2 * self.max_lag and (not self.stats.degraded or media - self._last_warned >= 10.0):
            message = f"still {lag:.2f} s behind the source at {media:.1f} s (audio stays in sync, only late)"
            self.stats.degraded.append(message)
            self.warn(message)
        else:
            return
        self._last_warned = media

    def run(self) -> RunStats:
        """Pump until the source ends (or Ctrl-C: the audio of the frames so far is finished too)."""
        session, stats, muxer = self.session, self.stats, self.muxer
        self._last_warned = -math.inf
        started = time.perf_counter()
        shown = started
        fps = self.source.fps
        first: float | None = None  # when the first frame came in (the source's time 0 on our clock)
        try:
            with self.model._eval_mode():
                try:
                    for ev in self.source.events():
                        if ev.kind == "packet":
                            if muxer is not None:
                                muxer.video_packet(ev.payload, ev.t, self.source.origin or 0.0)
                            continue
                        if ev.kind == "decoded":
                            if muxer is not None:
                                muxer.video_frame(ev.payload, ev.t)
                            continue
                        t0 = time.perf_counter()
                        # A frame is due when it came in, or at its place on the source's own clock if it
                        # came early: a stream arriving faster than real time (a file piped to stdin) is
                        # not late for frames whose time has not come, so it does not trigger the degrade
                        # rule; a camera's frames arrive at their time, where the two agree.
                        first = ev.arrived if first is None else first
                        due = max(ev.arrived, first + ev.index / fps)
                        self._pending.append(((ev.index + 1) / fps, due))
                        self._write(session.push(ev.frame))
                        now = time.perf_counter()
                        stats.busy_seconds += now - t0
                        stats.frames += 1
                        stats.media_seconds = stats.frames / fps
                        lag = now - self._pending[0][1] if self._pending else 0.0
                        self._degrade(lag, stats.media_seconds)
                        if self.status is not None and now - shown >= 0.5:
                            shown = now
                            self.status(self._line(lag))
                except KeyboardInterrupt:
                    stats.interrupted, stats.ended_by = True, "interrupted"
                    if session.sampler.seen == 0:
                        raise
                except MediaError as err:  # a stall, corrupt data: live keeps what it made
                    if not self.finish_on_error or session.sampler.seen == 0:
                        raise
                    stats.error, stats.ended_by = err, str(err)
                t0 = time.perf_counter()
                self._write(session.end())
                stats.busy_seconds += time.perf_counter() - t0
        finally:
            stats.wall_seconds = time.perf_counter() - started
            self.source.close()
        return stats

    def _line(self, lag: float) -> str:
        s = self.stats
        lat = sorted(s.latencies[-250:])
        p50 = f"{1000 * lat[len(lat) // 2]:.0f} ms" if lat else "-"
        behind = f", {lag:.2f} s behind" if self.source.realtime else ""
        return f"{s.media_seconds:7.1f} s  {s.real_time_factor:5.2f}x real time  latency {p50}{behind}"


def long_video_path_applies(model: FoleyGen, video: Path, duration: float | None, keep_original_audio: bool) -> bool:
    """Whether ``foleygen generate`` takes the streamed path for this video: longer than the model's window
    (a shorter one fits in memory anyway), a model that streams (cross-attention, an encoder that encodes
    piece by piece), and an original audio track (when kept) that can be copied into the .mp4."""
    from foleygen.io import probe
    from foleygen.io.mux import MP4_AUDIO_CODECS

    if model.lm.config.conditioning != "cross":
        return False
    enc = model.visual_encoder
    if getattr(enc, "stream_context", None) is None and enc.chunk_multiple is None:
        return False
    try:
        info = probe(video)
    except Exception:  # the offline path reports the file's problem in its own words
        return False
    if not info.has_video or not info.duration or (duration or info.duration) <= model.duration:
        return False
    if keep_original_audio and info.has_audio:
        return (getattr(info, "audio_codec", None) or "") in MP4_AUDIO_CODECS
    return True


def generate_long_video(
    model: FoleyGen,
    video: Path,
    audio_path: Path,
    mux_path: Path | None,
    *,
    seed: int = 0,
    duration: float | None = None,
    keep_original_audio: bool = False,
    params: GenerationParams | None = None,
) -> list[Path]:
    """Generate the soundtrack of ``video`` window by window into ``audio_path`` (and ``mux_path``, the
    video copied with the new audio), memory independent of the length. Same codes as
    :meth:`FoleyGen.generate_codes` for the same seed (same frames, same windows), same audio up to
    float rounding at the chunk joins; files appear complete or not at all. ``params``: the decoding
    settings (default the model's). Returns the paths written."""
    enc = model.visual_encoder
    from foleygen.vision.frames import decode_size

    def size_for(w: int, h: int) -> Any:
        return decode_size(enc, w, h)

    source = FrameSource(
        str(video),
        fps=float(enc.input_fps),
        size_for=size_for,
        duration=duration,
        packets=mux_path is not None,
        copy_audio=keep_original_audio and mux_path is not None,
    )
    from foleygen.api import _check_length

    assert source.known_duration is not None
    _check_length(duration, source.known_duration, video)  # the offline path's limit on audio past the video
    writers: list[Any] = []
    try:
        writers.append(audio_writer(audio_path, model.sample_rate, model.channels, staged=True))
        muxer = None
        if mux_path is not None:
            copy = copies_video(source, mux_path)
            source.decoded = not copy
            copied = [source.audio] if source.audio is not None else []
            muxer = MuxWriter(
                mux_path,
                model.sample_rate,
                model.channels,
                video=source.stream,
                copy_video=copy,
                copied=copied,
                staged=True,
                length=round(source.known_duration * model.sample_rate),  # as mux(): the video's length
            )
            writers.append(muxer)
        known = duration or source.known_duration
        StreamRun(
            model, source, writers, muxer=muxer, seed=seed, params=params, known_duration=known, allow_full_mask=True
        ).run()
        commit(writers)
    except BaseException:
        source.close()
        abort(writers)
        raise
    return [audio_path] + ([mux_path] if mux_path is not None else [])


def stream_long_jobs(
    model: FoleyGen,
    jobs: list[Any],
    args: Any,
    planned_outputs: Callable[[Any, Path, Any], list[Path]],
    done: list[Any],
    report_failure: Callable[[Any, Exception], None],
    params: GenerationParams | None = None,
) -> list[Any]:
    """``foleygen generate``'s branch for long videos: each job the streamed path applies to
    (:func:`long_video_path_applies`; not with ``--plot``, whose picture needs the whole audio) is
    generated here, its outputs set on ``job.outputs`` and the job put in ``done`` (or its failure
    reported); returns the jobs left for the offline path. ``params``: the decoding settings of the run."""
    rest = []
    for job in jobs:
        keep = bool(getattr(args, "keep_original_audio", False))
        if getattr(args, "plot", False) or not long_video_path_applies(model, job.path, job.duration, keep):
            rest.append(job)
            continue
        outputs = planned_outputs(job, Path(args.output), args)
        mux = next((p for p in outputs if p.suffix == ".mp4"), None)
        audio = next(p for p in outputs if p.suffix in AUDIO_OUTPUT_EXTENSIONS)
        try:
            job.outputs = generate_long_video(
                model,
                job.path,
                audio,
                mux,
                seed=args.seed,
                duration=job.duration,
                keep_original_audio=keep,
                params=params,
            )
            done.append(job)
        except Exception as err:  # this file's failure: the others go on
            report_failure(job, err)
    return rest
