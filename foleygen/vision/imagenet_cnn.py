"""What the frozen ImageNet CNN encoders (``mobilenet_v2``, ``efficientnet_lite0``) share.

Each backbone module holds only its network (an :class:`ImageNetCNN`: ``pooled`` features and a
classifier ``head``), its checkpoint's description and its transform; this module turns one into a
frozen per-frame :class:`~foleygen.vision.base.FrozenVisualEncoder` and loads its published file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, TypeVar

import torch
from torch import nn

from foleygen.errors import CheckpointError, ConfigError
from foleygen.packaged import PackagedFile, find_weight_file, load_exact, read_state_dict
from foleygen.vision.base import FrozenVisualEncoder
from foleygen.vision.preprocessing import ImageTransform

DEFAULT_FPS = 25.0


class ImageNetCNN(nn.Module):
    """An ImageNet classifier split where the encoders read it: ``pooled`` features, then ``head``.

    Subclasses set ``dim`` and implement :meth:`pooled` and :meth:`head`.
    """

    dim: int

    def pooled(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised ``[N, 3, H, W]`` -> pooled features ``[N, dim]``."""
        raise NotImplementedError

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Pooled features ``[N, dim]`` -> ImageNet logits ``[N, num_classes]``."""
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised ``[N, 3, H, W]`` -> ImageNet logits ``[N, num_classes]`` (dropout is inactive in eval)."""
        return self.head(self.pooled(images))


Net = TypeVar("Net", bound=ImageNetCNN)


def checkpoint_file(
    path_or_dir: str | os.PathLike[str] | None, packaged: PackagedFile, checkpoint_name: str, name: str
) -> Path:
    """The ``.pth`` to load: ``path_or_dir`` itself, the one ``.pth`` in it (``checkpoint_name``
    preferred), or — for ``None`` — the installed package's hash-checked file."""
    if path_or_dir is None:
        return packaged.path()
    return find_weight_file(path_or_dir, checkpoint_name, name)


def load_frozen(file: Path, build: Callable[..., Net], head_key: str, name: str, layout: str) -> Net:
    """``build(num_classes=...)`` (the network class) with the weights of ``file``, frozen and in eval
    mode; the classifier's size is read from ``head_key`` (``[classes, dim]``).

    Raises:
        CheckpointError: unsafe pickle, no ``head_key``, or keys/shapes that are not ``layout``'s.
    """
    state = read_state_dict(file)
    head = state.get(head_key)
    if head is None or head.dim() != 2:
        raise CheckpointError(f"not a {name} checkpoint: no {head_key} [classes, 1280]", file)
    model = build(num_classes=int(head.shape[0]))
    load_exact(model, state, file, layout)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class ImageNetCNNVisualEncoder(FrozenVisualEncoder):
    """A frozen ImageNet CNN: preprocessed ``[B, F, 3, 224, 224]`` -> pooled features ``[B, F, dim]``.

    Subclasses set ``name``, ``TRANSFORM`` and :meth:`load_model`.

    Args:
        model: the backbone (usually from the subclass's :meth:`load_model`).
        fps: feature (= frame) rate.
        chunk_size: frames per backbone call.
        bf16: run under bf16 autocast (outputs float32).
    """

    name: ClassVar[str]
    TRANSFORM: ClassVar[ImageTransform]

    def __init__(
        self, model: ImageNetCNN, *, fps: float = DEFAULT_FPS, chunk_size: int = 64, bf16: bool = False
    ) -> None:
        super().__init__(chunk_size=chunk_size, bf16=bf16)
        if float(fps) <= 0:
            raise ConfigError(f"{self.name}: fps must be > 0, got {fps}")
        self.model = model
        self.transform = self.TRANSFORM
        self.fps = float(fps)
        self.image_size = self.TRANSFORM.output_size
        self.dim = model.dim
        self.freeze()

    @classmethod
    def load_model(cls, path_or_dir: str | os.PathLike[str] | None) -> ImageNetCNN:
        """The frozen backbone from a ``.pth`` (file or directory; ``None``: the installed package's file)."""
        raise NotImplementedError

    @classmethod
    def from_pretrained(
        cls,
        path_or_dir: str | os.PathLike[str] | None = None,
        *,
        fps: float | None = None,
        chunk_size: int = 64,
        bf16: bool = False,
    ) -> ImageNetCNNVisualEncoder:
        """Load the backbone's ``.pth`` (file or directory; ``None``: the installed package's file,
        sha256-checked) and wrap it."""
        model = cls.load_model(path_or_dir)
        return cls(model, fps=DEFAULT_FPS if fps is None else fps, chunk_size=chunk_size, bf16=bf16)

    def _encode_chunk(self, images: torch.Tensor) -> torch.Tensor:
        """``[N, 3, 224, 224]`` -> ``[N, dim]``."""
        return self.model.pooled(images)

    @torch.inference_mode()
    def classify(self, frames_uint8: torch.Tensor) -> torch.Tensor:
        """ImageNet logits of ``uint8 [N, H, W, 3]`` images -> ``float32 [N, num_classes]``."""
        pixels = self.preprocess(frames_uint8[None])[0]
        feats = self.forward(pixels[None])[0]
        return self.model.head(feats.to(next(self.model.parameters()).dtype)).float()
