"""``clip``: the CLIP image tower (Hugging Face transformers), one feature per frame.

Loads a ``save_pretrained`` directory of either ``CLIPVisionModelWithProjection`` or a full
``CLIPModel`` (then only the vision tower and ``visual_projection`` are built: the text tower's
weights are never materialised). Any size works (ViT-B/32 is the usual V2A choice: 512-d embeddings).

Features (option ``tokens``):

* ``"embed"`` (default): the projected image embedding (``visual_projection(post_layernorm(CLS))``),
  ``[B, F, projection_dim]`` — what CLIP-conditioned V2A models use;
* ``"patch"``: the final patch tokens (CLS dropped, before ``post_layernorm``),
  ``[B, F, N, hidden_size]`` with ``N = (image_size / patch_size)**2``. This is the one output with an
  extra token axis; it is for feature extraction, the LM consumes ``[B, F, D]``.

Preprocessing (``CLIPImageProcessor``): shortest edge -> 224 bicubic, center crop 224, x/255,
OpenAI CLIP mean/std — or whatever the directory's ``preprocessor_config.json`` says.
"""

from __future__ import annotations

import os
from typing import Literal

import torch

from foleygen.errors import CheckpointError, ConfigError
from foleygen.vision._hf import load_hf_model, read_hf_config, require_transformers
from foleygen.vision.base import FrozenVisualEncoder
from foleygen.vision.preprocessing import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    ImageTransform,
    transform_from_preprocessor_config,
)

DEFAULT_FPS = 25.0


def clip_default_transform(image_size: int = 224) -> ImageTransform:
    """CLIPImageProcessor's defaults for a model taking ``image_size`` pixels."""
    return ImageTransform(
        resize=image_size,
        crop=image_size,
        resize_mode="shortest_edge",
        interpolation="bicubic",
        mean=OPENAI_CLIP_MEAN,
        std=OPENAI_CLIP_STD,
    )


class CLIPVisualEncoder(FrozenVisualEncoder):
    """Frozen CLIP vision tower: ``[B, F, 3, S, S]`` -> ``[B, F, D]`` (``tokens="patch"``: ``[B, F, N, D]``)."""

    def __init__(
        self,
        model: torch.nn.Module,
        transform: ImageTransform,
        *,
        fps: float = DEFAULT_FPS,
        tokens: Literal["embed", "patch"] = "embed",
        chunk_size: int = 64,
        bf16: bool = False,
    ) -> None:
        super().__init__(chunk_size=chunk_size, bf16=bf16)
        if tokens not in ("embed", "patch"):
            raise ConfigError(f"clip: tokens must be 'embed' or 'patch', got {tokens!r}")
        self.model = model
        self.transform = transform
        self.tokens = tokens
        cfg = model.config
        self.fps = float(fps)
        self.image_size = int(cfg.image_size)
        self.dim = int(cfg.projection_dim if tokens == "embed" else cfg.hidden_size)
        self.tokens_per_frame = (cfg.image_size // cfg.patch_size) ** 2 if tokens == "patch" else 1
        if transform.output_size != self.image_size:
            raise ConfigError(f"clip: preprocessing gives {transform.output_size}px, model takes {self.image_size}px")
        self.freeze()

    @classmethod
    def from_pretrained(
        cls,
        path_or_dir: str | os.PathLike[str] | None,
        *,
        fps: float | None = None,
        tokens: Literal["embed", "patch"] = "embed",
        chunk_size: int = 64,
        bf16: bool = False,
    ) -> CLIPVisualEncoder:
        """Load a CLIPVisionModelWithProjection or CLIPModel directory (see the module docstring)."""
        transformers = require_transformers()
        directory, cfg = read_hf_config(path_or_dir, "clip")
        model_type = cfg.get("model_type")
        if model_type == "clip":  # a full CLIPModel: keep the vision tower + projection only
            if "vision_config" not in cfg:
                raise CheckpointError("clip: CLIPModel config.json has no vision_config", directory)
            vcfg = transformers.CLIPVisionConfig(
                **{k: v for k, v in cfg["vision_config"].items() if k not in ("model_type", "transformers_version")}
            )
            vcfg.projection_dim = int(cfg.get("projection_dim", vcfg.projection_dim))
            model, info = load_hf_model(transformers.CLIPVisionModelWithProjection, directory, "clip", config=vcfg)
        elif model_type == "clip_vision_model":
            model, info = load_hf_model(transformers.CLIPVisionModelWithProjection, directory, "clip")
        else:
            raise CheckpointError(
                f"clip: config.json model_type is {model_type!r}, expected 'clip' or 'clip_vision_model'", directory
            )
        needed = [k for k in info.get("missing_keys", []) if tokens == "embed" or "visual_projection" not in k]
        if needed:
            raise CheckpointError(f"clip: checkpoint lacks weights {sorted(needed)[:3]}", directory)
        transform = transform_from_preprocessor_config(directory, clip_default_transform(model.config.image_size))
        return cls(
            model, transform, fps=DEFAULT_FPS if fps is None else fps, tokens=tokens, chunk_size=chunk_size, bf16=bf16
        )

    def _encode_chunk(self, images: torch.Tensor) -> torch.Tensor:
        """``[N, 3, S, S]`` -> ``[N, D]`` (or ``[N, tokens, D]``)."""
        out = self.model(pixel_values=images)
        if self.tokens == "embed":
            return out.image_embeds
        return out.last_hidden_state[:, 1:]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Preprocessed ``[B, F, 3, S, S]`` -> ``[B, F, D]`` (``tokens="patch"``: ``[B, F, N, D]``)."""
        out = super().forward(frames)
        if self.tokens == "patch":
            b, f = frames.shape[:2]
            return out.reshape(b, f, self.tokens_per_frame, self.dim)
        return out
