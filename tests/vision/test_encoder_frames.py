"""One rule for the frames an encoder sees: a ``prepare`` cache holds what ``FoleyGen`` computes.

For every encoder kind, on a 16:9 clip (large enough that frozen encoders' frames are pre-shrunk) and
a portrait phone clip (stored landscape, rotated for display), the features read from a cache that
``prepare_cache`` wrote equal the features :class:`foleygen.FoleyGen` computes from the same file.
Tolerance: the cache stores frozen features as float16, so they must equal FoleyGen's float32 features
rounded to float16 (within one float16 step); a trainable encoder's cache stores the frames
themselves, which must be identical, and so must the features computed from them.
"""

import numpy as np
import pytest
import torch
from media_factory import make_media

from foleygen.api import FoleyGen
from foleygen.data.cache import CacheReader
from foleygen.data.manifest import load_manifest
from foleygen.data.prepare import prepare_cache
from foleygen.lm import AudioLM, LMConfig
from foleygen.results import load_video
from foleygen.vision import load_visual_encoder
from foleygen.vision.frames import PRESHRINK_FACTOR, decode_size, read_encoder_frames

transformers = pytest.importorskip("transformers")

IMAGE_SIZE = 32


def _save_clip(root):
    model = transformers.CLIPVisionModelWithProjection(
        transformers.CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
            image_size=IMAGE_SIZE, patch_size=8, projection_dim=24,
        )
    )  # fmt: skip
    model.save_pretrained(root)
    transformers.CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    ).save_pretrained(root)


def _save_vit(root):
    transformers.ViTModel(
        transformers.ViTConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
            image_size=IMAGE_SIZE, patch_size=8,
        )
    ).save_pretrained(root)  # fmt: skip
    transformers.ViTImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(root)


def _save_videomae(root):
    transformers.VideoMAEModel(
        transformers.VideoMAEConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
            image_size=IMAGE_SIZE, patch_size=16, num_frames=8, tubelet_size=2,
        )
    ).save_pretrained(root)  # fmt: skip
    transformers.VideoMAEImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    ).save_pretrained(root)


def _save_imagebind(root):
    from foleygen.vision.imagebind import ImageBindConfig, ImageBindModel

    cfg = dict(out_embed_dim=16, image_size=28, vision_embed_dim=32, vision_num_blocks=1, vision_num_heads=4)
    cfg.update(audio_embed_dim=24, audio_num_blocks=1, audio_num_heads=4)
    root.mkdir()
    torch.save(ImageBindModel(ImageBindConfig(**cfg)).state_dict(), root / "imagebind_huge.pth")
    return cfg


def build_encoder(kind, root):
    torch.manual_seed(0)
    if kind == "compact":
        from foleygen.vision.compact import CompactVisualConfig, CompactVisualEncoder

        cfg = CompactVisualConfig(fps=10.0, image_size=16, dim=8, channels=[8], stem_patch=4, groups=4)
        return CompactVisualEncoder(cfg).eval()
    path = root / kind
    if kind == "imagebind":
        config = _save_imagebind(path)
        return load_visual_encoder("imagebind", path / "imagebind_huge.pth", fps=10, config=config)
    {"clip": _save_clip, "vit": _save_vit, "videomae": _save_videomae}[kind](path)
    return load_visual_encoder(kind, path, fps=12.5 if kind == "videomae" else 10)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A 16:9 clip whose short side exceeds the pre-shrink limit, and a rotated portrait clip."""
    root = tmp_path_factory.mktemp("frames_rule")
    wide = make_media(root / "wide.mp4", fps=25, duration=1.0, size=(192, 108), audio_rate=16000).path
    tall = make_media(root / "tall.mp4", fps=25, duration=1.0, size=(96, 54), rotation=90, audio_rate=16000).path
    (root / "manifest.csv").write_text(f"path,split\n{wide},train\n{tall},train\n")
    from foleygen.codecs.compact import CompactCodec, CompactCodecConfig

    torch.manual_seed(0)
    codec = CompactCodec(CompactCodecConfig(hidden=16, latent_dim=8, num_codebooks=2, codebook_size=16, res_blocks=1))
    for layer in codec.quantizer.layers:  # random codebooks count as initialised for this stand-in
        layer.inited.fill_(1)
    return root, {"wide": wide, "tall": tall}, codec.eval()


def test_decode_size_rule():
    class Enc:
        image_size, trainable = 32, False

    frozen, trainable = Enc(), Enc()
    trainable.trainable = True
    assert decode_size(trainable, 1920, 1080) == 32
    assert decode_size(frozen, 96, 54) is None and decode_size(frozen, 54, 96) is None
    limit = PRESHRINK_FACTOR * 32
    assert decode_size(frozen, 1920, 1080) == (limit, round(1920 * limit / 1080))
    assert decode_size(frozen, 1080, 1920) == (round(1920 * limit / 1080), limit)


@pytest.mark.parametrize("kind", ["compact", "clip", "vit", "videomae", "imagebind"])
def test_prepare_cache_holds_what_foleygen_computes(kind, clips, tmp_path):
    root, videos, codec = clips
    encoder = build_encoder(kind, tmp_path)
    lm = AudioLM(
        LMConfig(
            dim=16, num_layers=1, num_heads=2, num_codebooks=2, cardinality=16,
            frame_rate=codec.frame_rate, fps=encoder.fps, visual_dim=encoder.dim,
        )
    )  # fmt: skip
    model = FoleyGen(codec, encoder, lm, duration=1.0)
    cache = tmp_path / "cache"
    prepare_cache(
        load_manifest(root / "manifest.csv"), cache, codec, encoder,
        codec_name="tiny", visual_kind=kind, duration=1.0, batch_size=2, workers=1, quiet=True,
    )  # fmt: skip
    reader = CacheReader(cache)
    assert len(reader) == 2
    for i, clip in enumerate(reader.clips):
        name = "wide" if "wide" in clip.id else "tall"
        ours = load_video(model, videos[name], None, model.generation).features  # [F', D] float32
        stored = torch.from_numpy(np.array(reader.visual_data(i)))
        if encoder.trainable:
            frames = read_encoder_frames(videos[name], encoder, duration=1.0)
            assert torch.equal(stored, frames)  # the very frames, [F, S, S, 3]
            cached = encoder.encode(stored[None])[0]
            n = min(len(cached), len(ours))
            torch.testing.assert_close(cached[:n], ours[:n], rtol=0, atol=1e-6)
        else:
            n = min(len(stored), len(ours))
            assert n >= round(encoder.fps) - 1
            expected = ours[:n].half().float()
            step = expected.abs().clamp_min(2**-14) * 2**-10  # one float16 step at each value
            assert ((stored[:n].float() - expected).abs() <= step).all(), name
