"""Each transformers backend against its publisher: preprocessing and features on the same frames."""

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("PIL")

from foleygen.errors import CheckpointError, ConfigError  # noqa: E402
from foleygen.vision import load_visual_encoder  # noqa: E402

SIZES = [(45, 61), (70, 37), (32, 32)]


def pixel_tolerance(std):
    # PIL resamples in fixed point and rounds between its two passes: one uint8 level at most.
    return 1.0 / 255.0 / min(std) + 1e-5


def save_clip(tmp_path, full_model):
    vcfg = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8
    )
    if full_model:
        cfg = transformers.CLIPConfig(
            text_config=dict(
                hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, vocab_size=99
            ),
            vision_config=vcfg,
            projection_dim=24,
        )
        model = transformers.CLIPModel(cfg).eval()
    else:
        model = transformers.CLIPVisionModelWithProjection(
            transformers.CLIPVisionConfig(projection_dim=24, **vcfg)
        ).eval()
    model.save_pretrained(tmp_path / "clip")
    proc = transformers.CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    proc.save_pretrained(tmp_path / "clip")
    return model, proc


@pytest.mark.parametrize("full_model", [False, True])
def test_clip_matches_publisher(tmp_path, odd_frames, processor_pixels, full_model):
    model, proc = save_clip(tmp_path, full_model)
    enc = load_visual_encoder("clip", tmp_path / "clip", fps=10, chunk_size=2)
    assert (enc.fps, enc.image_size, enc.dim, enc.trainable) == (10.0, 32, 24, False)
    assert not any(p.requires_grad for p in enc.parameters())
    for h, w in SIZES:
        frames = odd_frames(h, w)
        ours = enc.preprocess(frames)[0]
        theirs = processor_pixels(proc, frames)
        assert ours.shape == theirs.shape == (3, 3, 32, 32)
        assert (ours - theirs).abs().max() <= pixel_tolerance(proc.image_std)
        with torch.no_grad():
            if full_model:
                ref = model.get_image_features(pixel_values=theirs)
            else:
                ref = model(pixel_values=theirs).image_embeds
        ref = getattr(ref, "pooler_output", ref)
        feats = enc(theirs[None])  # same pixels -> same features, up to float rounding
        assert feats.shape == (1, 3, 24)
        torch.testing.assert_close(feats[0], ref, atol=1e-5, rtol=1e-4)
        # end to end (our preprocessing): the one-level pixel differences barely move the embedding
        cos = torch.nn.functional.cosine_similarity(enc.encode(frames)[0], ref, dim=-1)
        assert cos.min() > 0.999


def test_clip_patch_tokens_and_bf16(tmp_path, odd_frames):
    model, _ = save_clip(tmp_path, False)
    enc = load_visual_encoder("clip", tmp_path / "clip", tokens="patch")
    frames = odd_frames(40, 40, f=2)
    tok = enc.encode(frames)
    assert tok.shape == (1, 2, 16, 32)
    with torch.no_grad():
        ref = model(pixel_values=enc.preprocess(frames)[0]).last_hidden_state[:, 1:]
    torch.testing.assert_close(tok[0], ref, atol=1e-5, rtol=1e-4)
    # Frozen features feed a trainable head outside inference mode (no "inference tensor" error).
    head = torch.nn.Linear(24, 2)
    emb = load_visual_encoder("clip", tmp_path / "clip")(enc.preprocess(frames))
    head(emb).sum().backward()
    assert head.weight.grad is not None
    bf = load_visual_encoder("clip", tmp_path / "clip", bf16=True)
    fp = load_visual_encoder("clip", tmp_path / "clip")
    a, b = bf.encode(frames), fp.encode(frames)
    assert a.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(a, b, dim=-1).min() > 0.98


def test_vit_matches_publisher(tmp_path, odd_frames, processor_pixels):
    cfg = transformers.ViTConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8
    )
    model = transformers.ViTModel(cfg).eval()
    model.save_pretrained(tmp_path / "vit")
    proc = transformers.ViTImageProcessorPil(size={"height": 32, "width": 32})
    proc.save_pretrained(tmp_path / "vit")
    for feature in ("cls", "pooled", "mean"):
        enc = load_visual_encoder("vit", tmp_path / "vit", feature=feature, chunk_size=4)
        assert enc.dim == 32 and enc.image_size == 32
        for h, w in SIZES if feature == "cls" else SIZES[:1]:  # preprocessing is shared: check it once fully
            frames = odd_frames(h, w)
            ours, theirs = enc.preprocess(frames)[0], processor_pixels(proc, frames)
            assert (ours - theirs).abs().max() <= pixel_tolerance(proc.image_std)
            with torch.no_grad():
                out = model(pixel_values=theirs)
            ref = {
                "cls": out.last_hidden_state[:, 0],
                "pooled": out.pooler_output,
                "mean": out.last_hidden_state[:, 1:].mean(1),
            }[feature]
            torch.testing.assert_close(enc(theirs[None])[0], ref, atol=1e-5, rtol=1e-4)


def test_vit_classification_checkpoint_has_no_pooler(tmp_path):
    cfg = transformers.ViTConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
        num_labels=3,
    )
    transformers.ViTForImageClassification(cfg).save_pretrained(tmp_path / "cls")
    assert load_visual_encoder("vit", tmp_path / "cls").dim == 32  # cls feature: fine, no processor json either
    with pytest.raises(CheckpointError, match="pooler"):
        load_visual_encoder("vit", tmp_path / "cls", feature="pooled")


def save_videomae(tmp_path):
    cfg = transformers.VideoMAEConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=16,
        num_frames=8,
        tubelet_size=2,
    )
    model = transformers.VideoMAEModel(cfg).eval()
    model.save_pretrained(tmp_path / "vmae")
    proc = transformers.VideoMAEImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    proc.save_pretrained(tmp_path / "vmae")
    return model, proc


def videomae_reference(model, pixels):
    """Publisher model on one clip [T, 3, S, S] -> per time step mean of spatial tokens [T/2, D]."""
    with torch.no_grad():
        hidden = model(pixel_values=pixels[None]).last_hidden_state[0]
    return hidden.reshape(pixels.shape[0] // 2, -1, hidden.shape[-1]).mean(1)


def test_videomae_matches_publisher_and_slides(tmp_path, odd_frames):
    model, proc = save_videomae(tmp_path)
    enc = load_visual_encoder("videomae", tmp_path / "vmae", fps=12.5)
    assert enc.input_fps == 25.0 and enc.fps == 12.5 and enc.dim == 32
    frames = odd_frames(45, 61, f=19)  # 2 windows of 8 frames + 3 frames -> 10 features
    ours = enc.preprocess(frames)[0]
    video = [np.ascontiguousarray(f.numpy()) for f in frames[0]]
    theirs = torch.as_tensor(np.asarray(proc(video, return_tensors="np")["pixel_values"]))[0]
    assert theirs.shape == (19, 3, 32, 32)
    assert (ours - theirs).abs().max() <= pixel_tolerance(proc.image_std)
    feats = enc(theirs[None])[0]
    assert feats.shape == (10, 32) == (enc.num_features(19), 32)
    torch.testing.assert_close(feats[0:4], videomae_reference(model, theirs[0:8]), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(feats[4:8], videomae_reference(model, theirs[8:16]), atol=1e-5, rtol=1e-4)
    last = torch.cat([theirs[16:19], theirs[18:19].expand(5, -1, -1, -1)])  # padded by repeating frame 18
    torch.testing.assert_close(feats[8:10], videomae_reference(model, last)[:2], atol=1e-5, rtol=1e-4)
    # A video shorter than one window: padded then trimmed.
    short = enc(theirs[None, :5])[0]
    assert short.shape == (3, 32)
    pad = torch.cat([theirs[:5], theirs[4:5].expand(3, -1, -1, -1)])
    torch.testing.assert_close(short, videomae_reference(model, pad)[:3], atol=1e-5, rtol=1e-4)
    # Overlapping windows average the time steps they share.
    over = load_visual_encoder("videomae", tmp_path / "vmae", stride=4)(theirs[None, :12])[0]
    a, b = videomae_reference(model, theirs[0:8]), videomae_reference(model, theirs[4:12])
    torch.testing.assert_close(over[2:4], (a[2:4] + b[0:2]) / 2, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(over[4:6], b[2:4], atol=1e-5, rtol=1e-4)
    with pytest.raises(ConfigError, match="stride"):
        load_visual_encoder("videomae", tmp_path / "vmae", stride=3)


def test_bad_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="needs a local checkpoint"):
        load_visual_encoder("clip")
    with pytest.raises(CheckpointError, match="not found"):
        load_visual_encoder("vit", tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_visual_encoder("videomae", tmp_path / "empty")
    save_videomae(tmp_path)
    with pytest.raises(CheckpointError, match="model_type"):
        load_visual_encoder("clip", tmp_path / "vmae")
    with pytest.raises(ConfigError, match="unknown option.*image_size.*valid"):
        load_visual_encoder("videomae", tmp_path / "vmae", image_size=64)
