import pytest
import torch

from foleygen.errors import ConfigError
from foleygen.vision import VISUAL_ENCODERS, load_visual_encoder
from foleygen.vision.compact import CompactVisualConfig, CompactVisualEncoder


def tiny(**kw):
    return CompactVisualConfig(image_size=32, dim=24, channels=[8, 16], stem_patch=4, groups=4, **kw)


def test_shapes_rates_and_preprocess_range():
    enc = CompactVisualEncoder(tiny())
    assert enc.trainable and enc.fps == 25.0 and enc.dim == 24 and enc.image_size == 32
    frames = torch.randint(0, 256, (2, 5, 40, 50, 3), dtype=torch.uint8)
    x = enc.preprocess(frames)
    assert x.shape == (2, 5, 3, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1.0 and x.max() <= 1.0
    feats = enc(x)
    assert feats.shape == (2, 5, 24) and torch.isfinite(feats).all()
    assert enc.encode(frames).shape == (2, 5, 24)
    assert enc.num_features(7) == 7


def test_temporal_diff_is_causal_and_visible():
    enc = CompactVisualEncoder(tiny()).eval()
    x = torch.randn(1, 6, 3, 32, 32)
    base = enc(x)
    y = x.clone()
    y[:, 4] += 1.0  # change frame 4: features 0..3 must not move, 4 and 5 must
    out = enc(y)
    assert torch.allclose(out[:, :4], base[:, :4], atol=1e-6)
    assert not torch.allclose(out[:, 4], base[:, 4]) and not torch.allclose(out[:, 5], base[:, 5])
    # Without the difference channel, frame 5's feature ignores frame 4.
    enc2 = CompactVisualEncoder(tiny(temporal_diff=False)).eval()
    assert torch.allclose(enc2(y)[:, 5], enc2(x)[:, 5])


def test_trains_end_to_end():
    enc = CompactVisualEncoder(tiny(pool="mean"))
    x = torch.randn(2, 3, 3, 32, 32)
    enc(x).pow(2).mean().backward()
    assert all(p.grad is not None for p in enc.parameters())


def test_registry_and_save_load(tmp_path):
    assert {"clip", "vit", "videomae", "imagebind", "compact"} <= set(VISUAL_ENCODERS)
    enc = load_visual_encoder("compact", fps=10, image_size=32, dim=24, channels=[8, 16], stem_patch=4, groups=4)
    assert enc.fps == 10.0 and enc.input_fps == 10.0
    enc.save_pretrained(tmp_path / "vis")
    again = load_visual_encoder("compact", tmp_path / "vis")
    x = torch.randn(1, 2, 3, 32, 32)
    assert torch.equal(enc.eval()(x), again.eval()(x))
    with pytest.raises(ConfigError, match="unknown visual encoder kind"):
        load_visual_encoder("nope")
    with pytest.raises(ConfigError, match="unknown key"):
        load_visual_encoder("compact", dimension=3)
    with pytest.raises(ConfigError, match="multiple"):
        CompactVisualConfig(image_size=30)
