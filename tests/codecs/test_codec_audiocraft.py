"""AudioCraft compression checkpoints, built in AudioCraft's layout from the ``encodec`` package's modules.

audiocraft itself is not installable here. Its ``modules/seanet.py``/``conv.py``/``lstm.py`` and RVQ are
the ``encodec`` package's code (same module tree, same state-dict names: ``encoder.model.N.conv.conv``,
``quantizer.vq.layers.N._codebook.embed``; AudioCraft adds only ``disable_norm_outer_blocks``, 0 here), so
the package's modules, configured as AudioCraft's ``encodec_large_nq4_s320`` (AudioGen's 16 kHz codec,
scaled down), are the reference implementation for these checks.
"""

import sys
import types

import pytest
import torch
import yaml
from torch import nn

from foleygen.codecs import load_codec
from foleygen.codecs.audiocraft import convert_audiocraft_checkpoint
from foleygen.errors import CheckpointError

pytest.importorskip("transformers")

XP_CFG = {
    "sample_rate": 16000,
    "channels": 1,
    "compression_model": "encodec",
    "encodec": {
        "autoencoder": "seanet",
        "quantizer": "rvq",
        "sample_rate": "${sample_rate}",
        "channels": "${channels}",
        "causal": False,
        "renormalize": False,
    },
    "seanet": {
        "dimension": 16,
        "channels": "${channels}",
        "causal": "${encodec.causal}",
        "n_filters": 4,
        "n_residual_layers": 1,
        "ratios": [8, 5, 4, 2],
        "activation": "ELU",
        "activation_params": {"alpha": 1.0},
        "norm": "weight_norm",
        "norm_params": {},
        "kernel_size": 7,
        "residual_kernel_size": 3,
        "last_kernel_size": 7,
        "dilation_base": 2,
        "pad_mode": "constant",
        "true_skip": True,
        "compress": 2,
        "lstm": 2,
        "disable_norm_outer_blocks": 0,
        "decoder": {"trim_right_ratio": 1.0, "final_activation": None, "final_activation_params": None},
        "encoder": {},
    },
    "rvq": {
        "n_q": 4,
        "q_dropout": False,
        "bins": 64,
        "decay": 0.99,
        "kmeans_init": True,
        "kmeans_iters": 50,
        "threshold_ema_dead_code": 2,
    },
}


@pytest.fixture(scope="module")
def reference():
    """(model with AudioCraft's state-dict layout, input, codes [B, K, T], decoded audio)."""
    if "encodec" not in sys.modules:
        # see test_codec_encodec.py: torchaudio stub only while encodec is imported
        sys.modules["torchaudio"] = types.ModuleType("torchaudio")
        try:
            import encodec  # noqa: F401
        except ImportError as err:
            pytest.skip(f"encodec package not usable ({err})")
        finally:
            sys.modules.pop("torchaudio", None)
    from encodec.modules import SEANetDecoder, SEANetEncoder
    from encodec.quantization import ResidualVectorQuantizer

    torch.manual_seed(3)
    s = XP_CFG["seanet"]
    kw = dict(
        channels=1,
        dimension=s["dimension"],
        n_filters=s["n_filters"],
        ratios=s["ratios"],
        norm="weight_norm",
        causal=False,
        pad_mode="constant",
        true_skip=True,
        compress=2,
        lstm=2,
    )
    model = nn.Module()  # attribute names = AudioCraft's EncodecModel: encoder, decoder, quantizer
    model.encoder, model.decoder = SEANetEncoder(**kw), SEANetDecoder(**kw)
    model.quantizer = ResidualVectorQuantizer(s["dimension"], n_q=4, bins=64)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("_codebook.embed"):
                buf.copy_(torch.randn_like(buf))
            elif name.endswith("_codebook.inited"):
                buf.fill_(1)
    model.eval()
    x = torch.randn(2, 1, 3200) * 0.3
    with torch.no_grad():
        codes = model.quantizer.encode(model.encoder(x), 50, None)  # [K, B, T]
        audio = model.decoder(model.quantizer.decode(codes))
    return model, x, codes.transpose(0, 1), audio


def _check(codec, x, codes, audio):
    assert (codec.sample_rate, codec.frame_rate, codec.num_codebooks, codec.cardinality) == (16000, 50.0, 4, 64)
    assert torch.equal(codec.encode(x), codes)
    out = codec.decode(codes)
    assert out.shape == audio.shape and torch.allclose(out, audio, atol=1e-4, rtol=1e-3)


def test_exported_checkpoint_yaml_cfg(tmp_path, reference):
    model, x, codes, audio = reference
    path = tmp_path / "compression_state_dict.bin"
    # export_encodec's layout: the state dict, the config as (unresolved) YAML text
    torch.save(
        {"best_state": model.state_dict(), "xp.cfg": yaml.safe_dump(XP_CFG), "version": "1.3.0", "exported": True}, path
    )
    _check(load_codec(str(path)), x, codes, audio)
    assert load_codec(str(path), num_codebooks=2).encode(x).shape[1] == 2


def test_training_checkpoint_plain_dict_and_converted_dir(tmp_path, reference):
    model, x, codes, audio = reference
    path = tmp_path / "checkpoint.th"
    torch.save({"best_state": {"model": model.state_dict()}, "xp.cfg": XP_CFG}, path)
    _check(load_codec(str(path)), x, codes, audio)
    convert_audiocraft_checkpoint(path, tmp_path / "converted")
    _check(load_codec(str(tmp_path / "converted")), x, codes, audio)


def test_dictconfig_and_bad_checkpoints_are_refused_clearly(tmp_path, reference):
    model = reference[0]
    # a stand-in for omegaconf.DictConfig: an arbitrary class weights_only must refuse to unpickle
    fake = types.ModuleType("omegaconf.dictconfig")

    class DictConfig(dict):
        pass

    DictConfig.__module__, DictConfig.__qualname__ = "omegaconf.dictconfig", "DictConfig"
    fake.DictConfig = DictConfig
    assert "omegaconf" not in sys.modules  # never shadow a real omegaconf
    sys.modules["omegaconf"], sys.modules["omegaconf.dictconfig"] = types.ModuleType("omegaconf"), fake
    try:
        torch.save({"best_state": {"model": model.state_dict()}, "xp.cfg": DictConfig(XP_CFG)}, tmp_path / "t.th")
    finally:
        sys.modules.pop("omegaconf.dictconfig", None)
        sys.modules.pop("omegaconf", None)
    with pytest.raises(CheckpointError, match="OmegaConf.*export_encodec"):
        load_codec(str(tmp_path / "t.th"))
    torch.save({"pretrained": "facebook/encodec_32khz", "exported": True}, tmp_path / "p.bin")
    with pytest.raises(CheckpointError, match="pointer"):
        load_codec(str(tmp_path / "p.bin"))
    bad = dict(XP_CFG, seanet=dict(XP_CFG["seanet"], n_filters=8))  # config disagrees with weights
    torch.save({"best_state": model.state_dict(), "xp.cfg": bad}, tmp_path / "b.bin")
    with pytest.raises(CheckpointError, match="shapes"):
        load_codec(str(tmp_path / "b.bin"))
    dis = dict(XP_CFG, seanet=dict(XP_CFG["seanet"], disable_norm_outer_blocks=1))
    torch.save({"best_state": model.state_dict(), "xp.cfg": dis}, tmp_path / "d.bin")
    with pytest.raises(CheckpointError, match="disable_norm_outer_blocks"):
        load_codec(str(tmp_path / "d.bin"))
