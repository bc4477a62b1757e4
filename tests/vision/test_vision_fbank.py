import math

import numpy as np
import pytest
import torch

from foleygen.dsp import sinc_resample as resample
from foleygen.errors import ConfigError
from foleygen.vision.fbank import kaldi_fbank, mel_filterbank


def reference_fbank(x, sr, bins=128):
    """Straight from Kaldi's description, one frame at a time, in float64 numpy."""
    x = np.asarray(x, dtype=np.float64)
    win, shift = int(sr * 0.025), int(sr * 0.010)
    nfft = 1 << (win - 1).bit_length()
    n = np.arange(win)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / (win - 1))
    mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)
    lo, hi = mel(20.0), mel(sr / 2)
    delta = (hi - lo) / (bins + 1)
    fft_mel = mel(np.arange(nfft // 2) * sr / nfft)
    out = []
    for t in range(1 + (len(x) - win) // shift):
        frame = x[t * shift : t * shift + win].copy()
        frame -= frame.mean()
        emph = frame.copy()
        emph[1:] -= 0.97 * frame[:-1]
        emph[0] -= 0.97 * frame[0]
        spec = np.abs(np.fft.rfft(emph * window, nfft)) ** 2
        energies = []
        for b in range(bins):
            left, center, right = lo + b * delta, lo + (b + 1) * delta, lo + (b + 2) * delta
            w = np.maximum(0, np.minimum((fft_mel - left) / (center - left), (right - fft_mel) / (right - center)))
            energies.append(max(float(np.dot(spec[: nfft // 2], w)), np.finfo(np.float32).eps))
        out.append(np.log(energies))
    return np.array(out)


def test_kaldi_fbank_matches_reference():
    g = torch.Generator().manual_seed(0)
    t = torch.arange(16000 * 0.3) / 16000
    x = 0.3 * torch.sin(2 * math.pi * 440 * t) + 0.05 * torch.randn(t.shape, generator=g)
    ours = kaldi_fbank(x, 16000, num_mel_bins=64)
    ref = reference_fbank(x.numpy(), 16000, bins=64)
    assert ours.shape == ref.shape == (1 + (len(x) - 400) // 160, 64)
    np.testing.assert_allclose(ours.numpy(), ref, atol=2e-3, rtol=1e-4)


def test_fbank_edges_and_errors():
    assert kaldi_fbank(torch.zeros(399), 16000).shape == (0, 128)
    silent = kaldi_fbank(torch.zeros(16000), 16000)
    assert torch.allclose(silent, torch.full_like(silent, math.log(torch.finfo(torch.float32).eps)))
    banks = mel_filterbank(128, 512, 16000)
    assert banks.shape == (128, 257) and banks[:, -1].abs().sum() == 0 and banks.max() <= 1.0
    with pytest.raises(ConfigError):
        kaldi_fbank(torch.zeros(2, 100), 16000)
    with pytest.raises(ConfigError, match="window"):
        kaldi_fbank(torch.zeros(1000), 16000, window_type="blackman-x")


@pytest.mark.parametrize("orig,new", [(44100, 16000), (8000, 16000), (48000, 16000)])
def test_resample_keeps_a_sine(orig, new):
    f = 1000.0
    x = torch.sin(2 * math.pi * f * torch.arange(orig) / orig).double()
    y = resample(x[None], orig, new)
    assert y.shape == (1, math.ceil(orig * new / orig))
    t = torch.arange(y.shape[-1]).double() / new
    ideal = torch.sin(2 * math.pi * f * t)
    inner = slice(100, -100)  # away from the zero-padded ends
    assert (y[0, inner] - ideal[inner]).abs().max() < 2e-3
    assert torch.equal(resample(x, orig, orig), x)
    with pytest.raises(ValueError, match="positive integers"):
        resample(x, 0, 16000)
