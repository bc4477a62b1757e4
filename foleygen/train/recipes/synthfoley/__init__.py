"""The SynthFoley recipe: what trains the demo model's jointly trained (``compact``) encoder in CPU hours.

Its terms, each off unless its weight is > 0 (docs/training.md has the measurements behind each):

==================  ==========================  ===========================================================
section             term (``name``)             what it adds
==================  ==========================  ===========================================================
``labels:``         ``labels``                  clip-label BCE on ``label_head``'s best-frame scores
``onsets:``         ``onset_weights``           frames near the true audio's onsets weigh more in the codes' CE
``onsets:``         ``visual_onsets``           per-frame onset BCE on ``onset_head``
``onsets:``         ``onset_classes``           per-frame impact-class BCE on ``onset_class_head`` (event files)
==================  ==========================  ===========================================================

:mod:`.labels` and :mod:`.onsets` hold the terms and their config sections, :mod:`.heads` the heads and
:mod:`.onset_data` where the onsets and impacts come from.
"""

from __future__ import annotations

from foleygen.train.recipes.synthfoley.labels import ClipLabelTerm, LabelLossConfig
from foleygen.train.recipes.synthfoley.onsets import (
    OnsetClassTerm,
    OnsetLossConfig,
    OnsetWeightedCodes,
    VisualOnsetTerm,
)

__all__ = [
    "ClipLabelTerm",
    "LabelLossConfig",
    "OnsetClassTerm",
    "OnsetLossConfig",
    "OnsetWeightedCodes",
    "VisualOnsetTerm",
]
