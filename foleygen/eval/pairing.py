"""Find the clips to compare: files of two folders paired by stem, and reading them at a metric's rate.

Pairing is by file stem (``dog_bark.wav`` in the generated folder pairs with ``dog_bark.flac`` or
``dog_bark.mp4`` in the reference folder). Stems present on one side only are reported, never silently
dropped. Every clip is read mono at the metric model's rate and cut or zero-padded to the clip length
(8 s by default, as MMAudio/av-benchmark; 10 s selectable), so all systems are scored on equal spans.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import torch

from foleygen.errors import DataError
from foleygen.io.media_types import AUDIO_EXTENSIONS, AUDIO_SOURCE_EXTENSIONS

__all__ = ["Pairing", "list_media", "pair_by_stem", "load_clip"]


@dataclass
class Pairing:
    """Result of :func:`pair_by_stem`.

    Attributes:
        pairs: ``(stem, generated_path, reference_path)`` sorted by stem.
        only_generated: stems with no reference file.
        only_reference: stems with no generated file.
    """

    pairs: list[tuple[str, Path, Path]] = field(default_factory=list)
    only_generated: list[str] = field(default_factory=list)
    only_reference: list[str] = field(default_factory=list)

    @property
    def stems(self) -> list[str]:
        return [stem for stem, _, _ in self.pairs]


def list_media(
    directory: str | os.PathLike[str],
    extensions: Collection[str] = AUDIO_SOURCE_EXTENSIONS,
    *,
    on_ambiguous: Callable[[Path, str], None] | None = None,
) -> dict[str, Path]:
    """``{stem: path}`` of the media files directly in ``directory`` (hidden files ignored), by default
    those that can hold sound (:data:`foleygen.io.media_types.AUDIO_SOURCE_EXTENSIONS`).

    When one stem has several files, an audio extension wins over a video one (a folder of generated
    ``.wav`` next to muxed ``.mp4`` is common); two audio files with one stem are ambiguous: rejected
    (:class:`DataError`), or, with ``on_ambiguous``, reported as ``on_ambiguous(path, problem)`` and the
    stem left out (an evaluation goes on with the other stems).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError("folder not found", directory)
    found: dict[str, Path] = {}
    ambiguous: set[str] = set()
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.suffix.lower() not in extensions:
            continue
        other = found.get(path.stem)
        if other is None:
            found[path.stem] = path
            continue
        other_audio, this_audio = other.suffix.lower() in AUDIO_EXTENSIONS, path.suffix.lower() in AUDIO_EXTENSIONS
        if other_audio == this_audio:
            problem = f"two files share the stem {path.stem!r} ({other.name}, {path.name}); keep one"
            if on_ambiguous is None:
                raise DataError(problem, directory)
            on_ambiguous(path, problem)
            ambiguous.add(path.stem)
        elif this_audio:
            found[path.stem] = path
    return {stem: path for stem, path in found.items() if stem not in ambiguous}


def pair_by_stem(
    generated: str | os.PathLike[str],
    reference: str | os.PathLike[str],
    *,
    on_ambiguous: Callable[[Path, str], None] | None = None,
) -> Pairing:
    """Pair the media files of two folders by stem (``on_ambiguous``: see :func:`list_media`)."""
    gen = list_media(generated, on_ambiguous=on_ambiguous)
    ref = list_media(reference, on_ambiguous=on_ambiguous)
    if not gen:
        raise DataError("no audio or video files", generated)
    return Pairing(
        pairs=[(s, gen[s], ref[s]) for s in sorted(gen) if s in ref],
        only_generated=sorted(set(gen) - set(ref)),
        only_reference=sorted(set(ref) - set(gen)),
    )


def load_clip(path: str | os.PathLike[str], sample_rate: int, duration: float) -> torch.Tensor:
    """Mono float32 ``[S]``, ``S = round(duration * sample_rate)``: resampled (FFmpeg swresample, via
    :func:`foleygen.io.read_audio`), mixed to mono, then cut or zero-padded."""
    from foleygen.io import read_audio

    return read_audio(path, sample_rate, 1, duration=duration)[0]
