"""Visual encoders: video frames -> features ``[B, F', D]`` at a declared rate.

``load_visual_encoder(kind, path_or_dir, fps=..., **options)`` is the one entry point. Kinds:

* ``clip`` — Hugging Face CLIP vision tower (+ projection), per frame (:mod:`foleygen.vision.clip`);
* ``vit`` — Hugging Face ViT, pooled or CLS feature per frame (:mod:`foleygen.vision.vit`);
* ``videomae`` — Hugging Face VideoMAE slid over the video, one feature per tubelet
  (:mod:`foleygen.vision.videomae`);
* ``imagebind`` — ImageBind-Huge vision branch from the official ``imagebind_huge.pth``
  (:mod:`foleygen.vision.imagebind`);
* ``mobilenet_v2`` — torchvision's ImageNet MobileNetV2, pooled 1280-d per frame
  (:mod:`foleygen.vision.mobilenet`);
* ``efficientnet_lite0`` — EfficientNet-Lite0 (ImageNet, converted from TF), pooled 1280-d per frame
  (:mod:`foleygen.vision.efficientnet`);
* ``compact`` — small trainable CNN (:mod:`foleygen.vision.compact`).

Backends are imported lazily so that ``compact`` never imports transformers.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

from foleygen.errors import ConfigError
from foleygen.vision.base import FrozenVisualEncoder, VisualEncoder

PathLike = str | os.PathLike[str] | None
Loader = Callable[..., VisualEncoder]

#: kind -> loader(path_or_dir, fps=..., **options); extend with :func:`register_visual_encoder`.
VISUAL_ENCODERS: dict[str, Loader] = {}


def register_visual_encoder(kind: str) -> Callable[[Loader], Loader]:
    """Decorator adding ``loader(path_or_dir, *, fps, **options) -> VisualEncoder`` under ``kind``."""

    def deco(fn: Loader) -> Loader:
        VISUAL_ENCODERS[kind] = fn
        return fn

    return deco


def _check_options(kind: str, fn: Callable[..., Any], options: dict[str, Any]) -> None:
    """Unknown options are a ConfigError naming the valid ones (not a TypeError from deep inside)."""
    valid = [
        n
        for n, p in inspect.signature(fn).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and n != "fps"
    ]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"{kind}: unknown option(s) {unknown}; valid: {sorted(valid)}")


@register_visual_encoder("compact")
def _load_compact(path_or_dir: PathLike, *, fps: float | None = None, **options: Any) -> VisualEncoder:
    from dataclasses import replace

    from foleygen.config import from_dict
    from foleygen.vision.compact import CompactVisualConfig, CompactVisualEncoder

    if path_or_dir is not None:
        if options:
            raise ConfigError(f"compact: options {sorted(options)} cannot change a saved encoder", path_or_dir)
        model = CompactVisualEncoder.from_pretrained(path_or_dir)
        if fps is not None and float(fps) != model.fps:
            raise ConfigError(f"compact: saved encoder runs at {model.fps} fps, asked for {fps}", path_or_dir)
        return model
    config = from_dict(CompactVisualConfig, options, "compact")
    if fps is not None:
        config = replace(config, fps=float(fps))
    return CompactVisualEncoder(config)


@register_visual_encoder("clip")
def _load_clip(path_or_dir: PathLike, *, fps: float | None = None, **options: Any) -> VisualEncoder:
    from foleygen.vision.clip import CLIPVisualEncoder

    _check_options("clip", CLIPVisualEncoder.from_pretrained, options)
    return CLIPVisualEncoder.from_pretrained(path_or_dir, fps=fps, **options)


@register_visual_encoder("vit")
def _load_vit(path_or_dir: PathLike, *, fps: float | None = None, **options: Any) -> VisualEncoder:
    from foleygen.vision.vit import ViTVisualEncoder

    _check_options("vit", ViTVisualEncoder.from_pretrained, options)
    return ViTVisualEncoder.from_pretrained(path_or_dir, fps=fps, **options)


@register_visual_encoder("videomae")
def _load_videomae(path_or_dir: PathLike, *, fps: float | None = None, **options: Any) -> VisualEncoder:
    from foleygen.vision.videomae import VideoMAEVisualEncoder

    _check_options("videomae", VideoMAEVisualEncoder.from_pretrained, options)
    return VideoMAEVisualEncoder.from_pretrained(path_or_dir, fps=fps, **options)


@register_visual_encoder("imagebind")
def _load_imagebind(path_or_dir: PathLike, *, fps: float | None = None, **options: Any) -> VisualEncoder:
    from foleygen.vision.imagebind import ImageBindVisualEncoder

    _check_options("imagebind", ImageBindVisualEncoder.from_pretrained, options)
    return ImageBindVisualEncoder.from_pretrained(path_or_dir, fps=fps, **options)


@register_visual_encoder("mobilenet_v2")
def _load_mobilenet_v2(path_or_dir: PathLike, *, fps: float | None = None, **options: Any) -> VisualEncoder:
    from foleygen.vision.mobilenet import MobileNetV2VisualEncoder

    _check_options("mobilenet_v2", MobileNetV2VisualEncoder.from_pretrained, options)
    return MobileNetV2VisualEncoder.from_pretrained(path_or_dir, fps=fps, **options)


@register_visual_encoder("efficientnet_lite0")
def _load_efficientnet_lite0(path_or_dir: PathLike, *, fps: float | None = None, **options: Any) -> VisualEncoder:
    from foleygen.vision.efficientnet import EfficientNetLite0VisualEncoder

    _check_options("efficientnet_lite0", EfficientNetLite0VisualEncoder.from_pretrained, options)
    return EfficientNetLite0VisualEncoder.from_pretrained(path_or_dir, fps=fps, **options)


def load_visual_encoder(
    kind: str, path_or_dir: PathLike = None, *, fps: float | None = None, **options: Any
) -> VisualEncoder:
    """Build the visual encoder ``kind`` (see the module docstring).

    Args:
        kind: one of :data:`VISUAL_ENCODERS` (``clip, vit, videomae, imagebind, mobilenet_v2,
            efficientnet_lite0, compact``).
        path_or_dir: checkpoint directory (``save_pretrained`` output, or for ``imagebind`` the
            ``imagebind_huge.pth`` file, for ``mobilenet_v2`` / ``efficientnet_lite0`` the ``.pth`` or
            its directory); ``None`` for ``compact`` builds a fresh random encoder, for
            ``mobilenet_v2`` / ``efficientnet_lite0`` loads the installed weight package's file
            (sha256-checked).
        fps: the *feature* rate wanted (``encoder.fps``); per-frame encoders read frames at this rate,
            ``videomae`` at ``fps * tubelet_size``. ``None`` keeps the backend's default.
        options: backend options, e.g. ``chunk_size``, ``bf16``, ``tokens`` (see each backend).

    Returns:
        a :class:`VisualEncoder`; pretrained ones are frozen and in eval mode.
    """
    try:
        loader = VISUAL_ENCODERS[kind]
    except (KeyError, TypeError):  # TypeError: a kind that is not even a name (a list, from a damaged config)
        raise ConfigError(f"unknown visual encoder kind {kind!r}; known: {sorted(VISUAL_ENCODERS)}") from None
    return loader(path_or_dir, fps=fps, **options)


__all__ = ["VISUAL_ENCODERS", "FrozenVisualEncoder", "VisualEncoder", "load_visual_encoder", "register_visual_encoder"]
