"""SynthFoley configuration, class list and the per-clip random number generator.

Everything random in a clip comes from one :class:`numpy.random.Generator` derived from a stable
hash of ``(split, seed, index)`` (BLAKE2b, never Python's salted ``hash()``), so a clip is a pure
function of those three values and the config, and two splits never share a random stream even when
they are given the same ``seed``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from foleygen.errors import ConfigError

# The visual classes, each with its own shape/colour/texture and its own sound family. The order is
# the class index used by the event classifier (never reorder; append new classes at the end).
CLASSES: tuple[str, ...] = ("wood", "metal", "glass", "drum", "rubber", "paper")
CLASS_TO_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}

# Splits the CLI offers. Any non-empty name works for the generator: the name is part of the hash.
SPLITS: tuple[str, ...] = ("train", "val", "test")

# Version of the generator's output. Bump it whenever a change alters the clips produced for a given
# (split, seed, index, config): files record it, so stale data sets can be detected.
GENERATOR_VERSION = 3


@dataclass(frozen=True)
class SynthFoleyConfig:
    """How SynthFoley clips are made.

    Attributes:
        duration: clip length in seconds.
        fps: video frames per second (frame ``i`` shows the scene at time ``i / fps``).
        sample_rate: audio samples per second (mono).
        size: frame height and width in pixels.
        min_objects / max_objects: on-screen objects per clip (each dropped in at its own time).
        p_offscreen: probability that a clip also has one object outside the frame; its sounds are in
            the audio but its events carry ``offscreen=True`` so metrics can exclude them.
        p_roll: probability that a round object (metal, rubber) is thrown in sideways and rolls.
        p_spin: probability that a non-rolling object spins on the floor after it settles.
        p_late_start: probability that the first object enters only after 1-2 s (leading silence).
        noise_db: range of the background noise level, dB RMS relative to full scale.
        substeps_per_frame: physics steps per video frame; impact times are solved analytically
            inside each step, so this only bounds how far pair collisions are linearised.
    """

    duration: float = 4.0
    fps: float = 25.0
    sample_rate: int = 16000
    size: int = 128
    min_objects: int = 1
    max_objects: int = 4
    p_offscreen: float = 0.25
    p_roll: float = 0.35
    p_spin: float = 0.3
    p_late_start: float = 0.2
    noise_db: tuple[float, float] = (-62.0, -48.0)
    substeps_per_frame: int = 4

    def __post_init__(self) -> None:
        for name in ("duration", "fps", "sample_rate", "size"):
            value = getattr(self, name)
            if not value > 0:
                raise ConfigError(f"SynthFoleyConfig.{name} must be positive, got {value!r}")
        if self.size < 16:
            raise ConfigError(f"SynthFoleyConfig.size must be at least 16 pixels, got {self.size}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ConfigError(
                f"SynthFoleyConfig needs 1 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}"
            )
        for name in ("p_offscreen", "p_roll", "p_spin", "p_late_start"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"SynthFoleyConfig.{name} must be a probability, got {value!r}")
        if self.substeps_per_frame < 1:
            raise ConfigError(f"SynthFoleyConfig.substeps_per_frame must be >= 1, got {self.substeps_per_frame}")

    @property
    def num_frames(self) -> int:
        """F: video frames per clip, ``round(duration * fps)``."""
        return max(1, round(self.duration * self.fps))

    @property
    def num_samples(self) -> int:
        """S: audio samples per clip, ``round(duration * sample_rate)``."""
        return round(self.duration * self.sample_rate)


def clip_rng(split: str, seed: int, index: int) -> np.random.Generator:
    """The random generator of clip ``(split, seed, index)``: PCG64 seeded from a BLAKE2b digest."""
    if not isinstance(split, str) or not split:
        raise ConfigError(f"SynthFoley split must be a non-empty string, got {split!r}")
    if int(index) < 0:
        raise ConfigError(f"SynthFoley clip index must be >= 0, got {index!r}")
    key = f"synthfoley/v{GENERATOR_VERSION}/{split}/{int(seed)}/{int(index)}".encode()
    digest = hashlib.blake2b(key, digest_size=16).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest, "little")))
