"""foleygen.dsp: the filterbank rules its callers rely on, and the resampler's dtypes and lengths.

Agreement with librosa / torchaudio is in tests/eval/test_reference_parity.py and tests/vision/."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from foleygen import dsp


def test_unit_peak_triangles_meet_at_the_centres():
    fb = dsp.mel_filterbank(16000, 512, 20)
    assert fb.shape == (20, 257) and fb.dtype == np.float64
    assert fb.max() <= 1.0 and (fb >= 0).all()
    # neighbouring triangles cross: between the first and the last centre the weights of a bin sum to 1
    centres = dsp.mel_to_hz(np.linspace(dsp.hz_to_mel(0.0), dsp.hz_to_mel(8000.0), 22))[1:-1]
    freqs = np.linspace(0, 8000, 257)
    inner = (freqs >= centres[0]) & (freqs <= centres[-1])
    assert inner.sum() > 200 and np.allclose(fb[:, inner].sum(axis=0), 1.0, atol=1e-9)


def test_norms():
    slaney = dsp.mel_filterbank(16000, 512, 40, norm="slaney")
    edges = dsp.mel_to_hz(np.linspace(dsp.hz_to_mel(0.0), dsp.hz_to_mel(8000.0), 42))
    unit = dsp.mel_filterbank(16000, 512, 40)
    np.testing.assert_allclose(slaney, unit * (2.0 / (edges[2:] - edges[:-2]))[:, None], rtol=1e-12)
    # 80 bands on a 64-point FFT: the lowest bands fall between bins
    summed = dsp.mel_filterbank(16000, 64, 80, norm="sum")
    empty = summed.sum(axis=1) == 0
    assert empty.any() and np.allclose(summed[~empty].sum(axis=1), 1.0)
    nearest = dsp.mel_filterbank(16000, 64, 80, norm="sum", empty="nearest")
    assert np.allclose(nearest.sum(axis=1), 1.0)
    assert ((nearest[empty] == 1.0).sum(axis=1) == 1).all()


def test_kaldi_banks_leave_nyquist_empty_and_count_down_from_it():
    banks = dsp.kaldi_mel_banks(23, 512, 16000, 20.0, -400.0)
    assert banks.shape == (23, 257) and not banks[:, -1].any()
    np.testing.assert_array_equal(banks, dsp.kaldi_mel_banks(23, 512, 16000, 20.0, 7600.0))


@pytest.mark.parametrize(
    "kwargs",
    [{"scale": "bark"}, {"triangles_in": "erb"}, {"norm": "area"}, {"norm": "sum", "empty": "drop"}],
)
def test_bad_options_are_value_errors(kwargs):
    with pytest.raises(ValueError):
        dsp.mel_filterbank(16000, 512, 40, **kwargs)


def test_sinc_resample_lengths_and_dtypes():
    x = torch.sin(2 * math.pi * 440 * torch.arange(4410) / 44100)
    y = dsp.sinc_resample(x[None, None], 44100, 16000)
    assert y.shape == (1, 1, math.ceil(4410 * 16000 / 44100)) and y.dtype == torch.float32
    wide = dsp.sinc_resample(x, 44100, 16000, dtype=torch.float64)
    assert wide.dtype == torch.float64
    torch.testing.assert_close(wide.float(), y[0, 0], atol=1e-5, rtol=0)
    assert dsp.sinc_resample(torch.arange(5), 8000, 8000).dtype == torch.float32
    with pytest.raises(ValueError, match="positive integers"):
        dsp.sinc_resample(x, 44100.5, 16000)
