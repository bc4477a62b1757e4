"""``vit``: a Hugging Face ViT (``ViTModel``, e.g. ViT-B/16), one feature per frame.

Loads a ``save_pretrained`` directory of ``ViTModel`` or ``ViTForImageClassification`` (the
``vit.`` prefix is handled by transformers). Option ``feature``:

* ``"cls"`` (default): the final CLS token after the last LayerNorm, ``[B, F, hidden_size]``;
* ``"pooled"``: ``ViTModel``'s pooler (dense + tanh on CLS). Classification checkpoints have no pooler
  weights; loading them with ``feature="pooled"`` is refused instead of silently using random weights;
* ``"mean"``: the mean of the final patch tokens (after the LayerNorm).

Preprocessing (``ViTImageProcessor``): *direct* resize to 224x224 (aspect not kept, no crop),
bilinear, x/255, mean = std = 0.5 — or the directory's ``preprocessor_config.json``.
"""

from __future__ import annotations

import os
from typing import Literal

import torch

from foleygen.errors import CheckpointError, ConfigError
from foleygen.vision._hf import load_hf_model, read_hf_config, require_transformers
from foleygen.vision.base import FrozenVisualEncoder
from foleygen.vision.preprocessing import (
    IMAGENET_STANDARD_MEAN,
    IMAGENET_STANDARD_STD,
    ImageTransform,
    transform_from_preprocessor_config,
)

DEFAULT_FPS = 25.0
Feature = Literal["cls", "pooled", "mean"]


def vit_default_transform(image_size: int = 224) -> ImageTransform:
    """ViTImageProcessor's defaults for a model taking ``image_size`` pixels."""
    return ImageTransform(
        resize=image_size,
        crop=0,
        resize_mode="square",
        interpolation="bilinear",
        mean=IMAGENET_STANDARD_MEAN,
        std=IMAGENET_STANDARD_STD,
    )


class ViTVisualEncoder(FrozenVisualEncoder):
    """Frozen ViT: ``[B, F, 3, S, S]`` -> ``[B, F, hidden_size]``."""

    def __init__(
        self,
        model: torch.nn.Module,
        transform: ImageTransform,
        *,
        fps: float = DEFAULT_FPS,
        feature: Feature = "cls",
        chunk_size: int = 64,
        bf16: bool = False,
    ) -> None:
        super().__init__(chunk_size=chunk_size, bf16=bf16)
        if feature not in ("cls", "pooled", "mean"):
            raise ConfigError(f"vit: feature must be 'cls', 'pooled' or 'mean', got {feature!r}")
        if feature == "pooled" and getattr(model, "pooler", None) is None:
            raise ConfigError("vit: feature='pooled' needs a ViTModel with a pooling layer")
        self.model = model
        self.transform = transform
        self.feature = feature
        self.fps = float(fps)
        self.image_size = int(model.config.image_size)
        self.dim = int(model.config.hidden_size)
        if transform.output_size != self.image_size:
            raise ConfigError(f"vit: preprocessing gives {transform.output_size}px, model takes {self.image_size}px")
        self.freeze()

    @classmethod
    def from_pretrained(
        cls,
        path_or_dir: str | os.PathLike[str] | None,
        *,
        fps: float | None = None,
        feature: Feature = "cls",
        chunk_size: int = 64,
        bf16: bool = False,
    ) -> ViTVisualEncoder:
        """Load a ViTModel / ViTForImageClassification directory."""
        transformers = require_transformers()
        directory, cfg = read_hf_config(path_or_dir, "vit")
        if cfg.get("model_type") != "vit":
            raise CheckpointError(
                f"vit: config.json model_type is {cfg.get('model_type')!r}, expected 'vit'", directory
            )
        model, info = load_hf_model(transformers.ViTModel, directory, "vit", add_pooling_layer=feature == "pooled")
        missing = list(info.get("missing_keys", []))
        if missing:
            what = "pooler weights (use feature='cls')" if all("pooler" in k for k in missing) else sorted(missing)[:3]
            raise CheckpointError(f"vit: checkpoint lacks {what}", directory)
        transform = transform_from_preprocessor_config(directory, vit_default_transform(model.config.image_size))
        return cls(
            model, transform, fps=DEFAULT_FPS if fps is None else fps, feature=feature, chunk_size=chunk_size, bf16=bf16
        )

    def _encode_chunk(self, images: torch.Tensor) -> torch.Tensor:
        """``[N, 3, S, S]`` -> ``[N, D]``."""
        out = self.model(pixel_values=images)
        if self.feature == "pooled":
            return out.pooler_output
        if self.feature == "mean":
            return out.last_hidden_state[:, 1:].mean(dim=1)
        return out.last_hidden_state[:, 0]
