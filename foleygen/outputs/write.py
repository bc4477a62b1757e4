"""The files of one finished generation: the audio (.wav/.flac), the video with it muxed in (.mp4), the
alignment picture (.png). One writer for ``foleygen generate``, the web demo and whatever comes next.

:func:`write_result` takes a :class:`~foleygen.results.GenerationResult` and the paths wanted, and writes
every file from what the result already holds: the audio from ``result.audio``, the picture from frames
cut in the generation's own decoding pass (``result.extra_frames``), so the input is decoded once. Only
the mux opens the source again, to copy its video packets (no decoding unless the codec must change).

All or nothing: every file is first written under a hidden temporary name beside its final one
(:func:`foleygen.atomic.atomic_file`, locked so that another run's clean-up leaves it alone), and only
when all are complete are they renamed over their final names. A failure (or a kill) leaves no file of
this video under a final name; a killed run's temporaries are removed by the next one
(:func:`foleygen.staging.remove_stale_temporaries`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from foleygen.atomic import AtomicFile
from foleygen.errors import FoleyGenError, MediaError
from foleygen.io import FrameRequest
from foleygen.io._common import atomic_output
from foleygen.results import GenerationResult

#: The alignment picture of ``foleygen generate``: thumbnails at 25 fps, 128 px squares (enough to see
#: what happens; a picture holds a handful of them).
PLOT_FRAMES = FrameRequest(25.0, 128)


@dataclass(frozen=True)
class PlotSpec:
    """The alignment picture to draw: its ``frames`` (uint8 ``[F, H, W, 3]`` at ``fps``), title and the
    ground-truth ``events`` (any form :func:`foleygen.viz.plot_alignment` takes), if known."""

    frames: torch.Tensor
    fps: float
    title: str | None = None
    events: Iterable[Any] | None = None


def write_result(
    result: GenerationResult,
    *,
    audio: str | os.PathLike[str] | None = None,
    video: str | os.PathLike[str] | None = None,
    plot: str | os.PathLike[str] | None = None,
    plot_spec: PlotSpec | None = None,
    keep_original_audio: bool = False,
    reencode_video: bool | None = None,
) -> list[Path]:
    """Write the files of one result, all of them or none; return the paths written.

    Args:
        result: from :meth:`foleygen.FoleyGen.generate_results` (``audio [C, S]`` at ``sample_rate``).
        audio: the ``.wav`` or ``.flac`` to write (None: none).
        video: the ``.mp4``/``.m4v``/``.mov``: the source video's packets with the new audio (None: none;
            needs a file source).
        plot: the ``.png`` alignment picture (None: none).
        plot_spec: its frames and labels; default ``result.extra_frames[0]`` at :data:`PLOT_FRAMES`'s rate.
        keep_original_audio / reencode_video: as for :func:`foleygen.io.mux`.

    Raises:
        MediaError: a file cannot be written (the others of this result are not left behind either).
    """
    from foleygen.io import mux, write_audio

    wav, rate = result.audio, int(result.sample_rate)
    steps: list[tuple[Path, Callable[[Path], Any]]] = []
    if audio is not None:
        steps.append((Path(audio), lambda tmp: write_audio(tmp, wav, rate)))
    if video is not None:
        if result.source is None:
            raise MediaError("cannot mux: the result comes from frames, not from a video file", Path(video))
        source = result.source
        steps.append(
            (
                Path(video),
                lambda tmp: mux(
                    source,
                    wav,
                    rate,
                    tmp,
                    keep_original_audio=keep_original_audio,
                    reencode_video=reencode_video,
                    shown_as=video,
                ),
            )
        )
    if plot is not None:
        spec = plot_spec or _default_plot(result, Path(plot))
        steps.append((Path(plot), lambda tmp: _draw(spec, wav, rate, tmp)))
    return _staged(steps)


def _default_plot(result: GenerationResult, where: Path) -> PlotSpec:
    if not result.extra_frames:
        raise MediaError("no frames for the picture: generate with extra_frames=[PLOT_FRAMES] or pass plot_spec", where)
    return PlotSpec(result.extra_frames[0], PLOT_FRAMES.fps)


def _draw(spec: PlotSpec, wav: torch.Tensor, sample_rate: int, out: Path) -> None:
    from foleygen.viz import plot_alignment

    plot_alignment(spec.frames, spec.fps, wav, sample_rate, events=spec.events, title=spec.title, out_path=out)


def _staged(steps: list[tuple[Path, Callable[[Path], Any]]]) -> list[Path]:
    """Run each ``write(tmp)`` into a locked temporary beside its final path, then rename them all."""
    staged: list[AtomicFile] = []
    committed: list[Path] = []
    try:
        for final, write in steps:
            temp = atomic_output(final)
            staged.append(temp)
            try:
                write(temp.path)
            except FoleyGenError as err:
                if err.path != str(temp.path):
                    raise
                raise type(err)(err.message, final) from None  # the user asked for final, not tmp
            # The writers replace the temporary with their own complete file (a new inode): lock that
            # one until it is renamed, so a concurrent run's clean-up never takes it.
            temp.relock()
        for temp in staged:
            committed.append(temp.commit())
    except BaseException:
        for temp in staged:
            temp.abort()
        for final in committed:
            final.unlink(missing_ok=True)
        raise
    return [temp.final for temp in staged]
