"""Log-mel frontends of the metric models, in plain torch (no torchaudio/torchlibrosa/librosa).

Each model was trained on one specific spectrogram; FAD/KL/IS numbers are only comparable across papers
when it is reproduced exactly. Three conventions are needed:

* VGGish (``vggish_input.waveform_to_examples`` of the TF release and its torch port): 25 ms periodic-Hann
  frames every 10 ms without padding, 512-point |FFT|, 64 HTK-mel bands 125-7500 Hz with the DC bin
  zeroed, ``log(mel + 0.01)``, cut into non-overlapping 96-frame (0.96 s) examples.
* PANNs (torchlibrosa ``Spectrogram`` + ``LogmelFilterBank``): centred reflect-padded STFT with a periodic
  Hann window, power spectrum, librosa's Slaney mel filters (``htk=False``, Slaney area norm),
  ``10 log10(max(x, 1e-10))``.
* PaSST (hear21passt ``AugmentMelSTFT`` in eval mode): pre-emphasis ``x[n+1] - 0.97 x[n]``, centred STFT
  (n_fft 1024, symmetric Hann of 800 samples, hop 320), power, Kaldi-style triangular mel banks (128
  bands, 0-15000 Hz, zero-padded Nyquist column), ``(log(mel + 1e-5) + 4.5) / 5``.
"""

from __future__ import annotations

import numpy as np
import torch

from foleygen import dsp

__all__ = ["htk_mel_matrix", "slaney_mel_matrix", "kaldi_mel_banks", "vggish_examples", "panns_logmel", "passt_logmel"]


def htk_mel_matrix(
    num_mel: int = 64, num_spec: int = 257, sample_rate: int = 16000, lower_hz: float = 125.0, upper_hz: float = 7500.0
) -> np.ndarray:
    """VGGish's mel weights ``[num_spec, num_mel]`` (float64): triangles in HTK-mel, DC bin zeroed."""
    n_fft = 2 * (num_spec - 1)
    weights = dsp.mel_filterbank(sample_rate, n_fft, num_mel, lower_hz, upper_hz, scale="kaldi", triangles_in="mel").T
    weights[0, :] = 0.0  # the TF code zeroes the DC bin; it carries no band energy
    return weights


def slaney_mel_matrix(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """librosa ``filters.mel(htk=False, norm='slaney')`` transposed: ``[n_fft//2 + 1, n_mels]`` (float64)."""
    return dsp.mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, scale="slaney", norm="slaney").T


def kaldi_mel_banks(n_mels: int, n_fft: int, sample_rate: int, fmin: float, fmax: float) -> np.ndarray:
    """Kaldi triangular mel banks as PaSST uses them: ``[n_mels, n_fft//2 + 1]`` (last column zero)."""
    return dsp.kaldi_mel_banks(n_mels, n_fft, sample_rate, fmin, fmax)


def vggish_examples(wav: torch.Tensor, mel_matrix: torch.Tensor, *, sample_rate: int = 16000) -> torch.Tensor:
    """Mono 16 kHz ``wav [S]`` -> log-mel examples ``[W, 1, 96, 64]`` (W = whole 0.96 s windows, >= 1).

    A clip shorter than one example is zero-padded to one, so that every clip yields an embedding.
    """
    win, hop, n_fft = round(0.025 * sample_rate), round(0.010 * sample_rate), 512
    wav = wav.to(torch.float64)
    min_len = win + 95 * hop
    if wav.numel() < min_len:
        wav = torch.nn.functional.pad(wav, (0, min_len - wav.numel()))
    frames = wav.unfold(0, win, hop)  # [T, win], no padding (as vggish_input)
    window = torch.hann_window(win, periodic=True, dtype=torch.float64)
    magnitude = torch.fft.rfft(frames * window, n=n_fft).abs()  # [T, 257]
    log_mel = torch.log(magnitude @ mel_matrix.to(torch.float64) + 0.01)  # [T, 64]
    num_examples = log_mel.shape[0] // 96
    return log_mel[: num_examples * 96].reshape(num_examples, 1, 96, log_mel.shape[1]).to(torch.float32)


def panns_logmel(wav: torch.Tensor, mel_matrix: torch.Tensor, *, n_fft: int, hop: int) -> torch.Tensor:
    """``wav [B, S]`` -> log-mel ``[B, 1, T, M]`` as torchlibrosa computes it for PANNs (``mel_matrix [F, M]``)."""
    window = torch.hann_window(n_fft, periodic=True, dtype=wav.dtype, device=wav.device)
    spec = torch.stft(
        wav,
        n_fft,
        hop_length=hop,
        win_length=n_fft,
        window=window,
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )  # [B, F, T]
    power = spec.real.square() + spec.imag.square()
    mel = power.transpose(1, 2) @ mel_matrix.to(wav.dtype)  # [B, T, M]
    return (10.0 * torch.log10(mel.clamp_min(1e-10))).unsqueeze(1)


def passt_logmel(
    wav: torch.Tensor, mel_banks: torch.Tensor, *, n_fft: int = 1024, win_length: int = 800, hop: int = 320
) -> torch.Tensor:
    """``wav [B, S]`` -> normalised log-mel ``[B, n_mels, T]`` as hear21passt's eval-mode frontend."""
    emphasised = wav[:, 1:] - 0.97 * wav[:, :-1]
    window = torch.hann_window(win_length, periodic=False, dtype=wav.dtype, device=wav.device)
    spec = torch.stft(
        emphasised,
        n_fft,
        hop_length=hop,
        win_length=win_length,
        window=window,
        center=True,
        pad_mode="reflect",
        normalized=False,
        return_complex=True,
    )
    power = spec.real.square() + spec.imag.square()  # [B, F, T]
    mel = mel_banks.to(wav.dtype) @ power
    return (torch.log(mel + 1e-5) + 4.5) / 5.0
