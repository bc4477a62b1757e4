"""Evaluation: the metrics of the video-to-audio literature, and SynthFoley's ground-truth metrics.

* :func:`frechet_distance` (FAD with any embedder of :mod:`foleygen.eval.embedders`: VGGish, PANNs, PaSST,
  the SynthFoley event classifier), :func:`paired_kl`, :func:`inception_score`, :func:`imagebind_score`,
  :func:`av_align_score`;
* :func:`evaluate` scores a folder of generated audio against references (what ``foleygen eval`` runs);
* ``onsets`` and ``event_classifier``: SynthFoley onset precision/recall/F1 and class accuracy.

Conventions are documented in docs/evaluation.md.
"""

from foleygen.eval.av_align import av_align_score
from foleygen.eval.frechet import frechet_distance
from foleygen.eval.ib_score import imagebind_score
from foleygen.eval.inception import inception_score
from foleygen.eval.kl import paired_kl
from foleygen.eval.report import METRICS, EvalConfig, evaluate, render_markdown, write_report

__all__ = [
    "frechet_distance",
    "paired_kl",
    "inception_score",
    "imagebind_score",
    "av_align_score",
    "evaluate",
    "EvalConfig",
    "METRICS",
    "render_markdown",
    "write_report",
]
