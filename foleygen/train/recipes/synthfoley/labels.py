"""Clip labels as a second signal for a jointly trained encoder: the ``labels:`` section's term.

The paper's frozen encoders (CLIP, ImageBind) arrive knowing what objects look like; the compact encoder
learns only from the audio loss, which says little about *which* object is hitting until the LM already
knows. With clip labels in the cache (SynthFoley: the classes of its on-screen events, ``a+b``), a linear
head scores every frame's features for every class, a clip's score for a class is its best frame's
(:class:`~foleygen.train.recipes.synthfoley.heads.ClipScoreHead`), and a binary cross-entropy against the
clip's classes is added to the loss with ``labels.weight``. The head exists only in training; the saved
FoleyGen checkpoint holds the encoder it shaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from foleygen.errors import ConfigError
from foleygen.train.loss_terms import LMOutputs, LossTerm, LossTermContext, register_loss_terms
from foleygen.train.recipes.synthfoley.heads import ClipScoreHead


@dataclass
class LabelLossConfig:
    """``labels:`` of an LM training config.

    Attributes:
        weight: weight of the clip-label loss next to the codes' cross-entropy (0 = off). Needs a
            jointly trained (``compact``) encoder and labels in the cache.
        separator: splits a clip's label into its classes (SynthFoley writes ``drum+glass``).
    """

    weight: float = 0.0
    separator: str = "+"


class ClipLabelTerm(LossTerm):
    """The clip-label loss (see the module docstring); its head is ``label_head``.

    Attributes:
        classes: the sorted classes of the training clips' labels (the head's outputs).
    """

    name = "labels"
    head = "label_head"

    def __init__(self, config: LabelLossConfig, classes: list[str]) -> None:
        self.config, self.weight, self.classes = config, config.weight, classes
        self._index = {c: i for i, c in enumerate(classes)}

    def heads(self, visual_dim: int) -> dict[str, nn.Module]:
        return {self.head: ClipScoreHead(visual_dim, len(self.classes))}

    def targets(self, labels: list[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(targets float [B, C], known bool [B])``: multi-hot classes of each clip's label.

        A clip without a label is ``known = False`` (it adds nothing to the label loss); classes outside
        the training vocabulary (a validation-only class) are ignored.
        """
        sep = self.config.separator
        targets = torch.zeros(len(labels), len(self._index))
        for b, label in enumerate(labels):
            for name in (label or "").split(sep):
                if name.strip() in self._index:
                    targets[b, self._index[name.strip()]] = 1.0
        known = torch.tensor([bool(label) for label in labels], dtype=torch.bool)
        return targets, known

    def score_loss(self, scores: torch.Tensor, labels: list[str | None]) -> tuple[torch.Tensor, dict[str, float]]:
        """Binary cross-entropy of the clip scores ``[B, C]`` over the labelled clips, and its accuracy."""
        targets, known = self.targets(labels)
        targets, known = targets.to(scores.device), known.to(scores.device)
        bce = F.binary_cross_entropy_with_logits(scores.float(), targets, reduction="none").mean(dim=1)  # [B]
        n = known.sum().clamp_min(1)
        loss = (bce * known).sum() / n
        with torch.no_grad():
            hit = ((scores > 0).float() == targets).float().mean(dim=1)  # [B]
            acc = float((hit * known).sum() / n)
        return loss, {"label_loss": float(loss.detach()), "label_acc": acc}

    def loss(self, batch: dict[str, Any], outputs: LMOutputs) -> tuple[torch.Tensor | None, dict[str, float]]:
        return self.score_loss(outputs.heads[self.head], batch["labels"])


def label_classes(config: LabelLossConfig, context: LossTermContext) -> list[str]:
    """Sorted classes of the training clips' labels; :class:`ConfigError` when the run cannot use them."""
    if not context.trainable_visual:
        raise ConfigError("labels.weight > 0 trains the visual encoder on clip labels; set visual.kind: compact")
    if not config.separator:
        raise ConfigError("labels.separator must not be empty")
    train = set(context.train_splits)
    classes = {
        name.strip()
        for clip in context.reader.clips
        if clip.split in train and clip.label
        for name in clip.label.split(config.separator)
        if name.strip()
    }
    if not classes:
        raise ConfigError("labels.weight > 0 but no training clip has a label", context.reader.cache_dir)
    return sorted(classes)


@register_loss_terms("labels")
def label_terms(config: LabelLossConfig, context: LossTermContext) -> list[LossTerm]:
    """The ``labels:`` section's term: the clip-label loss when ``weight > 0``."""
    if config.weight <= 0:
        return []
    return [ClipLabelTerm(config, label_classes(config, context))]
