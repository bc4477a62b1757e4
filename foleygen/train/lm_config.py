"""The whole config of a ``task: lm`` run, typed: :class:`LMRunConfig` and its sections.

The trainer parses a YAML once into it (unknown sections and keys fail, naming the nearest valid one).
Two sections are completed later, when the cache is open, and only their keys are checked here: ``lm``
(an :class:`~foleygen.lm.model.LMConfig` whose data-side numbers default to the cache's) and
``visual.config`` (a :class:`~foleygen.vision.compact.CompactVisualConfig`). The ``labels`` and ``onsets``
sections configure the SynthFoley recipe's loss terms (:mod:`foleygen.train.recipes.synthfoley`); a field
made with :func:`~foleygen.train.loss_terms.loss_term_section` is where a recipe's section goes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from foleygen.api import GenerationParams
from foleygen.config import KEYS_OF
from foleygen.lm.model import LMConfig
from foleygen.train.loss_terms import loss_term_section
from foleygen.train.recipes.synthfoley import LabelLossConfig, OnsetLossConfig
from foleygen.train.run_config import RunConfig
from foleygen.vision.compact import CompactVisualConfig


@dataclass
class LMDataConfig:
    """``data:`` of an LM training config.

    Attributes:
        cache: directory made by ``foleygen prepare``.
        duration: seconds per training clip (crops of longer clips, padding of shorter ones).
        train_splits / val_splits: manifest splits used for training / validation.
        allow_partial: also train on unfinished cache shards.
        hflip: probability of mirroring a training clip's frames left-right (caches of frames only;
            see :mod:`foleygen.data.datasets`).
    """

    cache: str
    duration: float = 10.0
    train_splits: list[str] = field(default_factory=lambda: ["train"])
    val_splits: list[str] = field(default_factory=lambda: ["val"])
    allow_partial: bool = False
    hflip: float = 0.0


@dataclass
class LMVisualSection:
    """``visual:`` of an LM training config; absent: the encoder the cache was made with (frozen).

    Attributes:
        kind: encoder kind (``clip``, ``imagebind``, ``videomae``, ``vit``...; ``compact`` trains jointly).
        path: where a frozen encoder's weights are (how the saved checkpoint reloads it).
        options: the frozen encoder's loading options, saved with the checkpoint.
        config: a ``compact`` encoder's :class:`~foleygen.vision.compact.CompactVisualConfig` fields.
    """

    kind: str | None = None
    path: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict, metadata={KEYS_OF: CompactVisualConfig})


@dataclass
class LMCodecSection:
    """``codec:`` of an LM training config.

    Attributes:
        path: the codec (directory or name; default: the one the cache was made with).
        num_codebooks: codebooks used of a residual codec that has more (default: the cache's).
    """

    path: str | None = None
    num_codebooks: int | None = None


@dataclass
class LMSamplesSection:
    """``samples:``: ``num`` validation clips generated for TensorBoard."""

    num: int = 1


@dataclass
class LMRunConfig(RunConfig):
    """A whole ``task: lm`` YAML: the common sections plus the LM task's (see :mod:`foleygen.train.lm_task`).

    Attributes:
        data: the cache and the clips' length (required).
        lm: :class:`~foleygen.lm.model.LMConfig` fields; num_codebooks, cardinality, frame_rate, fps and
            visual_dim default to the cache's.
        visual / codec / samples: the sections of the same names.
        labels / onsets: the SynthFoley recipe's loss terms (:mod:`foleygen.train.recipes.synthfoley`),
            off by default; the task builds the terms of its loss-term sections in this order.
        generation: :class:`~foleygen.api.GenerationParams` fields, for the samples and the checkpoint.
    """

    data: LMDataConfig | None = None
    lm: dict[str, Any] = field(default_factory=dict, metadata={KEYS_OF: LMConfig})
    visual: LMVisualSection | None = None
    codec: LMCodecSection = field(default_factory=LMCodecSection)
    generation: dict[str, Any] = field(default_factory=dict, metadata={KEYS_OF: GenerationParams})
    samples: LMSamplesSection = field(default_factory=LMSamplesSection)
    labels: LabelLossConfig = loss_term_section(LabelLossConfig)
    onsets: OnsetLossConfig = loss_term_section(OnsetLossConfig)


__all__ = [
    "LMCodecSection",
    "LMDataConfig",
    "LMRunConfig",
    "LMSamplesSection",
    "LMVisualSection",
]
