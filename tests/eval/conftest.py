"""Shared helpers for the evaluation tests: tiny WAV folders and a stand-in embedder."""

import wave

import numpy as np
import pytest
import torch

from foleygen.eval.embedders import EMBEDDERS, EmbedderSpec
from foleygen.eval.embedders.base import AudioEmbedder, EmbedderOutput


def write_wav(path, wav, sample_rate=16000):
    """16-bit PCM mono WAV with the standard library (independent of foleygen.io)."""
    data = (np.clip(np.asarray(wav, np.float64), -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(sample_rate)
        fh.writeframes(data.tobytes())


def tone(freq, seconds=1.0, sample_rate=16000, amp=0.3):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return amp * np.sin(2 * np.pi * freq * t)


class BandEnergyEmbedder(AudioEmbedder):
    """Stand-in metric model: log energies of 8 frequency bands (embedding) and 4 coarse bands (logits)."""

    name = "synthfoley"
    sample_rate = 16000
    dim = 8
    num_classes = 4
    fingerprint = "band-energy-v1"

    def __init__(self):
        self.calls = 0

    def embed(self, wav):
        self.calls += 1
        spec = torch.fft.rfft(wav.double()).abs().square()
        bands = torch.stack([b.sum() for b in spec.chunk(8)]).clamp_min(1e-9).log()
        coarse = bands.reshape(4, 2).mean(1)
        # Two windows per clip, like a windowed model, so FAD sees more rows than clips.
        emb = torch.stack([bands, bands + 0.01 * torch.arange(8)]).float().numpy()
        return EmbedderOutput(emb, coarse.float().numpy())


@pytest.fixture
def stand_in_embedder(monkeypatch):
    """Register the stand-in under the built-in ``synthfoley`` name; returns the instance."""
    instance = BandEnergyEmbedder()
    spec = EmbedderSpec("synthfoley", None, "stand-in", "tests", lambda path, **opts: instance)
    monkeypatch.setitem(EMBEDDERS, "synthfoley", spec)
    return instance


@pytest.fixture
def wavtools():
    """``write_wav(path, wav, sr)`` and ``tone(freq, seconds, sr, amp)`` for tests that make audio."""
    from types import SimpleNamespace

    return SimpleNamespace(write_wav=write_wav, tone=tone)


@pytest.fixture
def folders(tmp_path):
    """gen/ and ref/ with four paired tones (gen 10% sharp), one unpaired file each, and a non-media file."""
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    gen.mkdir()
    ref.mkdir()
    for i, f in enumerate([300, 500, 700, 900]):
        write_wav(gen / f"clip{i}.wav", tone(f * 1.1, 1.0))
        write_wav(ref / f"clip{i}.wav", tone(f, 1.2))
    write_wav(gen / "extra_gen.wav", tone(440, 0.5))
    write_wav(ref / "extra_ref.wav", tone(460, 0.5))
    (gen / "notes.txt").write_text("not media")
    return gen, ref
