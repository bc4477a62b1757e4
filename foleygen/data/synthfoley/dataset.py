"""An in-memory torch Dataset of SynthFoley clips, generated on the fly (no files needed)."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from foleygen.data.synthfoley.config import SynthFoleyConfig
from foleygen.data.synthfoley.generator import generate_clip
from foleygen.errors import ConfigError


class SynthFoleyDataset(Dataset):
    """Clips ``start_index .. start_index + num - 1`` of ``split`` with base ``seed``.

    Item ``i`` is clip ``start_index + i``, regenerated on every access (deterministic, so epochs see
    the same clips; generation runs in DataLoader workers). Each item is a dict::

        frames: uint8 [F, H, W, 3]     audio: float32 [1, S]     events: list[dict]
        split, seed, index

    Batch them with :func:`collate_clips` (events have different lengths).
    """

    def __init__(
        self, split: str, seed: int, num: int, config: SynthFoleyConfig | None = None, start_index: int = 0
    ) -> None:
        if num < 0 or start_index < 0:
            raise ConfigError(f"SynthFoleyDataset needs num >= 0 and start_index >= 0, got {num}, {start_index}")
        self.split, self.seed, self.num, self.start_index = split, int(seed), int(num), int(start_index)
        self.config = config or SynthFoleyConfig()

    def __len__(self) -> int:
        return self.num

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -self.num <= i < self.num:
            raise IndexError(f"SynthFoleyDataset index {i} out of range for {self.num} clips")
        i = i % self.num
        clip = generate_clip(self.split, self.seed, self.start_index + i, self.config)
        return {
            "frames": torch.from_numpy(clip.frames),
            "audio": torch.from_numpy(clip.audio)[None],
            "events": clip.events,
            "split": clip.split,
            "seed": clip.seed,
            "index": clip.index,
        }


def collate_clips(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack items of :class:`SynthFoleyDataset`: frames ``uint8 [B, F, H, W, 3]``, audio ``[B, 1, S]``,
    events/index as lists."""
    return {
        "frames": torch.stack([it["frames"] for it in items]),
        "audio": torch.stack([it["audio"] for it in items]),
        "events": [it["events"] for it in items],
        "index": [it["index"] for it in items],
        "split": [it["split"] for it in items],
        "seed": [it["seed"] for it in items],
    }
