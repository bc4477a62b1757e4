"""SynthFoley: a procedural audio-visual data set with exact ground truth.

Objects of six visual classes fall, bounce, collide, roll and spin; each class has its own sound
family, every impact is an event at an exact time. See ``docs/synthfoley.md``.

Public names::

    SynthFoleyConfig, CLASSES, CLASS_TO_INDEX, SPLITS, SynthClip,
    generate_clip(split, seed, index, config) -> SynthClip
    write_clip(clip, out_dir, stem) -> Path, read_clip_meta(path), clip_is_complete(out_dir, stem, ...)
    SynthFoleyDataset(split, seed, num, config), collate_clips   (torch, clips made on the fly)

Reference onsets for metrics come from ``foleygen.eval.onsets.reference_onsets(events)``.
"""

from __future__ import annotations

from typing import Any

from foleygen.data.synthfoley.config import (
    CLASS_TO_INDEX,
    CLASSES,
    GENERATOR_VERSION,
    SPLITS,
    SynthFoleyConfig,
    clip_rng,
)
from foleygen.data.synthfoley.generator import SynthClip, generate_clip

__all__ = [
    "CLASSES",
    "CLASS_TO_INDEX",
    "GENERATOR_VERSION",
    "SPLITS",
    "SynthClip",
    "SynthFoleyConfig",
    "SynthFoleyDataset",
    "clip_is_complete",
    "clip_rng",
    "generate_clip",
    "audio_to_pcm16",
    "collate_clips",
    "read_clip_meta",
    "write_clip",
]


def __getattr__(name: str) -> Any:
    # torch (dataset) and av (files) load only when asked for: the generator itself needs numpy/scipy.
    if name in ("SynthFoleyDataset", "collate_clips"):
        from foleygen.data.synthfoley import dataset

        return getattr(dataset, name)
    if name in ("write_clip", "read_clip_meta", "clip_is_complete", "audio_to_pcm16"):
        from foleygen.data.synthfoley import files

        return getattr(files, name)
    raise AttributeError(f"module 'foleygen.data.synthfoley' has no attribute {name!r}")
