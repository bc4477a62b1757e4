"""Kaldi-compatible log-mel filter banks in pure torch (no torchaudio).

:func:`kaldi_fbank` follows ``torchaudio.compliance.kaldi.fbank`` (which follows Kaldi's
``compute-fbank-feats``) for the options ImageBind and AST use, step by step:

1. frames of ``frame_length`` ms every ``frame_shift`` ms, ``snip_edges=True`` (only whole frames:
   ``1 + (S - L) // shift`` of them);
2. optional dither (0 here: deterministic), then per-frame DC removal (``remove_dc_offset``);
3. pre-emphasis ``x[n] -= 0.97 x[n-1]`` inside each frame, the first sample using itself
   (Kaldi replicates the first sample);
4. window (``"hanning"``: Kaldi's symmetric Hann ``0.5 - 0.5 cos(2 pi n / (L - 1))``, ``"hamming"``,
   ``"povey"`` = Hann ** 0.85, ``"rectangular"``);
5. zero-pad to the next power of two, power spectrum ``|rfft|^2``;
6. triangular mel filters on Kaldi's mel scale ``1127 ln(1 + f / 700)`` between ``low_freq`` (20 Hz)
   and ``high_freq`` (Nyquist when <= 0), equally spaced in mel, evaluated at the FFT bin centres
   (the Nyquist bin gets weight 0, as in Kaldi);
7. ``log(max(energy, float32 eps))``. ``use_energy=False`` and ``htk_compat`` then change nothing.

The mel banks are :func:`foleygen.dsp.kaldi_mel_banks`; resampling to ImageBind's rate is
:func:`foleygen.dsp.sinc_resample` (torchaudio's interpolator).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from foleygen import dsp
from foleygen.errors import ConfigError

_EPS = float(torch.finfo(torch.float32).eps)


def _window(kind: str, length: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    n = torch.arange(length, dtype=torch.float64, device=device)
    if kind == "hanning":
        w = 0.5 - 0.5 * torch.cos(2 * math.pi * n / (length - 1))
    elif kind == "hamming":
        w = 0.54 - 0.46 * torch.cos(2 * math.pi * n / (length - 1))
    elif kind == "povey":
        w = (0.5 - 0.5 * torch.cos(2 * math.pi * n / (length - 1))) ** 0.85
    elif kind == "rectangular":
        w = torch.ones(length, dtype=torch.float64, device=device)
    else:
        raise ConfigError(f"unknown window type {kind!r} (hanning, hamming, povey, rectangular)")
    return w.to(dtype)


def mel_filterbank(
    num_mel_bins: int, padded_window: int, sample_rate: float, low_freq: float = 20.0, high_freq: float = 0.0
) -> torch.Tensor:
    """Kaldi's triangular mel filters -> ``float64 [num_mel_bins, padded_window // 2 + 1]``."""
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    if not (0.0 <= low_freq < high_freq <= nyquist):
        raise ConfigError(f"mel range must satisfy 0 <= low ({low_freq}) < high ({high_freq}) <= Nyquist ({nyquist})")

    return torch.from_numpy(dsp.kaldi_mel_banks(num_mel_bins, padded_window, sample_rate, low_freq, high_freq))


def kaldi_fbank(
    waveform: torch.Tensor,
    sample_rate: float,
    *,
    num_mel_bins: int = 128,
    frame_length: float = 25.0,
    frame_shift: float = 10.0,
    window_type: str = "hanning",
    dither: float = 0.0,
    preemphasis: float = 0.97,
    remove_dc_offset: bool = True,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Log-mel filter bank energies of a mono signal ``[S]`` -> ``[num_frames, num_mel_bins]``.

    Semantics of ``torchaudio.compliance.kaldi.fbank`` (see the module docstring); a signal shorter
    than one frame gives ``[0, num_mel_bins]``.
    """
    if waveform.dim() != 1:
        raise ConfigError(f"kaldi_fbank expects a mono signal [S], got shape {tuple(waveform.shape)}")
    x = waveform.to(torch.float32).contiguous()
    win = int(sample_rate * frame_length * 0.001)
    shift = int(sample_rate * frame_shift * 0.001)
    if win < 2 or shift < 1:
        raise ConfigError(f"frame_length/frame_shift too short for sample rate {sample_rate}")
    padded = 1 << (win - 1).bit_length()
    n_frames = 0 if x.numel() < win else 1 + (x.numel() - win) // shift
    if n_frames == 0:
        return x.new_zeros((0, num_mel_bins))
    frames = x.as_strided((n_frames, win), (shift, 1))
    if dither != 0.0:
        frames = frames + dither * torch.randn(frames.shape, generator=generator, dtype=frames.dtype)
    if remove_dc_offset:
        frames = frames - frames.mean(dim=1, keepdim=True)
    if preemphasis != 0.0:
        prev = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
        frames = frames - preemphasis * prev
    frames = frames * _window(window_type, win, frames.dtype, frames.device)
    frames = F.pad(frames, (0, padded - win))
    power = torch.fft.rfft(frames).abs().pow(2)
    banks = mel_filterbank(num_mel_bins, padded, sample_rate, low_freq, high_freq).to(power)
    return torch.clamp(power @ banks.T, min=_EPS).log()
