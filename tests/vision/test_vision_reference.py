"""Our torch-only reimplementations against the libraries they replace.

torchaudio and torchvision are not installed here (no CPU builds for this project); these tests run
where they are (e.g. a GPU machine's image) and are skipped elsewhere.
"""

import math

import numpy as np
import pytest
import torch

from foleygen.dsp import sinc_resample as resample
from foleygen.vision.fbank import kaldi_fbank
from foleygen.vision.preprocessing import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, ImageTransform


def signals():
    g = torch.Generator().manual_seed(0)
    t = torch.arange(32000) / 16000
    yield "noise 2s", 0.1 * torch.randn(32000, generator=g)
    yield "tone+noise 2s", 0.5 * torch.sin(2 * math.pi * 440 * t) + 0.01 * torch.randn(32000, generator=g)
    yield "clicks 0.7s", (torch.rand(11200, generator=g) > 0.999).float()
    yield "short 0.03s", 0.1 * torch.randn(480, generator=g)


def test_fbank_matches_torchaudio_kaldi():
    ta = pytest.importorskip("torchaudio")
    for name, x in signals():
        x = x - x.mean()
        ref = ta.compliance.kaldi.fbank(
            x[None],
            htk_compat=True,
            sample_frequency=16000,
            use_energy=False,
            window_type="hanning",
            num_mel_bins=128,
            dither=0.0,
            frame_length=25,
            frame_shift=10,
        )
        ours = kaldi_fbank(x, 16000, num_mel_bins=128, window_type="hanning")
        assert ours.shape == ref.shape, name
        diff = (ours - ref).abs().max().item()
        print(f"fbank {name}: max |diff| {diff:.2e} (log-mel)")
        assert diff < 1e-3, name


@pytest.mark.parametrize("orig,new", [(44100, 16000), (48000, 16000), (8000, 16000), (22050, 16000)])
def test_resample_matches_torchaudio(orig, new):
    ta = pytest.importorskip("torchaudio")
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, orig, generator=g) * 0.2
    ref = ta.functional.resample(x, orig, new)
    ours = resample(x, orig, new)
    assert ours.shape == ref.shape
    diff = (ours - ref).abs().max().item()
    print(f"resample {orig}->{new}: max |diff| {diff:.2e}")
    assert diff < 1e-4


def test_imagebind_vision_preprocessing_matches_torchvision():
    tv = pytest.importorskip("torchvision")
    from PIL import Image

    transforms = tv.transforms
    official = transforms.Compose(
        [
            transforms.Resize(224, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD),
        ]
    )
    ours = ImageTransform(resize=224, crop=224, interpolation="bicubic", crop_rounding="round")
    g = np.random.default_rng(0)
    worst = 0.0
    for h, w in [(480, 640), (300, 200), (225, 401), (100, 150)]:
        yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
        img = (
            np.stack([np.sin(7 * xx + c) * np.cos(5 * yy) for c in range(3)], -1) * 0.4
            + 0.5
            + g.normal(0, 0.08, (h, w, 3))
        )
        img = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
        ref = official(Image.fromarray(img))
        got = ours(torch.from_numpy(img)[None, None])[0, 0]
        diff = (got - ref).abs().max().item()
        worst = max(worst, diff)
        print(f"imagebind vision {h}x{w}: max |diff| {diff:.2e} (one uint8 level = {1 / 255 / 0.2613:.2e})")
        assert diff <= 1 / 255 / min(OPENAI_CLIP_STD) + 1e-5


@pytest.mark.parametrize("name", ["clip", "vit", "videomae"])
def test_transformers_torchvision_processors(name):
    """With torchvision installed, transformers 5 defaults to its torchvision-backed image processors;
    they resize tensors instead of PIL images. Our PIL-order resize stays within a few levels of them."""
    pytest.importorskip("torchvision")
    transformers = pytest.importorskip("transformers")
    from foleygen.vision.clip import clip_default_transform
    from foleygen.vision.videomae import videomae_default_transform
    from foleygen.vision.vit import vit_default_transform

    proc, ours = {
        "clip": (transformers.CLIPImageProcessor(), clip_default_transform()),
        "vit": (transformers.ViTImageProcessor(), vit_default_transform()),
        "videomae": (transformers.VideoMAEImageProcessor(), videomae_default_transform()),
    }[name]
    ours = ImageTransform(**{**ours.__dict__, "mean": tuple(proc.image_mean), "std": tuple(proc.image_std)})
    g = np.random.default_rng(0)
    for h, w in [(480, 640), (300, 200), (123, 457)]:
        img = (np.clip(g.normal(0.5, 0.2, (h, w, 3)), 0, 1) * 255).round().astype(np.uint8)
        if name == "videomae":
            ref = torch.as_tensor(np.asarray(proc([img], return_tensors="np")["pixel_values"]))[0, 0]
        else:
            ref = torch.as_tensor(np.asarray(proc(images=[img], return_tensors="np")["pixel_values"]))[0]
        got = ours(torch.from_numpy(img)[None, None])[0, 0]
        levels = ((got - ref).abs() * torch.tensor(proc.image_std).view(3, 1, 1) * 255).max().item()
        print(f"{type(proc).__name__} {h}x{w}: max diff {levels:.2f} uint8 levels")
        assert levels <= 3.0
