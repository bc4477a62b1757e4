"""Training recipes: sets of plug-in loss terms for the ``lm`` task (:mod:`foleygen.train.loss_terms`).

The paper's objective is the LM task's own (:mod:`foleygen.train.lm_task`); a recipe adds what a data set
or a budget calls for. Importing this package registers the built-in recipes' terms:

* :mod:`~foleygen.train.recipes.synthfoley`: clip labels, onset-weighted codes and the visual onset and
  onset-class losses that train the compact encoder of the SynthFoley demo model on a CPU budget.

They live under ``train/`` because nothing in them outlives training: their heads are not part of a
FoleyGen checkpoint, and they build on the training seam (which is in ``train/`` too).
"""

from __future__ import annotations

from foleygen.train.recipes import synthfoley

__all__ = ["synthfoley"]
