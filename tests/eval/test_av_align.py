"""AV-Align on synthetic clips with known motion and sound timing."""

import math

import numpy as np
import pytest
import torch

from foleygen.eval.av_align import av_align_clip, av_align_score, motion_curve, video_peaks

FPS, SR = 25, 16000


def _jumping_square(num_frames, jump_frames, size=32):
    """A white square that jumps to a new place at each frame in ``jump_frames`` (else still)."""
    frames = np.zeros((num_frames, size, size, 3), np.uint8)
    positions = [(2, 2), (18, 18), (2, 18), (18, 2)]
    pos = 0
    for f in range(num_frames):
        if f in jump_frames:
            pos = (pos + 1) % len(positions)
        y, x = positions[pos]
        frames[f, y : y + 10, x : x + 10] = 255
    return torch.from_numpy(frames)


def _clicks(times, seconds):
    wav = torch.zeros(int(seconds * SR))
    for t in times:
        i = int(t * SR)
        wav[i : i + 400] = torch.hann_window(400) * torch.sin(torch.arange(400) * 0.7)
    return wav


def _energy_onsets(wav, sample_rate):
    """Stand-in onset detector for these tests: rising edges of 10 ms frame energy."""
    hop = sample_rate // 100
    energy = wav[: len(wav) // hop * hop].reshape(-1, hop).square().mean(1)
    active = (energy > 1e-3).int()
    starts = torch.nonzero(torch.diff(active, prepend=torch.zeros(1, dtype=torch.int)) == 1).flatten()
    return (starts * hop / sample_rate).tolist()


def test_motion_peaks_at_jumps():
    frames = _jumping_square(50, {10, 30, 42})
    curve = motion_curve(frames)
    assert curve.shape == (50,)
    np.testing.assert_allclose(video_peaks(frames, FPS), [10 / FPS, 30 / FPS, 42 / FPS])
    assert video_peaks(torch.zeros(10, 8, 8, 3, dtype=torch.uint8), FPS).size == 0


def test_score_definition():
    assert av_align_score([0.4, 1.2], [0.4, 1.2], FPS) == 1.0
    # One match (within one frame), one miss on each side: 1 / (2 + 2 - 1).
    assert av_align_score([0.41, 1.0], [0.4, 1.6], FPS) == pytest.approx(1 / 3)
    assert av_align_score([0.5], [0.5 + 1 / FPS + 1e-3], FPS) == 0.0  # just outside +-1 frame
    assert av_align_score([], [0.3], FPS) == 0.0
    assert math.isnan(av_align_score([], [], FPS))


def test_synthetic_clip_aligned_vs_shifted():
    jumps = {10, 30, 42}
    frames = _jumping_square(50, jumps)
    aligned = _clicks([f / FPS for f in sorted(jumps)], 2.0)
    shifted = _clicks([f / FPS + 0.2 for f in sorted(jumps)], 2.0)  # 5 frames late
    assert av_align_clip(aligned, SR, frames, FPS, _energy_onsets) == pytest.approx(1.0)
    assert av_align_clip(shifted, SR, frames, FPS, _energy_onsets) == 0.0
    half = _clicks([10 / FPS, 30 / FPS + 0.2], 2.0)
    # matches 1 of 2 onsets with 3 peaks: 1 / (2 + 3 - 1)
    assert av_align_clip(half, SR, frames, FPS, _energy_onsets) == pytest.approx(0.25)


def test_optical_flow_recovers_a_known_translation():
    import torch

    from foleygen.eval.av_align import motion_curve, optical_flow

    y, x = torch.meshgrid(torch.arange(48.0), torch.arange(64.0), indexing="ij")

    def blob(cx: float) -> torch.Tensor:
        return 200 * torch.exp(-((x - cx) ** 2 + (y - 24) ** 2) / (2 * 6.0**2))

    flow = optical_flow(torch.stack([blob(30.0)]), torch.stack([blob(31.0)]), iterations=200)  # 1 px to the right
    inside = blob(30.5) > 60
    u, v = flow[0, 0][inside], flow[0, 1][inside]
    assert 0.6 < u.mean() < 1.3 and v.abs().mean() < 0.15
    # Motion curve: a still clip, then a moving blob: the flow curve rises only where the blob moves.
    frames = torch.stack([blob(20.0 + (2.0 * max(0, i - 5))) for i in range(12)])
    rgb = frames.clamp(0, 255).to(torch.uint8)[..., None].expand(-1, -1, -1, 3).contiguous()
    curve = motion_curve(rgb)
    assert curve.shape == (12,)
    assert curve[1:5].max() < 0.05 < curve[7:].min()
