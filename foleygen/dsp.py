"""Signal processing shared across foleygen: mel scales and filterbanks, band-limited resampling.

Each model we reimplement was trained on one exact frontend, so the filterbanks here are not one
"good" mel filterbank but the few rules the publishers used, each reproduced to the bit:

* :func:`mel_filterbank` -- triangles between ``n_mels + 2`` points equally spaced on a mel scale,
  evaluated at the FFT bin frequencies ``linspace(0, sr / 2, n_fft // 2 + 1)``:

  - ``scale``: ``"htk"`` (``2595 log10(1 + f / 700)``), ``"kaldi"`` (``1127 ln(1 + f / 700)``: the same
    curve, written as Kaldi and TF's VGGish write it, which rounds differently) or ``"slaney"``
    (linear below 1 kHz, logarithmic above: librosa's default);
  - ``triangles_in``: ``"hz"`` (the points are mapped back to Hz and the triangles are linear in Hz:
    librosa, torchlibrosa, aisfx) or ``"mel"`` (the bin frequencies are mapped to mel and the
    triangles are linear in mel: TF VGGish);
  - ``norm``: ``None`` (unit peak), ``"slaney"`` (each triangle times ``2 / (upper - lower)``: equal
    area, so wide high bands do not dominate) or ``"sum"`` (each band's weights sum to 1; a band too
    narrow to cover a bin stays zero, or with ``empty="nearest"`` takes the bin nearest its centre).

* :func:`kaldi_mel_banks` -- Kaldi's own rule (``compute-fbank-feats``, torchaudio's ``get_mel_banks``):
  band edges ``low + b * delta`` rather than a linspace, and the Nyquist bin carries no weight.

* :func:`sinc_resample` -- the windowed-sinc polyphase interpolator of ``torchaudio.functional.resample``
  (``sinc_interp_hann``): output ``ceil(S * new / orig)`` samples.

Everything is computed in float64; callers cast to the dtype their model used. torch is imported
only by :func:`sinc_resample`, so the NumPy-only callers (onset detection) stay light.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["MEL_SCALES", "hz_to_mel", "mel_to_hz", "mel_filterbank", "kaldi_mel_banks", "sinc_resample"]

MEL_SCALES = ("htk", "kaldi", "slaney")
_F_SP, _MIN_LOG_HZ, _LOGSTEP = 200.0 / 3, 1000.0, math.log(6.4) / 27.0  # Slaney's auditory toolbox


def _check_scale(scale: str) -> None:
    if scale not in MEL_SCALES:
        raise ValueError(f"mel scale must be one of {MEL_SCALES}, got {scale!r}")


def hz_to_mel(hz: np.ndarray | float, scale: str = "htk") -> np.ndarray:
    """Frequencies in Hz -> mel (float64, same shape)."""
    _check_scale(scale)
    f = np.asarray(hz, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    if scale == "kaldi":
        return 1127.0 * np.log1p(f / 700.0)
    mel = np.array(f / _F_SP, dtype=np.float64)
    log_region = f >= _MIN_LOG_HZ
    mel[log_region] = _MIN_LOG_HZ / _F_SP + np.log(f[log_region] / _MIN_LOG_HZ) / _LOGSTEP
    return mel


def mel_to_hz(mel: np.ndarray | float, scale: str = "htk") -> np.ndarray:
    """Inverse of :func:`hz_to_mel` (float64, same shape)."""
    _check_scale(scale)
    m = np.asarray(mel, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    if scale == "kaldi":
        return 700.0 * np.expm1(m / 1127.0)
    min_log_mel = _MIN_LOG_HZ / _F_SP
    f = np.array(_F_SP * m, dtype=np.float64)
    log_region = m >= min_log_mel
    f[log_region] = _MIN_LOG_HZ * np.exp(_LOGSTEP * (m[log_region] - min_log_mel))
    return f


def mel_filterbank(
    sample_rate: float,
    n_fft: int,
    n_mels: int,
    fmin: float = 0.0,
    fmax: float | None = None,
    *,
    scale: str = "htk",
    triangles_in: str = "hz",
    norm: str | None = None,
    empty: str = "zero",
) -> np.ndarray:
    """Triangular mel filters ``float64 [n_mels, n_fft // 2 + 1]`` (rules in the module docstring).

    Args:
        fmax: upper edge in Hz; ``None`` is the Nyquist frequency.
        empty: with ``norm="sum"``, what a band with no weight on any bin gets: ``"zero"`` (librosa)
            or ``"nearest"`` (weight 1 on the bin nearest its centre).
    """
    if triangles_in not in ("hz", "mel"):
        raise ValueError(f"triangles_in must be 'hz' or 'mel', got {triangles_in!r}")
    if norm not in (None, "slaney", "sum"):
        raise ValueError(f"norm must be None, 'slaney' or 'sum', got {norm!r}")
    if empty not in ("zero", "nearest"):
        raise ValueError(f"empty must be 'zero' or 'nearest', got {empty!r}")
    fmax = sample_rate / 2.0 if fmax is None else fmax
    freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges_mel = np.linspace(hz_to_mel(fmin, scale), hz_to_mel(fmax, scale), n_mels + 2)
    if triangles_in == "hz":
        edges, grid = mel_to_hz(edges_mel, scale), freqs
    else:
        edges, grid = edges_mel, hz_to_mel(freqs, scale)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (grid[None, :] - lower) / (centre - lower)
    falling = (upper - grid[None, :]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    if norm == "slaney":
        hz = mel_to_hz(edges_mel, scale)  # the area rule is in Hz whatever the triangles' domain
        weights *= 2.0 / (hz[2:, None] - hz[:-2, None])
    elif norm == "sum":
        sums = weights.sum(axis=1, keepdims=True)
        if empty == "nearest":
            for b in np.flatnonzero(sums[:, 0] == 0):
                weights[b, np.argmin(np.abs(freqs - mel_to_hz(edges_mel[b + 1], scale)))] = 1.0
            sums = weights.sum(axis=1, keepdims=True)
        weights = np.divide(weights, sums, out=np.zeros_like(weights), where=sums > 0)
    return weights


def kaldi_mel_banks(n_mels: int, n_fft: int, sample_rate: float, fmin: float, fmax: float) -> np.ndarray:
    """Kaldi's triangular mel banks ``float64 [n_mels, n_fft // 2 + 1]`` (the last, Nyquist, column zero).

    ``fmax <= 0`` counts down from the Nyquist frequency (Kaldi's ``high_freq`` convention).
    """
    if fmax <= 0:
        fmax += sample_rate / 2.0
    mel_low, mel_high = hz_to_mel(fmin, "kaldi"), hz_to_mel(fmax, "kaldi")
    delta = (mel_high - mel_low) / (n_mels + 1)
    b = np.arange(n_mels, dtype=np.float64)[:, None]
    left, centre, right = mel_low + b * delta, mel_low + (b + 1) * delta, mel_low + (b + 2) * delta
    mel = hz_to_mel(sample_rate / n_fft * np.arange(n_fft // 2, dtype=np.float64), "kaldi")[None]
    banks = np.maximum(0.0, np.minimum((mel - left) / (centre - left), (right - mel) / (right - centre)))
    return np.pad(banks, ((0, 0), (0, 1)))


def sinc_resample(
    wav: torch.Tensor,
    orig_freq: int,
    new_freq: int,
    *,
    zero_crossings: int = 6,
    rolloff: float = 0.99,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Band-limited resampling of ``wav [..., S]`` -> ``[..., ceil(S * new / orig)]``.

    Polyphase windowed sinc: output sample ``j`` is ``sum_i x[i] h(i / orig - j / new)`` with ``h`` a
    sinc low-passed at ``rolloff * min(orig, new) / 2`` and a Hann (cos^2) window reaching zero at
    ``zero_crossings`` crossings of that sinc. With the defaults this is torchaudio's ``resample``
    (tests/eval/test_reference_parity.py). The filter is built in float64 and the convolution runs in
    ``dtype`` (default: ``wav``'s floating dtype, float32 for integers), which is also the output's.

    Raises:
        ValueError: a rate that is not a positive integer.
    """
    import torch

    if int(orig_freq) != orig_freq or int(new_freq) != new_freq or orig_freq <= 0 or new_freq <= 0:
        raise ValueError(f"sample rates must be positive integers, got {orig_freq} and {new_freq}")
    dtype = dtype or (wav.dtype if wav.is_floating_point() else torch.float32)
    if orig_freq == new_freq:
        return wav.to(dtype)
    g = math.gcd(int(orig_freq), int(new_freq))
    up, down = int(new_freq) // g, int(orig_freq) // g  # per period: `down` inputs make `up` outputs
    cutoff = min(up, down) * rolloff  # in units where the input rate is `down`
    half = math.ceil(zero_crossings * down / cutoff)  # taps on each side of an output sample
    taps = torch.arange(-half, half + down, dtype=torch.float64) / down  # input positions (periods)
    phases = torch.arange(up, dtype=torch.float64)[:, None] / up  # output positions within a period
    x = ((taps[None, :] - phases) * cutoff).clamp(-zero_crossings, zero_crossings)
    window = torch.cos(x * math.pi / (2 * zero_crossings)).square()
    kernel = torch.special.sinc(x) * window * (cutoff / down)  # [up, taps]
    shape = wav.shape
    flat = wav.reshape(-1, 1, shape[-1]).to(dtype)
    padded = torch.nn.functional.pad(flat, (half, half + down))
    out = torch.nn.functional.conv1d(padded, kernel[:, None, :].to(dtype=dtype, device=wav.device), stride=down)
    out = out.transpose(1, 2).reshape(flat.shape[0], -1)  # [B, up * periods]: the phases interleaved
    length = math.ceil(up * shape[-1] / down)
    return out[:, :length].reshape(*shape[:-1], length)
