import math

import numpy as np
import pytest
import torch
from PIL import Image

from foleygen.errors import CheckpointError
from foleygen.vision import load_visual_encoder
from foleygen.vision.imagebind import ImageBindConfig, ImageBindModel


def official_huge_spec():
    """Vision + audio keys and shapes of imagebind_huge.pth, written from facebookresearch/ImageBind
    (imagebind_model.py: imagebind_huge(), _create_modality_*; transformer.py; multimodal_preprocessors.py)."""
    V, A, OUT = 1280, 768, 1024
    spec = {
        "modality_preprocessors.vision.cls_token": (1, 1, V),
        "modality_preprocessors.vision.rgbt_stem.proj.1.weight": (V, 3, 2, 14, 14),
        "modality_preprocessors.vision.pos_embedding_helper.pos_embed": (1, 1 + 16 * 16, V),
        "modality_preprocessors.audio.cls_token": (1, 1, A),
        "modality_preprocessors.audio.rgbt_stem.proj.weight": (A, 1, 16, 16),
        "modality_preprocessors.audio.rgbt_stem.norm_layer.weight": (A,),
        "modality_preprocessors.audio.rgbt_stem.norm_layer.bias": (A,),
        "modality_preprocessors.audio.pos_embedding_helper.pos_embed": (1, 1 + 12 * 19, A),
        "modality_trunks.vision.pre_transformer_layer.0.weight": (V,),
        "modality_trunks.vision.pre_transformer_layer.0.bias": (V,),
        "modality_heads.vision.0.weight": (V,),
        "modality_heads.vision.0.bias": (V,),
        "modality_heads.vision.2.weight": (OUT, V),
        "modality_heads.audio.0.weight": (A,),
        "modality_heads.audio.0.bias": (A,),
        "modality_heads.audio.2.weight": (OUT, A),
        "modality_postprocessors.audio.1.log_logit_scale": (),
    }
    for name, dim, blocks, bias_kv in (("vision", V, 32, False), ("audio", A, 12, True)):
        for i in range(blocks):
            p = f"modality_trunks.{name}.blocks.{i}."
            spec.update(
                {
                    p + "attn.in_proj_weight": (3 * dim, dim),
                    p + "attn.in_proj_bias": (3 * dim,),
                    p + "attn.out_proj.weight": (dim, dim),
                    p + "attn.out_proj.bias": (dim,),
                    p + "norm_1.weight": (dim,),
                    p + "norm_1.bias": (dim,),
                    p + "norm_2.weight": (dim,),
                    p + "norm_2.bias": (dim,),
                    p + "mlp.fc1.weight": (4 * dim, dim),
                    p + "mlp.fc1.bias": (4 * dim,),
                    p + "mlp.fc2.weight": (dim, 4 * dim),
                    p + "mlp.fc2.bias": (dim,),
                }
            )
            if bias_kv:
                spec.update({p + "attn.bias_k": (1, 1, dim), p + "attn.bias_v": (1, 1, dim)})
    return spec


def test_huge_layout_matches_official_spec():
    with torch.device("meta"):  # 719M parameters: shapes only, no memory
        model = ImageBindModel(ImageBindConfig())
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    spec = official_huge_spec()
    assert set(got) == set(spec)
    assert got == spec
    audio_blocks = model.modality_trunks["audio"].blocks
    assert audio_blocks[0].drop_path.p == 0.0 and math.isclose(audio_blocks[-1].drop_path.p, 0.1)


TINY = dict(
    out_embed_dim=16,
    image_size=28,
    vision_embed_dim=32,
    vision_num_blocks=2,
    vision_num_heads=4,
    audio_embed_dim=24,
    audio_num_blocks=2,
    audio_num_heads=4,
)


@pytest.fixture
def tiny_checkpoint(tmp_path):
    """A random small-dims model saved exactly like imagebind_huge.pth: a plain state dict, all modalities."""
    model = ImageBindModel(ImageBindConfig(**TINY)).eval()
    state = dict(model.state_dict())
    # The official file also holds the other modalities; they must be skipped, not reported.
    state["modality_trunks.text.blocks.0.attn.in_proj_weight"] = torch.zeros(3, 1)
    state["modality_postprocessors.text.1.log_logit_scale"] = torch.tensor(2.0)
    state["modality_preprocessors.depth.cls_token"] = torch.zeros(1, 1, 4)
    path = tmp_path / "imagebind_huge.pth"
    torch.save(state, path)
    return model, path


def frames_uint8(n, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, h, w, 3), generator=g, dtype=torch.uint8)


def test_tiny_checkpoint_loads_and_matches(tiny_checkpoint):
    ref, path = tiny_checkpoint
    model = ImageBindModel.from_checkpoint(path, TINY)
    assert not any(p.requires_grad for p in model.parameters())
    frames = frames_uint8(3, 37, 50)
    emb = model.embed_vision(frames, chunk_size=2)
    assert emb.shape == (3, 16)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(emb, ref.embed_vision(frames))
    # An image is a 2-frame clip of itself.
    pixels = model.vision_transform(frames[None])[0]
    clip = pixels[:, :, None].expand(-1, -1, 2, -1, -1)
    torch.testing.assert_close(model.embed_vision(clip), emb)

    wav = torch.randn(2, 1, 16000 * 3) * 0.1
    a = model.embed_audio(wav, 16000)
    assert a.shape == (2, 16)
    torch.testing.assert_close(a.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(a, ref.embed_audio(wav, 16000))
    official = model.embed_audio(wav, 16000, official_scale=True)
    torch.testing.assert_close(official / official.norm(dim=-1, keepdim=True), a)
    # Official output: mean over clips of 20 * unit vectors -> norm 20 only if the clips agree.
    assert (official.norm(dim=-1) <= 20.0 + 1e-4).all()
    spec = model.audio_melspec(wav[:1], 16000)
    x = model.modality_trunks["audio"](model.modality_preprocessors["audio"](spec[0]))
    per_clip = model.modality_postprocessors["audio"](model.modality_heads["audio"](x))
    torch.testing.assert_close(per_clip.norm(dim=-1), torch.full((3,), 20.0))
    torch.testing.assert_close(per_clip.mean(0), official[0])


def test_audio_input_pipeline(tiny_checkpoint):
    _, path = tiny_checkpoint
    model = ImageBindModel.from_checkpoint(path, TINY, modalities=("audio",))
    assert "vision" not in model.modality_trunks
    assert model.clip_starts(10.0) == [0.0, 4.0, 8.0]
    assert model.clip_starts(1.0) == [0.0, 0.0, 0.0]
    wav = torch.randn(16000 * 2) * 0.1
    spec = model.audio_melspec(wav, 16000)
    assert spec.shape == (1, 3, 1, 128, 204)
    # 2 s -> 198 Kaldi frames; the 6 padded columns are zeros before normalisation.
    torch.testing.assert_close(spec[0, 0, 0, :, 198:], torch.full((128, 6), 4.268 / 9.138))
    assert not torch.allclose(spec[0, 0, 0, :, 197], torch.full((128,), 4.268 / 9.138))
    # 44.1 kHz input is resampled to 16 kHz: the same sound at either rate gives nearly the same embedding.
    t = torch.arange(44100 * 2) / 44100
    tone = 0.3 * torch.sin(2 * math.pi * 440 * t)
    e1 = model.embed_audio(tone, 44100)
    from foleygen.dsp import sinc_resample as resample

    e2 = model.embed_audio(resample(tone, 44100, 16000), 16000)
    torch.testing.assert_close(e1, e2)


def test_vision_preprocessing_matches_torchvision_pipeline():
    """Resize(224, BICUBIC) on a PIL image + CenterCrop (round) + ToTensor + Normalize, with PIL by hand."""
    model_cfg = ImageBindConfig(**TINY)
    with torch.device("meta"):
        model = ImageBindModel(model_cfg)
    for h, w in [(37, 50), (61, 29)]:
        img = frames_uint8(1, h, w, seed=h)
        short = 28
        nh, nw = (int(short * h / w), short) if w <= h else (short, int(short * w / h))
        pil = Image.fromarray(img[0].numpy()).resize((nw, nh), Image.BICUBIC)
        arr = np.asarray(pil).astype(np.float32) / 255.0
        top, left = int(round((nh - short) / 2.0)), int(round((nw - short) / 2.0))
        arr = arr[top : top + short, left : left + short]
        mean, std = np.array([0.48145466, 0.4578275, 0.40821073]), np.array([0.26862954, 0.26130258, 0.27577711])
        ref = torch.tensor(((arr - mean) / std).transpose(2, 0, 1), dtype=torch.float32)
        ours = model.vision_transform(img[None])[0, 0]
        assert (ours - ref).abs().max() <= 1.0 / 255.0 / std.min() + 1e-5


def test_visual_encoder_and_errors(tiny_checkpoint, tmp_path):
    ref, path = tiny_checkpoint
    enc = load_visual_encoder("imagebind", path, fps=5, config=TINY, chunk_size=2)
    assert (enc.fps, enc.dim, enc.image_size, enc.trainable) == (5.0, 16, 28, False)
    video = frames_uint8(5, 30, 40)
    feats = enc.encode(video[None])
    assert feats.shape == (1, 5, 16)
    torch.testing.assert_close(feats[0], ref.embed_vision(video))
    tok = load_visual_encoder("imagebind", path, config=TINY, feature="tokens").encode(video[None])
    assert tok.shape == (1, 5, 1 + 4, 32)

    state = torch.load(path, weights_only=True)
    bad = dict(state, **{"modality_trunks.vision.blocks.0.attn.extra": torch.zeros(1)})
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="unexpected"):
        ImageBindModel.from_checkpoint(tmp_path / "bad.pth", TINY)
    with pytest.raises(CheckpointError, match="shape"):
        ImageBindModel.from_checkpoint(path, dict(TINY, out_embed_dim=8))
    with pytest.raises(CheckpointError, match="not found"):
        load_visual_encoder("imagebind", tmp_path / "nope.pth")
    # A directory with model.safetensors + config.json describes its own (small) variant.
    from foleygen.checkpoint import save_checkpoint_dir

    save_checkpoint_dir(tmp_path / "ib_dir", TINY, ref.state_dict())
    from_dir = load_visual_encoder("imagebind", tmp_path / "ib_dir")
    torch.testing.assert_close(from_dir.encode(video[None]), feats)
    torch.save({"a": [1, 2]}, tmp_path / "pickle.pth")
    with pytest.raises(CheckpointError):
        ImageBindModel.from_checkpoint(tmp_path / "pickle.pth", TINY)
