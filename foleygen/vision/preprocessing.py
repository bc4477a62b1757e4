"""Publisher-faithful image preprocessing in pure torch (no PIL, no torchvision at run time).

Every pretrained backend describes its publisher's pipeline with an :class:`ImageTransform`:

1. resize — either the *shortest edge* to ``resize`` keeping the aspect ratio (the long edge becomes
   ``int(resize * long / short)``, exactly as Hugging Face and torchvision compute it), or straight to
   ``resize x resize`` (ViT);
2. optionally round the resized image to uint8 — the publishers resize a uint8 PIL image, so their
   pixels are quantised after the resize; doing the same removes a systematic +-0.5 level difference;
3. center crop to ``crop x crop`` (top/left offset ``floor`` for Hugging Face, ``round`` for
   torchvision's ``CenterCrop``, which ImageBind uses);
4. rescale by 1/255 and normalise with the per-channel mean/std.

The resize uses ``torch.nn.functional.interpolate(..., antialias=True)``, whose antialiased
bilinear/bicubic kernels follow PIL's (support scaled by the downscale factor, cubic a = -0.5). With
``quantize`` it also copies PIL's order of work: horizontal pass, round and clip to uint8, vertical
pass, round and clip. Measured against PIL 11 on noisy frames: bicubic downscales are bit-identical in
most cases and otherwise differ by one uint8 level on < 0.1 % of pixels; bilinear differs by one
level on up to ~5 % of pixels when upscaling (PIL's 22-bit fixed point rounds some exact halves the
other way). One level is ``1 / 255 / std`` in normalised units (0.015 for CLIP's std, 0.0078 for
mean = std = 0.5); ``tests/vision`` checks this bound against the publishers' image processors.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from foleygen.errors import CheckpointError, ConfigError

PREPROCESSOR_CONFIG = "preprocessor_config.json"

# PIL resampling codes as stored in Hugging Face preprocessor_config.json ("resample": 3).
_PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)
IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)
IMAGENET_STANDARD_MEAN = (0.5, 0.5, 0.5)
IMAGENET_STANDARD_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class ImageTransform:
    """One publisher's frame preprocessing (see the module docstring for the steps).

    Attributes:
        resize: target of the resize step (shortest edge, or the square side when ``resize_mode`` is
            ``"square"``); 0 disables resizing.
        crop: side of the center crop; 0 disables cropping (then ``resize_mode`` must be "square").
        resize_mode: ``"shortest_edge"`` (keep aspect) or ``"square"`` (direct resize, may distort).
        interpolation: ``"bicubic"`` or ``"bilinear"`` (or ``"nearest"``), antialiased when shrinking.
        mean, std: per-channel normalisation after the 1/255 rescale.
        rescale_factor: multiplies the uint8 values (1/255 everywhere we know of).
        quantize: round the resized image to uint8 like a PIL resize does.
        crop_rounding: ``"floor"`` (Hugging Face) or ``"round"`` (torchvision) for the crop offset.
    """

    resize: int
    crop: int
    resize_mode: Literal["shortest_edge", "square"] = "shortest_edge"
    interpolation: Literal["bicubic", "bilinear", "nearest"] = "bicubic"
    mean: tuple[float, float, float] = OPENAI_CLIP_MEAN
    std: tuple[float, float, float] = OPENAI_CLIP_STD
    rescale_factor: float = 1.0 / 255.0
    quantize: bool = True
    crop_rounding: Literal["floor", "round"] = "floor"

    @property
    def output_size(self) -> int:
        """S, the side of the square the transform produces."""
        return self.crop if self.crop else self.resize

    def resized_shape(self, height: int, width: int) -> tuple[int, int]:
        """(H, W) after the resize step for an input of ``height x width``."""
        if not self.resize:
            return height, width
        if self.resize_mode == "square":
            return self.resize, self.resize
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.resize, int(self.resize * long / short)
        return (new_long, new_short) if width <= height else (new_short, new_long)

    def __call__(self, frames: torch.Tensor, chunk_size: int = 64) -> torch.Tensor:
        """``uint8 [B, F, H, W, 3]`` -> ``float32 [B, F, 3, S, S]``, ``chunk_size`` frames at a time.

        Chunking bounds the float copy of the full-resolution frames (a 1080p frame is 25 MB in fp32).
        """
        if frames.dim() != 5 or frames.shape[-1] != 3:
            raise ConfigError(f"frames must be uint8 [B, F, H, W, 3], got shape {tuple(frames.shape)}")
        if frames.dtype != torch.uint8:
            raise ConfigError(f"frames must be uint8 (as read from video), got {frames.dtype}")
        b, f, h, w, _ = frames.shape
        flat = frames.reshape(b * f, h, w, 3)
        out = [self._apply(flat[i : i + chunk_size]) for i in range(0, flat.shape[0], max(1, chunk_size))]
        s = self.output_size
        if not out:
            return frames.new_zeros((b, f, 3, s, s), dtype=torch.float32)
        return torch.cat(out).reshape(b, f, 3, out[0].shape[-2], out[0].shape[-1])

    def _resize(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(x, size=size, mode=self.interpolation, align_corners=False, antialias=True)

    def _apply(self, images: torch.Tensor) -> torch.Tensor:
        """``uint8 [N, H, W, 3]`` -> ``float32 [N, 3, S, S]``."""
        x = images.permute(0, 3, 1, 2).float()
        h, w = x.shape[-2:]
        nh, nw = self.resized_shape(h, w)
        if (nh, nw) != (h, w):
            if self.interpolation == "nearest":
                x = F.interpolate(x, size=(nh, nw), mode="nearest")
            elif self.quantize:
                # PIL resamples a uint8 image horizontally, rounds and clips to 0..255, then vertically
                # (and rounds/clips again). Clipping the first pass matters for bicubic, whose overshoot
                # near 0/255 would otherwise leak into the second pass (up to 7 levels of difference).
                if nw != w:
                    x = self._resize(x, (h, nw)).round_().clamp_(0, 255)
                if nh != h:
                    x = self._resize(x, (nh, nw)).round_().clamp_(0, 255)
            else:
                x = self._resize(x, (nh, nw)).clamp_(0, 255)
        if self.crop:
            x = _center_crop(x, self.crop, self.crop_rounding)
        mean = torch.tensor(self.mean, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(1, 3, 1, 1)
        return (x * self.rescale_factor - mean) / std


def _center_crop(x: torch.Tensor, size: int, rounding: str) -> torch.Tensor:
    """Center crop ``[N, C, H, W]`` to ``size x size``; zero-pads an image smaller than the crop (as HF does)."""
    h, w = x.shape[-2:]
    if h < size or w < size:
        ph, pw = max(0, size - h), max(0, size - w)
        top, left = (ph + 1) // 2, (pw + 1) // 2  # HF pads with ceil on the top/left
        x = F.pad(x, (left, pw - left, top, ph - top))
        h, w = x.shape[-2:]
    if rounding == "round":
        top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    else:
        top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


def transform_from_preprocessor_config(
    directory: str | os.PathLike[str] | None, default: ImageTransform
) -> ImageTransform:
    """``default`` updated from ``directory/preprocessor_config.json`` (Hugging Face format) if it exists.

    Reads ``size`` ({"shortest_edge"} or {"height","width"} or an int), ``crop_size``, ``do_resize``,
    ``do_center_crop``, ``resample`` (PIL code), ``image_mean``, ``image_std``, ``rescale_factor``.
    """
    if directory is None:
        return default
    path = Path(directory) / PREPROCESSOR_CONFIG
    if not path.is_file():
        return default
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"not valid JSON ({err})", path) from None
    t = default
    size = cfg.get("size")
    if cfg.get("do_resize", True) is False:
        t = replace(t, resize=0)
    elif isinstance(size, int):
        t = replace(t, resize=size, resize_mode="shortest_edge" if cfg.get("crop_size") else "square")
    elif isinstance(size, dict):
        if "shortest_edge" in size:
            t = replace(t, resize=int(size["shortest_edge"]), resize_mode="shortest_edge")
        elif "height" in size and "width" in size:
            if size["height"] != size["width"]:
                raise CheckpointError(f"non-square resize {size} is not supported", path)
            t = replace(t, resize=int(size["height"]), resize_mode="square")
        else:
            raise CheckpointError(f"unsupported 'size' {size}", path)
    crop = cfg.get("crop_size")
    if cfg.get("do_center_crop", t.crop > 0) is False:
        t = replace(t, crop=0)
    elif crop is not None:
        side = crop if isinstance(crop, int) else crop.get("height")
        if isinstance(crop, dict) and crop.get("height") != crop.get("width"):
            raise CheckpointError(f"non-square crop {crop} is not supported", path)
        t = replace(t, crop=int(side))
    if "resample" in cfg:
        name = _PIL_RESAMPLE.get(cfg["resample"], None)
        if name not in ("bicubic", "bilinear", "nearest"):
            raise CheckpointError(f"resample {cfg['resample']!r} is not supported (bicubic/bilinear/nearest)", path)
        t = replace(t, interpolation=name)
    if cfg.get("do_normalize", True) is False:
        t = replace(t, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    else:
        if "image_mean" in cfg:
            t = replace(t, mean=tuple(float(v) for v in _three(cfg["image_mean"])))
        if "image_std" in cfg:
            t = replace(t, std=tuple(float(v) for v in _three(cfg["image_std"])))
    if cfg.get("do_rescale", True) is False:
        t = replace(t, rescale_factor=1.0)
    elif "rescale_factor" in cfg:
        t = replace(t, rescale_factor=float(cfg["rescale_factor"]))
    if t.crop == 0 and t.resize_mode != "square":
        raise CheckpointError("shortest-edge resize without a center crop gives non-square frames", path)
    return t


def _three(value: float | list[float]) -> list[float]:
    return [value] * 3 if isinstance(value, int | float) else list(value)
