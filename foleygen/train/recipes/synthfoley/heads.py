"""The SynthFoley recipe's training-only heads on the visual features (see :mod:`foleygen.train.loss_terms`).

Each is the plain layer it always was (a ``Linear``, a ``Conv1d``) with a forward pass that takes the
features ``[B, F, D]`` and the real-frame mask the model hands every head: subclassing, rather than
wrapping, keeps their weights named ``label_head.weight`` etc. in the trainer's checkpoints, as before the
heads moved out of the LM task, so that those runs resume.
"""

from __future__ import annotations

import torch
from torch import nn


class ClipScoreHead(nn.Linear):
    """Clip scores ``[B, C]``: per class, the best score of a real frame (multiple-instance learning: a
    class is in the clip if some frame shows it), from a linear score of every frame's features."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__(dim, num_classes)

    def forward(self, features: torch.Tensor, visual_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``features [B, F, D]``, ``visual_mask [B, F]`` (True = a real frame; padding stays out of the
        max) -> ``[B, C]``."""
        per_frame = super().forward(features.float())  # [B, F, C]
        if visual_mask is not None:
            per_frame = per_frame.masked_fill(~visual_mask[:, :, None], float("-inf"))
        return per_frame.amax(dim=1)


class FrameScoreHead(nn.Conv1d):
    """Per-frame scores ``[B, F, C]`` from one 1-D convolution over five neighbouring frames' features
    (the contact shows in the frame after an impact as often as in its own)."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__(dim, num_classes, kernel_size=5, padding=2)

    def forward(self, features: torch.Tensor, visual_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``features [B, F, D]`` -> ``[B, F, C]`` (every frame is scored; the losses mask padding)."""
        return super().forward(features.float().transpose(1, 2)).transpose(1, 2)
