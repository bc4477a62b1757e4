"""SynthFoley sound families: one synthesiser per class, plus rolling and spinning sounds.

Every impact sound starts with a sharp attack at its first sample: a short broadband click (the
contact) over the class's resonant body. The click matters: the design prototype found a bare low
sine ("boing") missed by a spectral-flux onset detector a quarter of the time. Class identity lives in
the body: wood = a few damped low-mid modes (short), metal = inharmonic bar partials with a long ring
and slight beating, glass = high partials with a short decay, drum = a low sine whose pitch drops,
rubber = a low tone gliding downwards with vibrato, paper = band-passed crackling noise.

Continuous sounds (rolling rumble, spinning whirr) follow the physics' control curves (speed, angular
rate) smoothly, with no transients, so they are not onsets (their starts coincide with impacts or fade
in; see docs/synthfoley.md).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import signal

# Per-class loudness at strength 1 (peak of the body before the limiter); roughly equal perceived level.
CLASS_GAIN = {"wood": 0.8, "metal": 0.45, "glass": 0.5, "drum": 0.9, "rubber": 0.6, "paper": 0.7}
# Continuous sounds (roll, spin) fade in and out through two one-pole smoothers of CONTINUOUS_FADE / 2
# each: an S-shaped ~100 ms fade, slow enough that a roll starting without an impact is no onset.
CONTINUOUS_FADE = 0.06
# Strength 0..1 maps linearly in dB to [-DB_RANGE, 0] dB.
DB_RANGE = 14.0


@functools.lru_cache(maxsize=32)
def _sos(kind: str, low: float, high: float, sample_rate: int) -> np.ndarray:
    nyq = sample_rate / 2
    if kind == "band":
        return signal.butter(2, [low / nyq, min(high / nyq, 0.99)], btype="band", output="sos")
    if kind == "high":
        return signal.butter(2, low / nyq, btype="high", output="sos")
    return signal.butter(2, low / nyq, btype="low", output="sos")


def strength_gain(strength: float) -> float:
    """Linear gain of an impact of ``strength`` in [0, 1] (louder for faster impacts)."""
    return 10.0 ** ((-DB_RANGE + DB_RANGE * float(np.clip(strength, 0.0, 1.0))) / 20.0)


def _modes(
    t: np.ndarray, freqs: list[float], amps: list[float], decays: list[float], rng: np.random.Generator
) -> np.ndarray:
    out = np.zeros_like(t)
    for f, a, d in zip(freqs, amps, decays, strict=True):
        phase = rng.uniform(0, 2 * np.pi)
        out += a * np.exp(-t / d) * np.sin(2 * np.pi * f * t + phase)
    return out


def _click(t: np.ndarray, tau: float, rng: np.random.Generator, sample_rate: int, highpass: float) -> np.ndarray:
    noise = rng.standard_normal(len(t))
    noise = signal.sosfilt(_sos("high", highpass, 0, sample_rate), noise)
    return noise / (np.abs(noise).max() + 1e-9) * np.exp(-t / tau)


def impact_sound(
    cls: str, strength: float, pitch: float, decay: float, rng: np.random.Generator, sample_rate: int, max_len: int
) -> np.ndarray:
    """One impact of class ``cls``: float32 ``[L]``, sharp onset at sample 0.

    ``pitch`` and ``decay`` are multipliers (1.0 = the class's nominal sound) carrying per-object and
    per-event variation; ``strength`` in [0, 1] sets the loudness and the brightness of the click.
    """
    durations = {"wood": 0.25, "metal": 1.8, "glass": 0.45, "drum": 0.7, "rubber": 0.8, "paper": 0.3}
    n = max(1, min(max_len, int(durations[cls] * decay * sample_rate)))
    t = np.arange(n) / sample_rate
    click_level = 0.35 + 0.4 * strength
    if cls == "wood":
        f0 = 420.0 * pitch
        body = _modes(
            t, [f0, 2.57 * f0, 4.1 * f0], [1.0, 0.5, 0.25], [0.045 * decay, 0.025 * decay, 0.015 * decay], rng
        )
        click = _click(t, 0.003, rng, sample_rate, 1500.0)
    elif cls == "metal":
        f0 = 520.0 * pitch
        ratios = [1.0, 1.004, 2.756, 5.404, 8.933]  # free-bar partials; 1.004 beats against 1.0
        freqs = [f0 * r for r in ratios if f0 * r < 0.45 * sample_rate]
        amps = [1.0, 0.5, 0.6, 0.35, 0.2][: len(freqs)]
        decays = [0.7 * decay, 0.7 * decay, 0.45 * decay, 0.25 * decay, 0.12 * decay][: len(freqs)]
        body = _modes(t, freqs, amps, decays, rng)
        click = _click(t, 0.003, rng, sample_rate, 3000.0)
        # a metal object often bounces while still ringing from its last hit: a strong clink keeps
        # each new hit audible above its own tail
        click_level = 0.7 + 0.5 * strength
    elif cls == "glass":
        f0 = min(2600.0 * pitch, 0.2 * sample_rate)
        freqs = [f for f in (f0, 2.32 * f0, 4.25 * f0) if f < 0.45 * sample_rate]
        body = _modes(
            t, freqs, [1.0, 0.55, 0.3][: len(freqs)], [0.09 * decay, 0.05 * decay, 0.03 * decay][: len(freqs)], rng
        )
        click = _click(t, 0.0012, rng, sample_rate, 4000.0)
    elif cls == "drum":
        f0 = 80.0 * pitch
        freq = f0 * (1.0 + 1.5 * np.exp(-t / 0.025))  # pitch drop of the membrane
        phase = 2 * np.pi * np.cumsum(freq) / sample_rate
        body = np.exp(-t / (0.18 * decay)) * np.sin(phase) + 0.3 * np.exp(-t / (0.08 * decay)) * np.sin(1.59 * phase)
        noise = signal.sosfilt(_sos("low", 1200.0, 0, sample_rate), rng.standard_normal(n))
        click = noise / (np.abs(noise).max() + 1e-9) * np.exp(-t / 0.012)
        click_level = 0.5 + 0.3 * strength
    elif cls == "rubber":
        f0 = 190.0 * pitch
        glide = 1.0 + 0.8 * np.exp(-t / 0.06)  # the "boing": a fast downward glide...
        vibrato = 1.0 + 0.04 * np.sin(2 * np.pi * 9.0 * t)  # ...that wobbles as it settles
        phase = 2 * np.pi * np.cumsum(f0 * glide * vibrato) / sample_rate
        env = np.exp(-t / (0.22 * decay))
        body = env * (np.sin(phase) + 0.35 * np.sin(2 * phase) + 0.15 * np.sin(3 * phase))
        # the attack transient: a bright snap of the contact, without which a low glide has no onset
        click = _click(t, 0.004, rng, sample_rate, 1000.0)
        click_level = 0.6 + 0.3 * strength
    elif cls == "paper":
        noise = signal.sosfilt(_sos("band", 1500.0, 6500.0, sample_rate), rng.standard_normal(n))
        noise /= np.abs(noise).max() + 1e-9
        # crackle: a shallow jagged amplitude pattern at a few-ms scale (a deep one would read as onsets)
        grains = rng.uniform(0.75, 1.0, size=n // 48 + 2)
        crackle = np.repeat(grains, 48)[:n]
        crackle = signal.sosfilt(_sos("low", 400.0, 0, sample_rate), crackle)
        env = np.exp(-t / (0.05 * decay))
        body = noise * crackle * env
        click = _click(t, 0.002, rng, sample_rate, 2500.0)
    else:
        raise ValueError(f"unknown SynthFoley class {cls!r}")
    attack = np.minimum(1.0, (np.arange(n) + 1) / (0.0005 * sample_rate))  # 0.5 ms: sharp but no DC step
    wav = (body / (np.abs(body).max() + 1e-9) + click_level * click) * attack
    wav *= CLASS_GAIN[cls] * strength_gain(strength) / (1.0 + click_level)
    return wav.astype(np.float32)


def _control_to_audio(curve: np.ndarray, step_times: np.ndarray, num_samples: int, sample_rate: int) -> np.ndarray:
    t = np.arange(num_samples) / sample_rate
    return np.interp(t, step_times, curve).astype(np.float32)


def _smooth(env: np.ndarray, sample_rate: int, seconds: float) -> np.ndarray:
    # One-pole smoothing (attack and release) so continuous sounds fade in and out without transients.
    a = math.exp(-1.0 / (seconds * sample_rate))
    return signal.lfilter([1 - a], [1, -a], env).astype(np.float32)


def rolling_sound(
    speed: np.ndarray,
    step_times: np.ndarray,
    cls: str,
    radius: float,
    rng: np.random.Generator,
    sample_rate: int,
    num_samples: int,
    v_ref: float,
) -> np.ndarray:
    """Rolling rumble ``[S]`` of one body: low-passed noise, level and brightness follow ``speed [K]``."""
    level = _control_to_audio(np.clip(speed / v_ref, 0, 1), step_times, num_samples, sample_rate)
    if not level.any():
        return np.zeros(num_samples, np.float32)
    level = _smooth(_smooth(level, sample_rate, CONTINUOUS_FADE / 2), sample_rate, CONTINUOUS_FADE / 2)
    cutoff = 350.0 if cls == "rubber" else 900.0
    noise = signal.sosfilt(_sos("low", cutoff, 0, sample_rate), rng.standard_normal(num_samples))
    noise /= np.abs(noise).max() + 1e-9
    # a gentle wobble at the rotation rate (a real ball is never perfectly round)
    t = np.arange(num_samples) / sample_rate
    rot_phase = 2 * np.pi * np.cumsum(level * v_ref / (2 * np.pi * radius)) / sample_rate
    wobble = 1.0 + 0.05 * np.sin(rot_phase)
    hum = 0.3 * np.sin(2 * np.pi * (60.0 if cls == "rubber" else 140.0) * t + rng.uniform(0, 2 * np.pi))
    gain = 0.05 if cls == "rubber" else 0.035
    return (gain * level * wobble * (noise + hum)).astype(np.float32)


def spinning_sound(
    rate: np.ndarray,
    step_times: np.ndarray,
    cls: str,
    rng: np.random.Generator,
    sample_rate: int,
    num_samples: int,
    omega_ref: float,
) -> np.ndarray:
    """Spinning whirr ``[S]`` of one body: a buzzy tone whose pitch and level follow ``rate [K]`` (rad/s)."""
    level = _control_to_audio(np.clip(rate / omega_ref, 0, 1), step_times, num_samples, sample_rate)
    if not level.any():
        return np.zeros(num_samples, np.float32)
    level = _smooth(_smooth(level, sample_rate, CONTINUOUS_FADE / 2), sample_rate, CONTINUOUS_FADE / 2)
    base = {"wood": 180.0, "metal": 420.0, "glass": 700.0, "drum": 120.0, "rubber": 150.0, "paper": 300.0}[cls]
    freq = base * (0.5 + 0.5 * level)
    phase = 2 * np.pi * np.cumsum(freq) / sample_rate + rng.uniform(0, 2 * np.pi)
    tone = np.sin(phase) + 0.4 * np.sin(2 * phase) + 0.2 * np.sin(3 * phase)
    # the object's own rotation modulates the whirr (each revolution passes a flat side/edge)
    rot = 2 * np.pi * np.cumsum(level * omega_ref / (2 * np.pi)) / sample_rate
    am = 0.95 + 0.05 * np.sin(2 * rot)  # gentle: a deep modulation would read as a train of onsets
    return (0.02 * level * am * tone).astype(np.float32)


def background_noise(rng: np.random.Generator, sample_rate: int, num_samples: int, level_db: float) -> np.ndarray:
    """Light room noise ``[S]`` (pinkish: white noise through a gentle low-pass) at ``level_db`` dB RMS."""
    noise = rng.standard_normal(num_samples)
    noise = signal.lfilter([1.0], [1.0, -0.9], noise)
    noise /= np.sqrt(np.mean(noise**2)) + 1e-12
    return (noise * 10 ** (level_db / 20)).astype(np.float32)
