"""ImageBind score: how well generated audio matches its video in ImageBind's joint space.

``IB = 100 * mean_i cos(E_vision(video_i), E_audio(generated_i))`` over paired clips. av-benchmark
reports the mean cosine itself; current papers (MMAudio, ThinkSound, ...) print it x100, which is what we
report (docs/evaluation.md). The ImageBind model comes from :mod:`foleygen.vision.imagebind` (weights from
``--imagebind PATH`` or ``$FOLEYGEN_IMAGEBIND``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from foleygen.errors import DataError
from foleygen.eval.embedders import ModelUnavailable

__all__ = ["ImageBindLike", "imagebind_score", "resolve_imagebind", "load_imagebind", "IMAGEBIND_ENV",
           "IMAGEBIND_FILE", "IMAGEBIND_SOURCE"]

IMAGEBIND_ENV = "FOLEYGEN_IMAGEBIND"
IMAGEBIND_FILE = "imagebind_huge.pth"
IMAGEBIND_SOURCE = "https://dl.fbaipublicfiles.com/omnivore/models/imagebind_huge.pth"


class ImageBindLike(Protocol):
    """What the score needs from an ImageBind model (``foleygen.vision.imagebind`` provides it)."""

    def embed_vision(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames ``[F, H, W, 3]`` -> ``[D]`` (or ``[1, D]``)."""

    def embed_audio(self, wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Mono ``wav [S]`` -> ``[D]`` (or ``[1, D]``)."""


def imagebind_score(video_embeddings: np.ndarray | torch.Tensor, audio_embeddings: np.ndarray | torch.Tensor) -> float:
    """``100 * mean cos`` of paired rows of ``video_embeddings [N, D]`` and ``audio_embeddings [N, D]``."""
    v = np.asarray(video_embeddings, dtype=np.float64)
    a = np.asarray(audio_embeddings, dtype=np.float64)
    if v.ndim != 2 or v.shape != a.shape or v.shape[0] == 0:
        raise DataError(f"ImageBind score needs two non-empty [N, D] arrays of one shape, got {v.shape} and {a.shape}")
    cos = (v * a).sum(1) / np.maximum(np.linalg.norm(v, axis=1) * np.linalg.norm(a, axis=1), 1e-12)
    return float(100.0 * cos.mean())


def resolve_imagebind(path: str | os.PathLike[str] | None = None) -> Path:
    """The ImageBind weights file from ``path`` or ``$FOLEYGEN_IMAGEBIND`` (ModelUnavailable when absent)."""
    chosen = path or os.environ.get(IMAGEBIND_ENV)
    if not chosen:
        raise ModelUnavailable(f"imagebind weights not configured: pass --imagebind PATH or set {IMAGEBIND_ENV} to "
                               f"{IMAGEBIND_FILE} (download: {IMAGEBIND_SOURCE})")
    chosen = Path(chosen).expanduser()
    if not chosen.exists():
        raise ModelUnavailable(f"imagebind weights not found (expected {IMAGEBIND_FILE}; download: "
                               f"{IMAGEBIND_SOURCE})", chosen)
    return chosen


def load_imagebind(path: str | os.PathLike[str] | None = None) -> Any:
    """Load ImageBind through ``foleygen.vision`` (``load_visual_encoder("imagebind", path)``)."""
    weights = resolve_imagebind(path)
    try:
        from foleygen.vision import load_visual_encoder
    except ImportError as err:
        raise ModelUnavailable(f"foleygen.vision cannot load ImageBind here ({err})") from None
    model = load_visual_encoder("imagebind", weights)
    if not (hasattr(model, "embed_vision") and hasattr(model, "embed_audio")):
        raise ModelUnavailable("this foleygen.vision ImageBind has no embed_vision/embed_audio", weights)
    return model
