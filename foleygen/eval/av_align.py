"""AV-Align (Yariv et al. 2024): do audio onsets coincide with peaks of visual motion?

For one clip: audio onset times ``A`` (from :func:`foleygen.eval.onsets.detect_onsets`, the same detector
as the SynthFoley onset metrics), video motion peak times ``V``, and

    matches = #{a in A : some v in V with |a - v| < 1 / fps}
    AV-Align = matches / (|A| + |V| - matches)

an intersection-over-union in [0, 1] with a +-1 video frame window, as the original definition.

Motion: the original measures dense optical flow with OpenCV's Farneback method. OpenCV is not a
dependency here, so the default motion curve is the mean magnitude of a dense Horn-Schunck optical flow
(:func:`optical_flow`, torch, frames scaled to at most 128 px) between consecutive frames; ``method="diff"``
gives the cheaper mean absolute luminance difference. Both peak on the same abrupt movements. Peaks are
local maxima of the curve whose prominence is at least ``rel_prominence`` (default 0.1) of the curve's
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

__all__ = ["optical_flow", "motion_curve", "video_peaks", "av_align_score", "av_align_clip", "default_onset_detector"]

OnsetFn = Callable[[torch.Tensor, int], Sequence[float]]


def optical_flow(
    previous: torch.Tensor, current: torch.Tensor, *, alpha: float = 8.0, iterations: int = 60
) -> torch.Tensor:
    """Dense Horn-Schunck optical flow between luminance images ``[N, H, W]`` (0-255) -> ``[N, 2, H, W]``.

    Channel 0 is the horizontal, channel 1 the vertical displacement in pixels per frame. Horn-Schunck
    minimises the brightness-constancy error plus ``alpha^2`` times the flow's roughness; ``iterations``
    Jacobi updates of its Euler-Lagrange equations are enough for the small frames used here.
    """
    import torch.nn.functional as F

    a = previous.float()[:, None]
    b = current.float()[:, None]
    # Derivatives averaged over the 2x2x2 cube spanning both frames (the original scheme).
    kx = torch.tensor([[-1.0, 1.0], [-1.0, 1.0]]).view(1, 1, 2, 2) * 0.25
    ky = torch.tensor([[-1.0, -1.0], [1.0, 1.0]]).view(1, 1, 2, 2) * 0.25
    kt = torch.full((1, 1, 2, 2), 0.25)

    def conv(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (0, 1, 0, 1), mode="replicate"), k)

    ix, iy, it = conv(a, kx) + conv(b, kx), conv(a, ky) + conv(b, ky), conv(b, kt) - conv(a, kt)
    avg = torch.tensor([[1, 2, 1], [2, 0, 2], [1, 2, 1]], dtype=torch.float32).view(1, 1, 3, 3) / 12.0
    u = torch.zeros_like(a)
    v = torch.zeros_like(a)
    denom = alpha**2 + ix**2 + iy**2
    for _ in range(iterations):
        u_bar = F.conv2d(F.pad(u, (1, 1, 1, 1), mode="replicate"), avg)
        v_bar = F.conv2d(F.pad(v, (1, 1, 1, 1), mode="replicate"), avg)
        step = (ix * u_bar + iy * v_bar + it) / denom
        u, v = u_bar - ix * step, v_bar - iy * step
    return torch.cat([u, v], dim=1)


def motion_curve(frames: torch.Tensor | np.ndarray, *, method: str = "flow", max_side: int = 128) -> np.ndarray:
    """uint8 frames ``[F, H, W, 3]`` -> motion ``[F]`` between consecutive frames (index 0 repeats index 1).

    ``method="flow"``: mean optical-flow magnitude (pixels per frame at the analysed size, frames scaled
    so their longer side is at most ``max_side``); ``"diff"``: mean absolute luminance difference.
    """
    frames = np.asarray(frames.numpy() if isinstance(frames, torch.Tensor) else frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise DataError(f"frames must be [F, H, W, 3], got shape {frames.shape}")
    if method not in ("flow", "diff"):
        raise DataError(f"motion method must be 'flow' or 'diff', got {method!r}")
    if frames.shape[0] < 2:
        return np.zeros(frames.shape[0])
    luma = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)  # [F, H, W]
    if method == "diff":
        diff = np.abs(np.diff(luma, axis=0)).mean(axis=(1, 2))
    else:
        images = torch.from_numpy(luma)
        scale = max_side / max(images.shape[1:])
        if scale < 1:
            images = torch.nn.functional.interpolate(images[:, None], scale_factor=scale, mode="area")[:, 0]
        pairs = images.shape[0] - 1
        parts = []
        with torch.inference_mode():
            for i in range(0, pairs, 64):  # bounded memory for long videos
                j = min(i + 64, pairs)
                parts.append(optical_flow(images[i:j], images[i + 1 : j + 1]).norm(dim=1).mean(dim=(1, 2)).numpy())
        diff = np.concatenate(parts)
    # As the original's flow trajectory: frame 0 gets the (0 -> 1) motion so the curve has one value per frame.
    return np.concatenate([diff[:1], diff]).astype(np.float64)


def video_peaks(
    frames: torch.Tensor | np.ndarray, fps: float, *, rel_prominence: float = 0.1, method: str = "flow"
) -> np.ndarray:
    """Times (s) of the motion peaks of ``frames [F, H, W, 3]`` shown at ``fps`` (``method``: see motion_curve)."""
    from scipy.signal import find_peaks

    curve = motion_curve(frames, method=method)
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


def av_align_clip(
    wav: torch.Tensor,
    sample_rate: int,
    frames: torch.Tensor | np.ndarray,
    fps: float,
    onset_fn: OnsetFn | None = None,
    *,
    rel_prominence: float = 0.1,
) -> float:
    """AV-Align of one clip: audio ``wav [S]`` at ``sample_rate`` against ``frames [F, H, W, 3]`` at ``fps``."""
    onset_fn = onset_fn or default_onset_detector()
    onsets = onset_fn(wav, sample_rate)
    return av_align_score(onsets, video_peaks(frames, fps, rel_prominence=rel_prominence), fps)
