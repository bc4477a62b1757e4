"""The contract every frozen visual encoder fulfils."""

from __future__ import annotations

import abc

import torch
from torch import nn


class VisualEncoder(nn.Module, abc.ABC):
    """Video frames -> features at a declared rate.

    Attributes:
        fps: feature frames per second of the output (for per-frame encoders, the rate frames must be
            sampled at; VideoMAE documents its own).
        image_size: side of the square input the backbone sees.
        dim: D, the feature size.
    """

    fps: float
    image_size: int
    dim: int

    @abc.abstractmethod
    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """``uint8 [B, F, H, W, 3]`` -> normalised ``float [B, F, 3, image_size, image_size]``."""

    @abc.abstractmethod
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Preprocessed ``[B, F, 3, S, S]`` -> features ``[B, F', D]`` at ``self.fps``."""

    @torch.inference_mode()
    def encode(self, frames_uint8: torch.Tensor) -> torch.Tensor:
        """Convenience: ``preprocess`` then ``forward`` under inference mode -> ``[B, F', D]``."""
        return self.forward(self.preprocess(frames_uint8))
