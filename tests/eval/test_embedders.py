"""Metric models: tiny random models saved in each published checkpoint layout load and run; the full-size
architectures (on the meta device) have the published keys and shapes."""

import numpy as np
import pytest
import torch

from foleygen.errors import CheckpointError
from foleygen.eval.embedders import ModelUnavailable, load_embedder, resolve_weights
from foleygen.eval.embedders.frontends import htk_mel_matrix, kaldi_mel_banks, slaney_mel_matrix, vggish_examples
from foleygen.eval.embedders.panns import PANNS_16K, PANNS_32K, Cnn14, PannsConfig, load_panns
from foleygen.eval.embedders.passt import Passt, PasstConfig, load_passt
from foleygen.eval.embedders.vggish import VGGish, load_vggish


def _randomise_bn(model):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)


# ---- full-size layouts on the meta device -------------------------------------------------------------------


def test_vggish_full_layout():
    with torch.device("meta"):
        model = VGGish()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert len(shapes) == 18
    assert shapes["features.0.weight"] == (64, 1, 3, 3)
    assert shapes["features.8.weight"] == (256, 256, 3, 3)
    assert shapes["features.13.weight"] == (512, 512, 3, 3)
    assert shapes["embeddings.0.weight"] == (4096, 512 * 4 * 6)
    assert shapes["embeddings.4.weight"] == (128, 4096)


def test_cnn14_full_layout():
    with torch.device("meta"):
        model = Cnn14(PANNS_16K)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["bn0.running_var"] == (64,)
    assert shapes["conv_block1.conv1.weight"] == (64, 1, 3, 3)
    assert shapes["conv_block6.conv2.weight"] == (2048, 2048, 3, 3)
    assert shapes["fc1.weight"] == (2048, 2048)
    assert shapes["fc_audioset.weight"] == (527, 2048)
    assert sum(p.numel() for p in model.parameters()) == 80_753_615  # the published CNN14 size
    assert "conv_block1.bn1.num_batches_tracked" in shapes


def test_passt_full_layout():
    with torch.device("meta"):
        model = Passt(PasstConfig())
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["patch_embed.proj.weight"] == (768, 1, 16, 16)
    assert shapes["freq_new_pos_embed"] == (1, 768, 12, 1)
    assert shapes["time_new_pos_embed"] == (1, 768, 1, 99)
    assert shapes["new_pos_embed"] == (1, 2, 768)
    assert shapes["blocks.11.attn.qkv.weight"] == (2304, 768)
    assert shapes["blocks.11.mlp.fc1.weight"] == (3072, 768)
    assert shapes["head.0.weight"] == (768,) and shapes["head.1.weight"] == (527, 768)
    assert shapes["head_dist.weight"] == (527, 768)


# ---- tiny models in the published files ---------------------------------------------------------------------


def test_vggish_tiny_roundtrip_and_pca(tmp_path):
    model = VGGish((4, 4, 8, 8, 8, 8), (16, 16, 8)).eval()
    path = tmp_path / "vggish-10086976.pth"
    torch.save(model.state_dict(), path)
    emb = load_embedder("vggish", path)
    wav = torch.randn(16000 * 2) * 0.1  # 2 s -> two whole 0.96 s windows
    out = emb.embed(wav)
    assert out.embeddings.shape == (2, 8) and out.logits is None
    with torch.no_grad():
        want = model(vggish_examples(wav, torch.from_numpy(htk_mel_matrix()))).numpy()
    np.testing.assert_allclose(out.embeddings, want, rtol=1e-5, atol=1e-6)
    # The published PCA file holds numpy arrays; it loads through the restricted unpickler.
    pca_path = tmp_path / "vggish_pca_params-970ea276.pth"
    vectors, means = np.eye(8, dtype=np.float64)[::-1].copy(), np.full(8, 0.01)
    torch.save({"pca_eigen_vectors": vectors, "pca_means": means}, pca_path)
    post = load_vggish(path, pca_path).embed(wav).embeddings
    expected = np.round((np.clip((want - 0.01) @ vectors.T, -2, 2) + 2) * 255 / 4)
    np.testing.assert_allclose(post, expected, atol=1.0)  # quantisation boundaries may differ by one step


def test_panns_tiny_16k_published_dict(tmp_path):
    config = PannsConfig(widths=(4, 4, 8, 8, 8, 16), num_classes=5)
    model = Cnn14(config).eval()
    _randomise_bn(model)
    state = dict(model.state_dict())
    # Frontend keys of the published file (torchlibrosa); melW is used, the STFT convs are ignored.
    state["spectrogram_extractor.stft.conv_real.weight"] = torch.randn(257, 1, 512)
    state["logmel_extractor.melW"] = model.mel_matrix.clone()
    path = tmp_path / "Cnn14_16k_mAP=0.438.pth"
    torch.save({"model": state, "iteration": 1}, path)
    emb = load_panns(path)
    assert emb.sample_rate == 16000 and emb.dim == 16 and emb.num_classes == 5
    wav = torch.randn(16000) * 0.1
    out = emb.embed(wav)
    with torch.no_grad():
        want_emb, want_logits = model.embed_wav(wav[None])
    np.testing.assert_allclose(out.embeddings, want_emb.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out.logits, want_logits[0].numpy(), rtol=1e-4, atol=1e-5)


def test_panns_32k_variant_from_melw(tmp_path):
    config = PannsConfig(**{**PANNS_32K.__dict__, "widths": (2, 2, 2, 2, 2, 4), "num_classes": 3})
    model = Cnn14(config)
    state = dict(model.state_dict(), **{"logmel_extractor.melW": model.mel_matrix.clone()})
    path = tmp_path / "Cnn14_mAP=0.431.pth"
    torch.save({"model": state}, path)
    emb = load_panns(path)
    assert emb.sample_rate == 32000
    assert emb.embed(torch.randn(32000) * 0.1).embeddings.shape == (1, 4)


def test_passt_tiny_roundtrip_with_net_prefix(tmp_path):
    config = PasstConfig(dim=32, depth=2, heads=1, mlp_hidden=64, num_classes=7)
    model = Passt(config).eval()
    with torch.no_grad():
        for p in (
            model.cls_token,
            model.dist_token,
            model.new_pos_embed,
            model.freq_new_pos_embed,
            model.time_new_pos_embed,
        ):
            p.normal_(std=0.02)
    path = tmp_path / "passt-s-f128-p16-s10-ap.476-swa.pt"
    torch.save({f"net.{k}": v for k, v in model.state_dict().items()}, path)
    emb = load_passt(path)
    assert emb.sample_rate == 32000 and emb.dim == 32 and emb.num_classes == 7
    wav = torch.randn(32000) * 0.1
    out = emb.embed(wav)
    with torch.no_grad():
        want_emb, want_logits = model.embed_wav(wav[None])
    assert out.embeddings.shape == (1, 32) and out.logits.shape == (7,)
    np.testing.assert_allclose(out.embeddings, want_emb.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out.logits, want_logits[0].numpy(), rtol=1e-4, atol=1e-5)


def test_frontend_filterbanks_are_sane():
    htk = htk_mel_matrix()
    assert htk.shape == (257, 64) and (htk[0] == 0).all() and (htk.max(0) > 0.5).all()
    slaney = slaney_mel_matrix(16000, 512, 64, 50, 8000)
    assert slaney.shape == (257, 64) and (slaney >= 0).all()
    # Slaney normalisation: each band's area (sum * bin width) is ~1.
    areas = slaney.sum(0) * (8000 / 256)
    assert np.median(areas) == pytest.approx(1.0, rel=0.2)
    kaldi = kaldi_mel_banks(128, 1024, 32000, 0.0, 15000.0)
    assert kaldi.shape == (128, 513) and (kaldi[:, -1] == 0).all()
    assert (np.argmax(kaldi, axis=1)[1:] >= np.argmax(kaldi, axis=1)[:-1]).all()


# ---- errors -------------------------------------------------------------------------------------------------


def test_missing_weights_message(tmp_path, monkeypatch):
    monkeypatch.delenv("FOLEYGEN_PANNS", raising=False)
    with pytest.raises(ModelUnavailable, match="FOLEYGEN_PANNS.*Cnn14_16k"):
        resolve_weights("panns")
    monkeypatch.setenv("FOLEYGEN_PASST", str(tmp_path / "nope.pt"))
    with pytest.raises(ModelUnavailable, match="nope.pt: passt weights file not found"):
        load_embedder("passt")


def test_wrong_checkpoint_is_one_line_error(tmp_path):
    path = tmp_path / "x.pth"
    torch.save({"model": {"foo": torch.zeros(1)}}, path)
    with pytest.raises(CheckpointError, match="not a PANNs CNN14 checkpoint"):
        load_panns(path)
    with pytest.raises(CheckpointError, match="not a VGGish"):
        load_vggish(path)


def test_synthfoley_wrapper_shapes_and_fingerprint(tmp_path):
    from foleygen.eval.embedders.synthfoley import SynthFoleyEmbedder, _weights_fingerprint

    class Classifier:  # stand-in with the event classifier's embedding interface
        sample_rate = 16000

        def embedding(self, wav, sample_rate):
            assert sample_rate == 16000
            frames = wav[: len(wav) // 160 * 160].reshape(-1, 160)
            return torch.stack([frames.abs().mean(1).mean(), frames.std(1).mean(), frames.max()])

    emb = SynthFoleyEmbedder(Classifier(), fingerprint="x")
    out = emb.embed(torch.randn(16000))
    assert out.embeddings.shape == (1, 3) and emb.dim == 3 and out.logits is None
    (tmp_path / "model.safetensors").write_bytes(b"abc")
    first = _weights_fingerprint(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"abd")
    assert _weights_fingerprint(tmp_path) != first
