"""EnCodec-family formats against the ``encodec`` package itself (same input -> same codes, close audio)."""

import sys
import types

import pytest
import torch

from foleygen.codecs import load_codec
from foleygen.errors import CheckpointError, CodecError

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def encodec_pkg():
    # encodec.utils imports torchaudio at module level, only for file I/O we never use; torchaudio is not
    # installable here (it would pull a CUDA torch). Stub it only while encodec is imported, then remove the
    # stub at once: transformers probes for torchaudio and must keep seeing that it is absent.
    if "torchaudio" in sys.modules or "encodec" in sys.modules:
        return pytest.importorskip("encodec")
    sys.modules["torchaudio"] = types.ModuleType("torchaudio")
    try:
        import encodec
    except ImportError as err:
        pytest.skip(f"encodec package not usable ({err})")
    finally:
        sys.modules.pop("torchaudio", None)
    return encodec


def _randomise_codebooks(model, dim_scale=1.0):
    """Codebooks are buffers (EMA-trained), zero/random-uninitialised in a fresh model: give them values."""
    for name, buf in model.named_buffers():
        if name.endswith("_codebook.embed"):
            buf.copy_(torch.randn_like(buf) * dim_scale)
        elif name.endswith("_codebook.inited"):
            buf.fill_(1)


def _check_equivalent(codec, reference_codes, reference_audio, x):
    codes = codec.encode(x)
    assert codes.shape == reference_codes.shape
    assert torch.equal(codes, reference_codes)
    audio = codec.decode(codes)
    assert audio.shape == reference_audio.shape
    assert torch.allclose(audio, reference_audio, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("sample_rate", [24000, 48000])
def test_encodec_package_checkpoint(tmp_path, encodec_pkg, sample_rate):
    torch.manual_seed(1)
    build = {24000: encodec_pkg.EncodecModel.encodec_model_24khz, 48000: encodec_pkg.EncodecModel.encodec_model_48khz}[
        sample_rate
    ]
    ref = build(pretrained=False).eval()
    with torch.no_grad():
        _randomise_codebooks(ref, 0.3)
    path = tmp_path / f"encodec_{sample_rate // 1000}khz-0123abcd.th"
    torch.save(ref.state_dict(), path)  # how the publisher ships them: a bare state dict
    # the 48 kHz model's per-chunk RMS normalisation cannot be carried by codes: compare unnormalised
    ref.segment, ref.normalize = None, False
    ref.set_target_bandwidth(6.0)
    x = torch.randn(1, ref.channels, sample_rate // 20) * 0.3  # 50 ms: plenty of frames, cheap
    with torch.no_grad():
        [(ref_codes, _)] = ref.encode(x)
        ref_audio = ref.decode([(ref_codes, None)])
    codec = load_codec(str(path), bandwidth=6.0)
    assert (codec.sample_rate, codec.channels, codec.cardinality) == (sample_rate, ref.channels, 1024)
    assert codec.frame_rate == sample_rate / 320 and codec.num_codebooks == ref_codes.shape[1]
    _check_equivalent(codec, ref_codes, ref_audio, x)


def _tiny_hf(**kw):
    from transformers import EncodecConfig, EncodecModel

    cfg = dict(
        num_filters=4,
        upsampling_ratios=[4, 2],
        codebook_size=16,
        hidden_size=8,
        sampling_rate=800,
        target_bandwidths=[0.4, 0.8],
    )
    cfg.update(kw)
    model = EncodecModel(EncodecConfig(**cfg)).eval()
    with torch.no_grad():
        for q in model.quantizer.layers:
            q.codebook.embed.copy_(torch.randn_like(q.codebook.embed))
    return model


def _hf_reference(model, x, k):
    with torch.no_grad():
        emb = model.encoder(x)
        codes = model.quantizer.encode(emb, bandwidth=None)[:k]  # [K, B, T]
        audio = model.decoder(model.quantizer.decode(codes))
    return codes.transpose(0, 1), audio


def test_huggingface_directory(tmp_path):
    model = _tiny_hf()
    model.save_pretrained(tmp_path / "hf")
    x = torch.randn(2, 1, 800) * 0.3  # 100 frames at 100 Hz
    codec = load_codec(str(tmp_path / "hf"))
    assert (codec.sample_rate, codec.frame_rate, codec.cardinality, codec.num_codebooks) == (800, 100.0, 16, 2)
    _check_equivalent(codec, *_hf_reference(model, x, 2), x)
    tiny = codec.encode(torch.zeros(1, 1, 1))  # one sample -> one frame; silence is fine
    assert tiny.shape == (1, 2, 1) and codec.decode(tiny).shape == (1, 1, 8)
    one = load_codec(str(tmp_path / "hf"), num_codebooks=1)
    assert torch.equal(one.encode(x), codec.encode(x)[:, :1])
    with pytest.raises(CodecError, match="codebooks"):
        codec.decode(torch.zeros(1, 3, 4, dtype=torch.long))
    with pytest.raises(CodecError, match="out of range"):
        codec.decode(torch.full((1, 2, 4), 16))
    (tmp_path / "hf" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_codec(str(tmp_path / "hf"))
    torch.save(model.state_dict(), tmp_path / "weights.th")  # unnamed bare state dict: format unknown
    with pytest.raises(CheckpointError, match="xp.cfg"):
        load_codec(str(tmp_path / "weights.th"))


@pytest.mark.slow
def test_huggingface_audiogen_shapes(tmp_path):
    # 16 kHz, 50 Hz, 4 x 2048: AudioGen's codec shapes (random weights)
    model = _tiny_hf(
        num_filters=64,
        upsampling_ratios=[8, 5, 4, 2],
        codebook_size=2048,
        hidden_size=128,
        sampling_rate=16000,
        target_bandwidths=[2.2],
        use_conv_shortcut=False,
        pad_mode="constant",
    )
    model.save_pretrained(tmp_path / "audiogen")
    codec = load_codec(str(tmp_path / "audiogen"))
    assert (codec.frame_rate, codec.num_codebooks, codec.cardinality) == (50.0, 4, 2048)
    x = torch.randn(1, 1, 16000) * 0.3
    _check_equivalent(codec, *_hf_reference(model, x, 4), x)


def test_long_input_chunking_stays_close(tmp_path):
    # SEANet's convs have a finite receptive field but its LSTM does not: codes of chunked encoding equal
    # the one-shot codes in the first chunk and almost everywhere after it
    model = _tiny_hf()
    model.save_pretrained(tmp_path / "hf")
    codec = load_codec(str(tmp_path / "hf"))
    x = torch.randn(1, 1, 800 * 5 + 13) * 0.3
    whole = codec.encode(x)
    codec.chunk_seconds, codec.context_seconds = 1.0, 0.5
    chunked = codec.encode(x)
    assert chunked.shape == whole.shape == (1, 2, 502)
    assert torch.equal(chunked[..., :100], whole[..., :100])
    assert (chunked == whole).float().mean() > 0.8
    audio = codec.decode(whole)
    assert audio.shape == (1, 1, 502 * 8) and torch.isfinite(audio).all()
