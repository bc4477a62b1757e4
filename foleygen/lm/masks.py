"""Visual attention masks: which video frames an audio frame may look at.

Audio frame t covers time ``[t / frame_rate, (t + 1) / frame_rate)``; visual frame f is shown at time
``f / fps``. For audio frame t (True = may attend):

* ``full``: every frame (the sound may anticipate what it has not seen yet).
* ``causal``: frames already shown, ``f / fps <= t / frame_rate``.
* ``frame_specific``: only the frame on screen, ``f = min(floor(t * fps / frame_rate), F - 1)``.

Every row has at least one True: frame 0 is shown at time 0, so ``causal`` always allows it, and
``frame_specific`` picks exactly one frame (clamped to the last one for audio beyond the video).

``lookahead`` (``LMConfig.visual_lookahead``, default 0 = the paper's masks) lets ``causal`` and
``frame_specific`` also see the next ``lookahead`` frames: ``f <= on_screen + lookahead``, and for
``frame_specific`` ``on_screen <= f <= on_screen + lookahead`` (clamped to the video). Why: a frame is
a snapshot. An impact at 1.25 s falls between the frames shown at 1.24 s (object still in the air) and
1.28 s (object bounced); with lookahead 0 the audio at 1.25 s has seen only the first, so the model must
guess *when* within those 40 ms the contact happens, and on SynthFoley it hedges: it starts many
impacts at the frame boundary, early, and adds a second attack later. One frame of lookahead shows it
the frame after the contact too, which brackets the impact between two frames it has seen. Offline
video-to-audio has the whole video, so this costs nothing at inference (sliding windows pass the
extra frames along, see ``AudioLM.generate_windowed``).

This module is the one definition. With the delay pattern the LM applies it per *sequence step*: step
s attends as audio frame s (the frame it predicts for stream 0). Since stream k at step s predicts
frame ``s - k <= s``, ``logits[:, k, t]`` may have seen frames up to audio frame ``t + k`` (plus the
``lookahead`` frames after the one on screen then), never later.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Literal

import torch

from foleygen.errors import ConfigError

VisualAttention = Literal["full", "causal", "frame_specific"]
KINDS: tuple[str, ...] = ("full", "causal", "frame_specific")


def _rational(x: float) -> Fraction:
    # Rates such as 50 Hz or 25 fps must compare exactly: t / 50 <= f / 25 in floats can round wrong.
    return Fraction(x).limit_denominator(1_000_000)


def visual_attention_mask(
    kind: str,
    num_audio_frames: int,
    frame_rate: float,
    num_visual_frames: int,
    fps: float,
    device: torch.device | None = None,
    *,
    lookahead: int = 0,
) -> torch.Tensor:
    """``Bool [T, F]``: ``mask[t, f]`` is True when audio frame t may attend to visual frame f.

    ``lookahead``: visual frames past the one on screen that ``causal`` and ``frame_specific`` also
    allow (ignored by ``full``, which allows all).
    """
    if kind not in KINDS:
        raise ConfigError(f"visual_attention must be one of {list(KINDS)}, got {kind!r}")
    if lookahead < 0:
        raise ConfigError(f"visual lookahead must be >= 0 frames, got {lookahead}")
    if num_audio_frames < 0 or num_visual_frames < 1:
        raise ConfigError(f"need T >= 0 and F >= 1 frames, got T={num_audio_frames}, F={num_visual_frames}")
    T, F = num_audio_frames, num_visual_frames
    if kind == "full":
        return torch.ones(T, F, dtype=torch.bool, device=device)
    fr, vf = _rational(frame_rate), _rational(fps)
    # Index of the frame on screen at audio frame t: floor(t * fps / frame_rate), in exact integers.
    ratio = vf / fr
    on_screen = torch.tensor([math.floor(t * ratio) for t in range(T)], dtype=torch.long, device=device)  # [T]
    frames = torch.arange(F, device=device)  # [F]
    if kind == "causal":
        # f / fps <= t / frame_rate  <=>  f <= floor(t * fps / frame_rate) since f is an integer.
        return frames[None, :] <= on_screen[:, None] + lookahead
    first = on_screen.clamp(max=F - 1)[:, None]
    return (frames[None, :] >= first) & (frames[None, :] <= first + lookahead)


def step_unit(frame_rate: float, fps: float) -> Fraction:
    """Shortest time (seconds) that is a whole number of audio frames *and* of visual frames.

    Sliding windows move by multiples of it so that every window's visual frames sit at the same
    audio-step offsets as in training (e.g. 50 Hz / 25 fps -> 0.04 s; 50 Hz / 8 fps -> 0.5 s).
    """
    fr, vf = _rational(frame_rate), _rational(fps)
    # lcm of 1/fr and 1/vf for rationals: lcm(numerators) / gcd(denominators) of the periods.
    a, b = 1 / fr, 1 / vf
    num = math.lcm(a.numerator, b.numerator)
    den = math.gcd(a.denominator, b.denominator)
    return Fraction(num, den)
