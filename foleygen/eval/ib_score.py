"""ImageBind score: how well generated audio matches its video in ImageBind's joint space.

``IB = 100 * mean_i cos(E_vision(video_i), E_audio(generated_i))`` over paired clips. av-benchmark
reports the mean cosine itself; current papers (MMAudio, ThinkSound, ...) print it x100, which is what we
report (docs/evaluation.md). The ImageBind model comes from :mod:`foleygen.vision.imagebind` (weights from
``--imagebind PATH`` or ``$FOLEYGEN_IMAGEBIND``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foleygen.errors import DataError
from foleygen.eval.embedders import ModelUnavailable
from foleygen.utils import user_path

__all__ = [
    "imagebind_score",
    "resolve_imagebind",
    "load_imagebind",
    "video_clip_times",
    "video_embedding",
    "audio_embedding",
    "IMAGEBIND_ENV",
    "IMAGEBIND_FILE",
    "IMAGEBIND_SOURCE",
    "VIDEO_CLIPS",
    "CLIP_SECONDS",
]

# The official video loader (imagebind.data.load_and_transform_video_data): 5 clips of 2 s spread evenly
# over the video, 2 frames each (the first and last frame of the clip).
VIDEO_CLIPS = 5
CLIP_SECONDS = 2.0

IMAGEBIND_ENV = "FOLEYGEN_IMAGEBIND"
IMAGEBIND_FILE = "imagebind_huge.pth"
IMAGEBIND_SOURCE = "https://dl.fbaipublicfiles.com/omnivore/models/imagebind_huge.pth"


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
        raise ModelUnavailable(
            f"imagebind weights not configured: pass --imagebind PATH or set {IMAGEBIND_ENV} to "
            f"{IMAGEBIND_FILE} (download: {IMAGEBIND_SOURCE})"
        )
    chosen = user_path(chosen)
    if not chosen.exists():
        raise ModelUnavailable(
            f"imagebind weights not found (expected {IMAGEBIND_FILE}; download: {IMAGEBIND_SOURCE})", chosen
        )
    return chosen


def load_imagebind(path: str | os.PathLike[str] | None = None) -> Any:
    """ImageBind (vision + audio branches) from ``foleygen.vision.imagebind``.

    ``path``: ``imagebind_huge.pth``, or a directory with it / ``model.safetensors`` and optionally a
    ``config.json`` of :class:`foleygen.vision.imagebind.ImageBindConfig` fields (smaller variants).
    """
    weights = resolve_imagebind(path)
    try:
        from foleygen.vision.imagebind import ImageBindModel
    except ImportError as err:
        raise ModelUnavailable(f"foleygen.vision.imagebind is not available here ({err})") from None
    return ImageBindModel.from_checkpoint(weights)  # reads a directory's config.json itself


def video_clip_times(duration: float, fps: float) -> list[tuple[float, float]]:
    """``(first, last)`` frame times of the ImageBind video clips of a ``duration``-second video at ``fps``."""
    clip = min(CLIP_SECONDS, duration)
    span = max(duration - clip, 0.0)
    starts = [span * i / (VIDEO_CLIPS - 1) for i in range(VIDEO_CLIPS)]
    last = max(clip - 1.0 / fps, 0.0)  # the clip's last frame starts one frame before its end
    return [(s, s + last) for s in starts]


def video_embedding(model: Any, clips: torch.Tensor) -> np.ndarray:
    """Mean ImageBind vision embedding ``[D]`` of ``clips``: uint8 ``[N, 2, H, W, 3]`` (2 frames per clip).

    Each 2-frame clip is preprocessed as the official image pipeline (short side -> 224, centre crop;
    the official video loader additionally averages 3 spatial crops, which we do not) and embedded as a
    2-frame video; the unit-norm clip embeddings are averaged, as ImageBind does over clips.
    """
    n = clips.shape[0]
    pixels = model.vision_transform(clips.reshape(1, n * 2, *clips.shape[2:]))[0]  # [2N, 3, S, S]
    pixels = pixels.reshape(n, 2, *pixels.shape[1:]).transpose(1, 2)  # [N, 3, 2, S, S]
    return model.embed_vision(pixels).float().mean(0).cpu().numpy()


def audio_embedding(model: Any, wav: torch.Tensor, sample_rate: int) -> np.ndarray:
    """ImageBind audio embedding ``[D]`` of mono ``wav [S]`` (3 clips of 2 s, averaged, official loader)."""
    return model.embed_audio(wav.reshape(1, 1, -1), sample_rate).float().reshape(-1).cpu().numpy()
