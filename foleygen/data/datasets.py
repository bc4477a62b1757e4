"""Training data from the cache only: fixed-length crops of codes and visual data, with padding masks.

No video is decoded here (that happened once, in ``foleygen prepare``). A clip shorter than the training
``duration`` is padded (codes 0, features/frames 0) and the masks say which positions are real; a longer
one is cropped -- at a random start in training (a pure function of ``(seed, epoch, index)``, so runs
and resumed runs see the same crops), at its beginning in validation.

Stored frames (a cache for a trainable encoder) can be mirrored left-right in training (``hflip``, the
probability per item, drawn like the crops from ``(seed, epoch, index)``). A jointly trained encoder on a
few thousand clips learns them by heart (with 3000 SynthFoley clips its clip-label loss reached 0 on the
training clips while it stayed at 0.12 on held-out ones, docs/RESULTS.md); a mirrored scene sounds the
same in mono audio, so each clip becomes two views without decoding or storing anything more. Features
of a frozen encoder cannot be mirrored after the fact, so ``hflip`` needs a cache of frames.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from foleygen.config import SequenceConfig
from foleygen.data.cache import CacheReader
from foleygen.errors import ConfigError, DataError


class CachedClipDataset(Dataset):
    """Clips of a cache, cropped/padded to ``duration``.

    Args:
        cache: a :class:`CacheReader` or a cache directory.
        splits: which split(s) to use (``None`` = all clips).
        duration: training clip length in seconds (<= the cache's stored duration is not required:
            longer requests pad).
        train: random crops (else crops at the start).
        seed: the run's seed (crop positions derive from ``(seed, epoch, index)``).
        hflip: probability of mirroring an item's frames left-right (training only; frames caches only).

    Items: ``{"codes": int64 [K, T], "codes_mask": bool [T], "visual": float32 [F, D] or uint8
    [F, S, S, 3], "visual_mask": bool [F], "id": str, "label": str | None, "index": int,
    "audio_start": int}`` with ``T``/``F`` from :class:`SequenceConfig` at the cache's codec frame rate
    and visual fps; ``audio_start`` is the crop's first audio frame in the clip.
    """

    def __init__(
        self,
        cache: CacheReader | str | os.PathLike[str],
        splits: str | Iterable[str] | None,
        duration: float,
        *,
        train: bool,
        seed: int = 0,
        hflip: float = 0.0,
    ) -> None:
        self.cache = cache if isinstance(cache, CacheReader) else CacheReader(cache)
        if not 0.0 <= hflip <= 1.0:
            raise ConfigError(f"data.hflip must be a probability in [0, 1], got {hflip}")
        if hflip > 0 and self.cache.visual.get("store") != "frames":
            raise ConfigError(
                "data.hflip mirrors stored frames, but this cache holds frozen-encoder features", self.cache.cache_dir
            )
        self.hflip = float(hflip) if train else 0.0
        names = None if splits is None else ({splits} if isinstance(splits, str) else set(splits))
        self.indices = [i for i, c in enumerate(self.cache.clips) if names is None or c.split in names]
        codec, visual = self.cache.codec, self.cache.visual
        self.seq = SequenceConfig(
            duration=float(duration),
            sample_rate=int(codec["sample_rate"]),
            frame_rate=float(codec["frame_rate"]),
            fps=float(visual["fps"]),
        )
        self.num_audio_frames = self.seq.num_audio_frames
        self.num_visual_frames = self.seq.num_visual_frames
        self.train = train
        self.seed = int(seed)
        self.epoch = 0
        # Crops start on a visual frame; the audio start is that instant in codec frames. With the
        # usual rates (50 Hz audio, 25 or 12.5 fps) every visual frame starts on an audio frame exactly.
        self.audio_per_visual = Fraction(self.seq.frame_rate).limit_denominator(1000) / Fraction(
            self.seq.fps
        ).limit_denominator(1001)

    def __len__(self) -> int:
        return len(self.indices)

    def set_epoch(self, epoch: int) -> None:
        """Called by the trainer at each epoch: new crops every epoch, reproducibly."""
        self.epoch = int(epoch)

    def split_names(self) -> list[str]:
        """Splits present in the cache (for error messages and docs)."""
        return sorted({c.split for c in self.cache.clips})

    def _crop_start(self, index: int, valid_audio: int, valid_visual: int) -> tuple[int, int]:
        """``(audio_start, visual_start)`` of the crop of item ``index``."""
        max_visual = valid_visual - self.num_visual_frames
        max_from_audio = int((valid_audio - self.num_audio_frames) / self.audio_per_visual)
        limit = min(max_visual, max_from_audio)
        if not self.train or limit <= 0:
            return 0, 0
        rng = np.random.default_rng([self.seed, self.epoch, index])
        v0 = int(rng.integers(0, limit + 1))
        return round(v0 * self.audio_per_visual), v0

    def _mirrored(self, index: int) -> bool:
        """Whether item ``index`` shows its frames mirrored this epoch (its own stream: crops stay as they were)."""
        if self.hflip <= 0:
            return False
        return bool(np.random.default_rng([self.seed, self.epoch, index, 1]).random() < self.hflip)

    def __getitem__(self, index: int) -> dict[str, Any]:
        ci = self.indices[index]
        clip = self.cache.clips[ci]
        codes = self.cache.codes(ci)  # [K, T_i]
        visual = self.cache.visual_data(ci)  # [F_i, ...]
        a0, v0 = self._crop_start(index, codes.shape[1], visual.shape[0])
        T, F = self.num_audio_frames, self.num_visual_frames
        codes = np.asarray(codes[:, a0 : a0 + T], dtype=np.int64)
        visual = np.asarray(visual[v0 : v0 + F])
        out_codes = torch.zeros(codes.shape[0], T, dtype=torch.int64)
        out_codes[:, : codes.shape[1]] = torch.from_numpy(codes)
        codes_mask = torch.zeros(T, dtype=torch.bool)
        codes_mask[: codes.shape[1]] = True
        if visual.dtype == np.uint8:
            if self._mirrored(index):
                visual = visual[:, :, ::-1]  # [F, S, S, 3]: the width axis
            out_visual = torch.zeros((F, *visual.shape[1:]), dtype=torch.uint8)
            out_visual[: visual.shape[0]] = torch.from_numpy(visual.copy())
        else:
            out_visual = torch.zeros((F, *visual.shape[1:]), dtype=torch.float32)
            out_visual[: visual.shape[0]] = torch.from_numpy(visual.astype(np.float32))
        visual_mask = torch.zeros(F, dtype=torch.bool)
        visual_mask[: visual.shape[0]] = True
        return {
            "codes": out_codes,
            "codes_mask": codes_mask,
            "visual": out_visual,
            "visual_mask": visual_mask,
            "id": clip.id,
            "label": clip.label,
            "index": ci,
            "audio_start": a0,
        }


def collate_clips(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack :class:`CachedClipDataset` items: ``codes [B, K, T]``, ``codes_mask [B, T]``, ``visual [B, F, ...]``,
    ``visual_mask [B, F]``, ``ids`` (list of str), ``labels`` (list of the clips' labels, str or None),
    ``audio_starts`` (list of each crop's first audio frame in its clip)."""
    if not items:
        raise DataError("empty batch")
    return {
        "codes": torch.stack([i["codes"] for i in items]),
        "codes_mask": torch.stack([i["codes_mask"] for i in items]),
        "visual": torch.stack([i["visual"] for i in items]),
        "visual_mask": torch.stack([i["visual_mask"] for i in items]),
        "ids": [i["id"] for i in items],
        "labels": [i.get("label") for i in items],
        "audio_starts": [int(i.get("audio_start", 0)) for i in items],
    }


def build_cached_datasets(
    cache_dir: str | os.PathLike[str],
    duration: float,
    *,
    train_splits: str | list[str],
    val_splits: str | list[str] | None,
    seed: int = 0,
    allow_partial: bool = False,
) -> tuple[CachedClipDataset, CachedClipDataset | None]:
    """``(train, validation)`` datasets over one cache; validation is ``None`` when it would be empty."""
    reader = CacheReader(cache_dir, allow_partial=allow_partial)
    train = CachedClipDataset(reader, train_splits, duration, train=True, seed=seed)
    if len(train) == 0:
        raise ConfigError(
            f"no clips of split(s) {train_splits!r} in the cache (it has {train.split_names()})", cache_dir
        )
    val = CachedClipDataset(reader, val_splits, duration, train=False, seed=seed) if val_splits else None
    return train, (val if val is not None and len(val) else None)
