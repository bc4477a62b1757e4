import math

import pytest
import torch

from foleygen.codecs.losses import MelLoss, MultiResolutionSTFTLoss, complex_stft_l1, mel_filterbank
from foleygen.codecs.metrics import mel_distance, mrstft_distance, si_sdr
from foleygen.errors import CodecError


def _tone(freq=440.0, n=16000, sr=16000):
    return torch.sin(2 * math.pi * freq * torch.arange(n) / sr)[None, None]


def test_identical_signals_score_perfectly():
    x = _tone() * 0.5 + 0.01 * torch.randn(1, 1, 16000)
    assert mel_distance(x, x, 16000) < 1e-6
    assert mrstft_distance(x, x) < 1e-6
    assert si_sdr(x, x).item() > 60


def test_si_sdr_known_values_and_scale_invariance():
    torch.manual_seed(0)
    t = torch.randn(2, 1, 8000)
    noise = torch.randn(2, 1, 8000)
    noise = noise - (noise * t).sum(-1, keepdim=True) / t.pow(2).sum(-1, keepdim=True) * t  # orthogonal to t
    noise = noise / noise.norm(dim=-1, keepdim=True) * t.norm(dim=-1, keepdim=True) * 0.1  # 20 dB below
    pred = 3.0 * (t + noise)  # a gain changes nothing
    assert torch.allclose(si_sdr(pred, t), torch.full((2, 1), 20.0), atol=0.05)
    assert abs(si_sdr(-t, t)[0, 0].item() - si_sdr(t, t)[0, 0].item()) < 1e-3


def test_distances_grow_with_distortion():
    torch.manual_seed(0)
    x = _tone(440) * 0.5 + 0.05 * torch.randn(1, 1, 16000)  # broadband, like real sounds
    near = x + 0.005 * torch.randn_like(x)
    far = _tone(1500) * 0.5 + 0.05 * torch.randn(1, 1, 16000)
    assert mel_distance(near, x, 16000) < mel_distance(far, x, 16000)
    assert mrstft_distance(near, x) < mrstft_distance(far, x)
    assert si_sdr(near, x).item() > si_sdr(far, x).item()
    with pytest.raises(CodecError):
        mel_distance(x[0], x, 16000)


def test_mel_filterbank_shape_and_coverage():
    fb = mel_filterbank(16000, 1024, 64)
    assert fb.shape == (64, 513) and (fb >= 0).all()
    peaks = fb.argmax(dim=1)
    assert (peaks[1:] >= peaks[:-1]).all()  # centre frequencies increase
    assert (fb.sum(0)[5:500] > 0).all()  # every bin between the first and last centres is covered


def test_losses_are_differentiable():
    x = _tone() * 0.5
    pred = (x + 0.1 * torch.randn_like(x)).requires_grad_()
    sc, logmag = MultiResolutionSTFTLoss()(pred, x)
    (sc + logmag + MelLoss(16000)(pred, x)).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_complex_stft_loss_sees_phase():
    x = _tone() * 0.5
    shifted = 0.5 * torch.sin(2 * math.pi * 440 * torch.arange(16000) / 16000 + 1.0)[None, None]  # phase only
    assert complex_stft_l1(x, x) < 1e-6
    sc, _ = MultiResolutionSTFTLoss()(shifted, x)  # spectral convergence: magnitudes nearly agree
    assert complex_stft_l1(shifted, x) > 5 * sc
