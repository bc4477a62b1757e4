"""AV-Align (Yariv et al. 2024): do audio onsets coincide with peaks of visual motion?

For one clip: audio onset times ``A`` (from :func:`foleygen.eval.onsets.detect_onsets`, the same detector
as the SynthFoley onset metrics), video motion peak times ``V``, and

    matches = #{a in A : some v in V with |a - v| < 1 / fps}
    AV-Align = matches / (|A| + |V| - matches)

an intersection-over-union in [0, 1] with a +-1 video frame window, as the original definition.

Motion (documented departure): the original uses OpenCV's Farneback optical flow; OpenCV is not a
dependency here, so the motion curve is the mean absolute luminance difference between consecutive
frames (a dense, flow-free proxy of motion magnitude that peaks on the same abrupt movements). Peaks are
local maxima of that curve whose prominence is at least ``rel_prominence`` (default 0.1) of the curve's
range, so that compression noise on a static shot is not counted as motion. Numbers are therefore close
to, not identical with, the published AV-Align implementation; compare systems within foleygen.
Clips with neither onsets nor motion peaks have no defined score and are left out of the mean.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from foleygen.errors import DataError

__all__ = ["motion_curve", "video_peaks", "av_align_score", "av_align_clip", "default_onset_detector"]

OnsetFn = Callable[[torch.Tensor, int], Sequence[float]]


def motion_curve(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """uint8 frames ``[F, H, W, 3]`` -> motion ``[F]``: mean |luma_t - luma_{t-1}| (index 0 repeats index 1)."""
    frames = np.asarray(frames.numpy() if isinstance(frames, torch.Tensor) else frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise DataError(f"frames must be [F, H, W, 3], got shape {frames.shape}")
    if frames.shape[0] < 2:
        return np.zeros(frames.shape[0])
    luma = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)  # [F, H, W]
    diff = np.abs(np.diff(luma, axis=0)).mean(axis=(1, 2))
    # As the original's flow trajectory: frame 0 gets the (0 -> 1) motion so the curve has one value per frame.
    return np.concatenate([diff[:1], diff]).astype(np.float64)


def video_peaks(frames: torch.Tensor | np.ndarray, fps: float, *, rel_prominence: float = 0.1) -> np.ndarray:
    """Times (s) of the motion peaks of ``frames [F, H, W, 3]`` shown at ``fps``."""
    from scipy.signal import find_peaks

    curve = motion_curve(frames)
    span = float(curve.max() - curve.min()) if curve.size else 0.0
    if span <= 1e-6:
        return np.zeros(0)
    # Pad with the minimum so that a peak at the first/last frame can be found too.
    padded = np.concatenate([[curve.min()], curve, [curve.min()]])
    peaks, _ = find_peaks(padded, prominence=rel_prominence * span)
    return (peaks - 1) / float(fps)


def av_align_score(audio_onsets: Sequence[float], video_peak_times: Sequence[float], fps: float) -> float:
    """IoU of onset and motion-peak times with a +-1 frame window; NaN when both are empty."""
    audio = np.asarray(audio_onsets, dtype=np.float64).reshape(-1)
    video = np.asarray(video_peak_times, dtype=np.float64).reshape(-1)
    if audio.size + video.size == 0:
        return math.nan
    window = 1.0 / float(fps)
    matches = sum(1 for a in audio if video.size and np.any(np.abs(video - a) < window))
    return matches / (audio.size + video.size - matches)


def default_onset_detector() -> OnsetFn:
    """``foleygen.eval.onsets.detect_onsets`` as ``(wav [S], sample_rate) -> onset times (s)``."""
    from foleygen.eval import onsets  # owned by the onset-metrics module; imported when needed

    def detect(wav: torch.Tensor, sample_rate: int) -> Sequence[float]:
        return np.asarray(onsets.detect_onsets(wav, sample_rate), dtype=np.float64).reshape(-1)

    return detect


def av_align_clip(wav: torch.Tensor, sample_rate: int, frames: torch.Tensor | np.ndarray, fps: float,
                  onset_fn: OnsetFn | None = None, *, rel_prominence: float = 0.1) -> float:
    """AV-Align of one clip: audio ``wav [S]`` at ``sample_rate`` against ``frames [F, H, W, 3]`` at ``fps``."""
    onset_fn = onset_fn or default_onset_detector()
    onsets = onset_fn(wav, sample_rate)
    return av_align_score(onsets, video_peaks(frames, fps, rel_prominence=rel_prominence), fps)
