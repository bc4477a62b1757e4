import math

import pytest
import torch

from foleygen.codecs import load_codec
from foleygen.codecs.compact import CompactCodec, CompactCodecConfig
from foleygen.codecs.rvq import ResidualVectorQuantizer
from foleygen.dsp import sinc_resample
from foleygen.errors import CheckpointError, CodecError, ConfigError

TINY = CompactCodecConfig(
    hidden=32, res_blocks=1, latent_dim=16, num_codebooks=2, codebook_size=32, chunk_seconds=0.5, context_seconds=0.3
)


def _trained_tiny() -> CompactCodec:
    codec = CompactCodec(TINY)
    codec.train()
    codec(torch.randn(2, 1, 16000) * 0.1)  # first quantised pass k-means-initialises the codebooks
    return codec.eval()


def test_shapes_rates_and_edge_inputs():
    codec = _trained_tiny()
    assert (codec.sample_rate, codec.channels, codec.frame_rate, codec.hop_length) == (16000, 1, 50.0, 320)
    assert (codec.num_codebooks, codec.cardinality) == (2, 32)
    for n, t in [(1, 1), (320, 1), (321, 2), (8000, 25)]:
        codes = codec.encode(torch.randn(3, 1, n) * 0.1)
        assert codes.shape == (3, 2, t) and codes.dtype == torch.int64
        assert 0 <= int(codes.min()) and int(codes.max()) < 32
        wav = codec.decode(codes)
        assert wav.shape == (3, 1, t * 320) and torch.isfinite(wav).all()
    # silence and hard clipping stay finite
    for x in (torch.zeros(1, 1, 4000), torch.sign(torch.randn(1, 1, 4000))):
        assert torch.isfinite(codec.decode(codec.encode(x))).all()


def test_long_inputs_are_chunked_exactly():
    codec = _trained_tiny()
    x = torch.randn(1, 1, 16000 * 2 + 77) * 0.1  # 4+ chunks of 0.5 s
    whole = codec.quantizer.encode(codec.encode_latent(x))  # one shot, no chunking
    chunked = codec.encode(x)
    assert torch.equal(whole, chunked)
    full = codec.decode_latent(codec.quantizer.decode(chunked))
    assert torch.allclose(codec.decode(chunked), full, atol=1e-4)


def test_bad_codes_and_audio_raise_codec_error():
    codec = _trained_tiny()
    with pytest.raises(CodecError, match="codebooks"):
        codec.decode(torch.zeros(1, 3, 5, dtype=torch.long))
    with pytest.raises(CodecError, match="out of range"):
        codec.decode(torch.full((1, 2, 5), 32))
    with pytest.raises(CodecError, match="channels"):
        codec.encode(torch.zeros(1, 2, 100))
    with pytest.raises(ConfigError):
        CompactCodecConfig(sample_rate=16001)


def test_save_load_roundtrip_and_num_codebooks(tmp_path):
    codec = _trained_tiny()
    x = torch.randn(2, 1, 4000) * 0.1
    codec.save_pretrained(tmp_path / "c")
    loaded = load_codec(str(tmp_path / "c"))
    assert isinstance(loaded, CompactCodec) and not loaded.training
    assert torch.equal(loaded.encode(x), codec.encode(x))
    assert torch.allclose(loaded.decode(codec.encode(x)), codec.decode(codec.encode(x)), atol=1e-6)
    one = load_codec(str(tmp_path / "c"), num_codebooks=1)
    assert one.encode(x).shape[1] == 1 and torch.equal(one.encode(x), codec.encode(x)[:, :1])
    with pytest.raises(CodecError):
        load_codec(str(tmp_path / "c"), num_codebooks=3)


def test_load_codec_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_codec(str(tmp_path / "nope"))
    (tmp_path / "junk").mkdir()
    with pytest.raises(CheckpointError, match="known format"):
        load_codec(str(tmp_path / "junk"))
    uninit = CompactCodec(TINY)
    uninit.save_pretrained(tmp_path / "u")
    with pytest.raises(CheckpointError, match="initialised"):
        load_codec(str(tmp_path / "u"))


def test_rvq_kmeans_ema_dead_codes_and_straight_through():
    rvq = ResidualVectorQuantizer(4, 2, 8, dead_threshold=0.2)
    z = torch.randn(2, 4, 50, requires_grad=True)
    out = rvq(z)
    assert rvq.initialised and out.codes.shape == (2, 2, 50)
    # k-means init on these very vectors: first codebook already explains most of the energy
    residual = z.detach() - rvq.layers[0].lookup(out.codes[:, 0]).permute(0, 2, 1)
    assert residual.pow(2).mean() < 0.6 * z.detach().pow(2).mean()
    (out.quantized.sum() + out.commit_loss).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()
    assert z.grad.abs().min() > 0  # straight-through: every input receives a gradient
    # a code that wins nothing decays below the threshold and is restarted
    rvq.layers[0].cluster_size[3] = 0.0
    metrics = rvq(torch.randn(2, 4, 50)).metrics
    assert metrics["dead_restarts_0"] >= 1 and 1 <= metrics["perplexity_0"] <= 8
    # quantizer dropout: a random number of codebooks per training batch
    rvq.quantizer_dropout = True
    assert {rvq(torch.randn(1, 4, 20)).codes.shape[1] for _ in range(12)} == {1, 2}
    rvq.quantizer_dropout = False
    # inference encode/decode agree with the training pass
    rvq.eval()
    codes = rvq.encode(z.detach())
    assert torch.allclose(rvq.decode(codes), rvq(z.detach()).quantized, atol=1e-5)


def test_prepare_audio_resamples_and_remixes():
    codec = _trained_tiny()
    t = torch.arange(44100) / 44100
    stereo = torch.stack([torch.sin(2 * math.pi * 440 * t), torch.sin(2 * math.pi * 440 * t)])
    with pytest.warns(UserWarning, match="down-mixing"):
        y = codec.prepare_audio(stereo, 44100)
    assert y.shape == (1, 16000)
    ref = torch.sin(2 * math.pi * 440 * torch.arange(16000) / 16000)
    assert (y[0] - ref)[100:-100].abs().max() < 1e-3
    # a tone above the new Nyquist frequency is removed, not aliased
    alias = sinc_resample(torch.sin(2 * math.pi * 10000 * t)[None], 44100, 16000, zero_crossings=16, rolloff=0.95)
    assert alias[0, 100:-100].pow(2).mean().sqrt() < 1e-2
    up = sinc_resample(ref[None], 16000, 24000, zero_crossings=16, rolloff=0.95)
    assert up.shape == (1, 24000)
    with pytest.raises(CodecError):
        codec.prepare_audio(torch.zeros(3), 16000)


def test_demo_name_and_bandwidth(tmp_path, monkeypatch):
    import foleygen.codecs as codecs

    monkeypatch.setitem(codecs.NAMES, "demo", tmp_path / "missing")
    with pytest.raises(CheckpointError, match="not installed"):
        load_codec("demo")
    codec = _trained_tiny()
    codec.save_pretrained(tmp_path / "demo_codec")
    monkeypatch.setitem(codecs.NAMES, "demo", tmp_path / "demo_codec")
    assert isinstance(load_codec("demo"), CompactCodec)
    # 50 Hz x log2(32) = 5 bit/frame = 0.25 kbit/s per codebook
    assert load_codec("demo", bandwidth=0.3).num_codebooks == 1
    assert load_codec("demo", bandwidth=0.5).num_codebooks == 2
    with pytest.raises(CodecError, match="not both"):
        load_codec("demo", bandwidth=0.5, num_codebooks=1)


def test_phase_input_variant(tmp_path):
    import dataclasses

    codec = CompactCodec(dataclasses.replace(TINY, phase_input=True))
    x = torch.randn(2, 1, 16000) * 0.1
    assert codec.features(x).shape == (2, 3 * 161, 200)  # log-magnitude + compressed real/imag parts
    codec.train()
    codec(x)
    codec.eval()
    codec.save_pretrained(tmp_path / "p")
    loaded = load_codec(str(tmp_path / "p"))
    assert loaded.config.phase_input and torch.equal(loaded.encode(x), codec.encode(x))


def test_stft_istft_and_decode_spectrum_compose_to_decode():
    codec = _trained_tiny()
    wav = 0.3 * torch.sin(torch.arange(3200) / 5.0)[None]  # [1, S], S = 10 code frames
    spec = codec.stft(wav)
    assert spec.shape == (1, codec.num_bins, 3200 // codec.config.stft_hop) and spec.is_complex()
    # analysis/synthesis round trip, exact except the last window (its final frame is repeated, not stored)
    inner = 3200 - codec.config.n_fft
    torch.testing.assert_close(codec.istft(spec, 3200)[:, :inner], wav[:, :inner], atol=1e-4, rtol=0)
    with torch.no_grad():
        z = codec.quantizer.decode(codec.encode(wav[None]))
        mag, phasor = codec.decode_spectrum(z)
        assert mag.shape == phasor.shape == spec.shape and (mag >= 0).all()
        assert (phasor.abs() <= 1 + 1e-5).all() and phasor.abs().median() > 0.999  # unit length but near 0/0
        torch.testing.assert_close(codec.istft(mag * phasor, 3200)[None], codec.decode_latent(z))
