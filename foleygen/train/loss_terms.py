"""The LM task's seam for extra losses: :class:`LossTerm`, and the registry of their config sections.

The ``lm`` task (:mod:`foleygen.train.lm_task`) trains the paper's objective: cross-entropy over the K
code streams. Anything a training recipe adds to it (SynthFoley's clip-label, onset and onset-class
losses: :mod:`foleygen.train.recipes.synthfoley`) is a :class:`LossTerm`, configured by a section of the
run config and built by the factory registered for that section. A term may

* own training-only modules (``heads``): the model registers them under their names, beside ``lm`` and
  ``visual``, runs them on the visual features in its forward pass (``head(features [B, F, D],
  visual_mask [B, F] | None) -> scores``), and so the trainer optimises them and saves them in its
  checkpoints (``<name>.*`` weights) like the rest of the model. They are not part of the exported
  FoleyGen checkpoint, and a fine-tuning run starts them afresh;
* weight the audio frames of the codes' cross-entropy (:meth:`LossTerm.frame_weights`);
* add a loss of its own, times its ``weight`` (:meth:`LossTerm.loss`), and log metrics.

Adding a term: write the term and its config dataclass, register a factory for the section, and give a run
config that has the section (a subclass of :class:`~foleygen.train.lm_config.LMRunConfig` with a
:func:`loss_term_section` field, registered as a task of its own name; ``task_module`` imports it). The
section then parses strictly like every other (unknown keys name the nearest valid one), and the task
builds its terms in the order of the run config's sections. docs/training.md walks through an example.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from foleygen.data.cache import CacheReader
from foleygen.errors import ConfigError

#: metadata key of a run-config field that configures loss terms (see :func:`loss_term_section`)
LOSS_TERM_SECTION = "foleygen_loss_term_section"


@dataclass
class LMOutputs:
    """What the LM task's model computed for a batch.

    Attributes:
        logits: the LM's code logits ``[B, K, T, card]``.
        heads: each term head's scores, by the head's name (shapes are the head's own, e.g. ``[B, C]``).
    """

    logits: torch.Tensor
    heads: dict[str, torch.Tensor]


@dataclass
class LossTermContext:
    """What a term's factory may need of the run, given by the LM task once its cache is open.

    Attributes:
        reader: the cache (its clips' ids, splits and labels).
        train_splits: the splits trained on (a term's vocabulary comes from these clips only).
        trainable_visual: whether the visual encoder trains jointly (a term training it needs this).
        frame_rate: audio frames per second (of the codes).
        fps: video frames per second (of the features).
        codec: the run's codec, loaded on the first call (to decode the cached codes).
        codec_name: the codec's path or name as configured.
    """

    reader: CacheReader
    train_splits: Sequence[str]
    trainable_visual: bool
    frame_rate: float
    fps: float
    codec: Callable[[], Any]
    codec_name: str


class LossTerm:
    """One plug-in part of the LM task's loss (see the module docstring); override what the term does.

    Attributes:
        name: unique among a run's terms (:meth:`foleygen.train.lm_task.LMTask.term` finds it by name).
        weight: factor of :meth:`loss` in the total.
    """

    name: str = ""
    weight: float = 1.0

    def heads(self, visual_dim: int) -> dict[str, nn.Module]:
        """Fresh training-only modules, by their name in the model (the model calls each as
        ``head(features [B, F, visual_dim], visual_mask [B, F] | None)``). Called once per model built,
        so their random initialisation follows the model's; default: none."""
        return {}

    def frame_weights(self, batch: dict[str, Any]) -> torch.Tensor | None:
        """Weights ``float [B, T]`` of the batch's audio frames in the codes' cross-entropy (the task
        multiplies those of all terms); ``None``: no weighting (the default)."""
        return None

    def loss(self, batch: dict[str, Any], outputs: LMOutputs) -> tuple[torch.Tensor | None, dict[str, float]]:
        """``(loss, metrics)``: a scalar added to the total times :attr:`weight` (``None``: nothing
        added) and plain-float metrics to log. Default: neither."""
        return None, {}

    def validate(self, batch: dict[str, Any], outputs: LMOutputs) -> dict[str, float]:
        """Metrics on a validation batch (eval mode, no gradients); default: :meth:`loss`'s metrics."""
        return self.loss(batch, outputs)[1]


#: section name -> factory(section config, context) -> the terms it configures (none when it is off)
LossTermFactory = Callable[[Any, LossTermContext], list[LossTerm]]
LOSS_TERMS: dict[str, LossTermFactory] = {}


def register_loss_terms(section: str) -> Callable[[LossTermFactory], LossTermFactory]:
    """Decorator: ``@register_loss_terms("labels")`` on the factory of the terms that section configures."""

    def wrap(factory: LossTermFactory) -> LossTermFactory:
        if section in LOSS_TERMS and LOSS_TERMS[section] is not factory:
            raise ConfigError(f"two factories of loss terms for the config section {section!r}")
        LOSS_TERMS[section] = factory
        return factory

    return wrap


def loss_term_section(default_factory: Callable[[], Any]) -> Any:
    """A run-config field (``labels: LabelLossConfig = loss_term_section(LabelLossConfig)``) whose section
    configures loss terms: the task builds them with the factory registered under the field's name."""
    return field(default_factory=default_factory, metadata={LOSS_TERM_SECTION: True})


def build_loss_terms(run: Any, context: LossTermContext) -> list[LossTerm]:
    """The terms of every loss-term section of ``run`` (a run-config dataclass), in the sections' order.

    :class:`ConfigError` when a section has no registered factory (naming the nearest registered one: a
    term whose module was not imported), or when two terms share a name.
    """
    terms: list[LossTerm] = []
    for f in dataclasses.fields(run):
        if not f.metadata.get(LOSS_TERM_SECTION):
            continue
        factory = LOSS_TERMS.get(f.name)
        if factory is None:
            close = difflib.get_close_matches(f.name, sorted(LOSS_TERMS), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"registered: {', '.join(sorted(LOSS_TERMS)) or 'none'}"
            raise ConfigError(
                f"no loss terms are registered for the config section {f.name!r} ({hint}); the module that "
                "registers them must be imported (task_module)"
            )
        terms.extend(factory(getattr(run, f.name), context))
    names = [t.name for t in terms]
    if len(set(names)) != len(names):
        raise ConfigError(f"two loss terms of one run have the same name ({names})")
    return terms


def crop_starts(batch: dict[str, Any], frame_rate: float) -> list[float]:
    """Where each of the batch's crops starts in its clip, in seconds (``audio_starts`` are in frames)."""
    return [a / float(frame_rate) for a in batch.get("audio_starts") or [0] * len(batch["ids"])]


__all__ = [
    "LOSS_TERMS",
    "LMOutputs",
    "LossTerm",
    "LossTermContext",
    "build_loss_terms",
    "crop_starts",
    "loss_term_section",
    "register_loss_terms",
]
