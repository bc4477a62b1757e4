"""Our frontends, resamplers and onset matching against the maintained reference implementations (issue 36).

Installed references (dev extras): librosa (mel filters, STFT), torchlibrosa (the PANNs frontend),
mir_eval (onset F1), soxr and resampy (resampling as librosa-based references do it). References that
cannot be installed beside our torch (torchaudio: the resampler av-benchmark uses and the Kaldi mel banks
of PaSST; av-benchmark's VGGish frontend) were run once and their outputs stored in
``reference/references.npz`` (``reference/record_references.py`` says how). Each test states its
tolerance; float64 comparisons are at rounding level, float32 ones at float32 precision.
"""

import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from foleygen.eval.embedders.frontends import (
    htk_mel_matrix,
    kaldi_mel_banks,
    panns_logmel,
    slaney_mel_matrix,
    vggish_examples,
)
from foleygen.eval.onsets import match_onsets
from foleygen.eval.protocol import sinc_resample

REFERENCES = Path(__file__).parent / "reference" / "references.npz"
PANNS_SETTINGS = [(16000, 512, 160, 50.0, 8000.0), (32000, 1024, 320, 50.0, 14000.0)]  # Cnn14_16k / Cnn14


@pytest.fixture(scope="module")
def recorded():
    with np.load(REFERENCES) as data:
        return {k: data[k] for k in data}


def _noise_and_tones(rate, seconds=1.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    return 0.1 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t)


# --- librosa -------------------------------------------------------------------------------------


@pytest.mark.parametrize("sample_rate, n_fft, hop, fmin, fmax", PANNS_SETTINGS)
def test_slaney_mel_matrix_is_librosas(sample_rate, n_fft, hop, fmin, fmax):
    librosa = pytest.importorskip("librosa")
    ours = slaney_mel_matrix(sample_rate, n_fft, 64, fmin, fmax)
    theirs = librosa.filters.mel(
        sr=sample_rate, n_fft=n_fft, n_mels=64, fmin=fmin, fmax=fmax, htk=False, norm="slaney", dtype=np.float64
    ).T
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-14)  # float64: rounding only


@pytest.mark.parametrize("sample_rate, n_fft, hop, fmin, fmax", PANNS_SETTINGS)
def test_panns_logmel_is_librosas_pipeline(sample_rate, n_fft, hop, fmin, fmax):
    """Centred reflect-padded periodic-Hann STFT, power, Slaney mel, 10 log10: librosa step by step."""
    librosa = pytest.importorskip("librosa")
    y = _noise_and_tones(sample_rate, 0.5)
    spec = librosa.stft(y, n_fft=n_fft, hop_length=hop, window="hann", center=True, pad_mode="reflect")
    mel = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=64, fmin=fmin, fmax=fmax, dtype=np.float64)
    theirs = 10 * np.log10(np.maximum(mel @ np.abs(spec) ** 2, 1e-10)).T  # [T, 64]
    matrix = torch.from_numpy(slaney_mel_matrix(sample_rate, n_fft, 64, fmin, fmax))
    ours = panns_logmel(torch.from_numpy(y)[None], matrix, n_fft=n_fft, hop=hop)[0, 0].numpy()
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-8)  # dB, float64


def test_vggish_frames_are_librosas_uncentred_stft():
    """VGGish's 25 ms frames in a 512-point FFT: librosa's uncentred STFT of the signal delayed by 56 samples
    (librosa centres the 400-sample window in the 512-sample frame; magnitudes do not see the shift)."""
    librosa = pytest.importorskip("librosa")
    y = _noise_and_tones(16000, 1.0)
    theirs = np.abs(
        librosa.stft(np.pad(y, (56, 0)), n_fft=512, hop_length=160, win_length=400, window="hann", center=False)
    )
    frames = torch.from_numpy(y).unfold(0, 400, 160)
    ours = torch.fft.rfft(frames * torch.hann_window(400, periodic=True, dtype=torch.float64), n=512).abs().numpy().T
    n = min(ours.shape[1], theirs.shape[1])
    assert n >= 95
    np.testing.assert_allclose(ours[:, :n], theirs[:, :n], rtol=1e-9, atol=1e-9)


def test_htk_mel_scale_is_librosas():
    librosa = pytest.importorskip("librosa")
    from foleygen.dsp import hz_to_mel, mel_to_hz

    freqs = np.linspace(10, 16000, 101)
    np.testing.assert_allclose(hz_to_mel(freqs, "htk"), librosa.hz_to_mel(freqs, htk=True), rtol=1e-12)
    np.testing.assert_allclose(hz_to_mel(freqs, "slaney"), librosa.hz_to_mel(freqs, htk=False), rtol=1e-12)
    for scale in ("htk", "kaldi", "slaney"):
        np.testing.assert_allclose(mel_to_hz(hz_to_mel(freqs, scale), scale), freqs, rtol=1e-12)
    ratio = hz_to_mel(freqs, "kaldi") / librosa.hz_to_mel(freqs, htk=True)
    # TF's 1127 ln(1 + f/700) vs librosa's 2595 log10(1 + f/700): one constant factor (1 + 8e-6), which
    # cancels in every triangle (they are ratios of mel differences); the shape of the scale is the same.
    np.testing.assert_allclose(ratio, 1127.0 / (2595.0 / np.log(10.0)), rtol=1e-12)
    assert abs(ratio[0] - 1) < 1e-5


# --- torchlibrosa (PANNs' own frontend) ------------------------------------------------------------


@pytest.mark.parametrize("sample_rate, n_fft, hop, fmin, fmax", PANNS_SETTINGS)
def test_panns_logmel_is_torchlibrosas(sample_rate, n_fft, hop, fmin, fmax):
    stft = pytest.importorskip("torchlibrosa.stft")
    spectrogram = stft.Spectrogram(
        n_fft=n_fft, hop_length=hop, win_length=n_fft, window="hann", center=True, pad_mode="reflect"
    )
    logmel = stft.LogmelFilterBank(
        sr=sample_rate, n_fft=n_fft, n_mels=64, fmin=fmin, fmax=fmax, ref=1.0, amin=1e-10, top_db=None
    )
    wav = torch.from_numpy(_noise_and_tones(sample_rate, 0.5, seed=3)).float()[None]
    with torch.no_grad():
        theirs = logmel(spectrogram(wav))[0, 0].numpy()  # [T, 64], float32, conv-based STFT
    matrix = torch.from_numpy(slaney_mel_matrix(sample_rate, n_fft, 64, fmin, fmax)).float()
    ours = panns_logmel(wav, matrix, n_fft=n_fft, hop=hop)[0, 0].numpy()
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=2e-3)  # dB; float32 STFTs (conv vs FFT) differ in rounding


# --- recorded from torchaudio and av-benchmark ------------------------------------------------------


@pytest.mark.parametrize("orig, new", [(44100, 16000), (48000, 16000), (22050, 32000), (16000, 32000), (44100, 32000)])
def test_sinc_resample_is_torchaudios(recorded, orig, new):
    """av-benchmark resamples with torchaudio.transforms.Resample (Hann sinc, 6 zero crossings, 0.99)."""
    x = torch.from_numpy(recorded[f"resample_in_{orig}_{new}"])
    theirs = recorded[f"resample_out_{orig}_{new}"]
    ours = sinc_resample(x, orig, new).numpy()
    assert ours.shape == theirs.shape
    # torchaudio keeps its kernel in float32 (ours is float64): ~1e-6 of a unit-scale signal
    np.testing.assert_allclose(ours, theirs, atol=2e-5)


def test_kaldi_banks_are_torchaudios(recorded):
    """PaSST's mel banks: torchaudio.compliance.kaldi.get_mel_banks(128, 1024, 32000, 0, 15000)."""
    ours = kaldi_mel_banks(128, 1024, 32000, 0.0, 15000.0)
    theirs = recorded["kaldi_banks_passt"]
    assert ours.shape == (128, 513) and not ours[:, 512].any()  # PaSST pads the Nyquist column with zeros
    # torchaudio computes in float32: mel values up to ~2900 keep ~3e-4 of rounding, ~1.5e-5 of a weight
    np.testing.assert_allclose(ours[:, :512], theirs, atol=3e-5)


def test_vggish_frontend_is_av_benchmarks(recorded):
    """VGGish's mel matrix and log-mel frames as av-benchmark's copy of the TF release computes them."""
    np.testing.assert_allclose(htk_mel_matrix(), recorded["vggish_mel_matrix"], atol=1e-6)
    wav = torch.from_numpy(recorded["vggish_logmel_in"])
    theirs = recorded["vggish_logmel_out"]  # [48, 64]: 0.5 s -> 48 frames
    ours = vggish_examples(wav, torch.from_numpy(htk_mel_matrix()))[0, 0].numpy()  # padded to one example
    np.testing.assert_allclose(ours[: len(theirs)], theirs, atol=1e-4)


# --- mir_eval (onset F1) ---------------------------------------------------------------------------


def test_onset_matching_is_mir_evals():
    """Single-time references, nothing ignored: our Hungarian matching gives mir_eval's P / R / F exactly."""
    mir_eval = pytest.importorskip("mir_eval")
    rng = np.random.default_rng(0)
    for trial in range(300):
        ref = np.sort(rng.uniform(0, 5, rng.integers(1, 15)))
        kept = ref[rng.random(ref.size) < 0.7]
        est = np.concatenate([kept + rng.normal(0, 0.03, kept.size), rng.uniform(0, 5, rng.integers(0, 6))])
        est = np.sort(est)
        if est.size == 0:
            continue
        window = (0.04, 0.05)[trial % 2]
        f, p, r = mir_eval.onset.f_measure(ref, est, window=window)
        ours = match_onsets(est, ref, tolerance=window)
        assert (ours.precision, ours.recall, ours.f1) == pytest.approx((p, r, f), abs=1e-12), trial


# --- soxr / resampy --------------------------------------------------------------------------------


def _tones_wav(path, rate, seconds=2.0):
    t = np.arange(int(rate * seconds)) / rate
    x = sum(0.2 * np.sin(2 * np.pi * f * t + k) for k, f in enumerate((220.0, 1000.0, 3100.0, 5900.0)))
    data = (np.clip(x, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(rate)
        fh.writeframes(data.tobytes())
    return data.astype(np.float64) / 32768


def _relative_error(a, b, margin=2000):
    a, b = a[margin:-margin], b[margin:-margin]  # the filters' edge transients differ by design
    return float(np.sqrt(np.mean((a - b) ** 2) / np.mean(b**2)))


def test_default_resampling_agrees_with_soxr_and_resampy(tmp_path):
    """Our default reading (FFmpeg swresample via load_clip) vs soxr 'HQ' (librosa's default) and resampy
    'kaiser_best' (older librosa, PANNs' own inference): tones up to 0.74 x Nyquist, 44.1 -> 16 kHz."""
    soxr = pytest.importorskip("soxr")
    resampy = pytest.importorskip("resampy")
    from foleygen.eval.pairing import load_clip

    x = _tones_wav(tmp_path / "t.wav", 44100)
    ours = load_clip(tmp_path / "t.wav", 16000, 2.0).numpy().astype(np.float64)
    assert _relative_error(ours, soxr.resample(x, 44100, 16000, "HQ")) < 1e-3  # measured 1.1e-4
    assert _relative_error(ours, resampy.resample(x, 44100, 16000, filter="kaiser_best")) < 1e-3  # 3.1e-5
    # av-benchmark's resampler (torchaudio's Hann sinc) droops near its 0.99 roll-off: ~0.4 % from soxr here
    sinc = sinc_resample(torch.from_numpy(x), 44100, 16000).numpy().astype(np.float64)
    assert _relative_error(sinc, soxr.resample(x, 44100, 16000, "HQ")) < 1e-2  # measured 4.2e-3
