"""``foleygen rate``: listening tests (MOS and A/B) for video-to-audio systems, with a real database.

* :mod:`foleygen.rate.store`: the SQLite study database (WAL, one writer path, versioned schema).
* :mod:`foleygen.rate.study`: set-up (pairing videos with each system's audio, hidden references,
  known-bad anchors) and the balanced, randomised order of trials for each rater.
* :mod:`foleygen.rate.server`: the rating web page and the admin page (stdlib ``http.server``).
* :mod:`foleygen.rate.stats`: means with confidence intervals, Wilcoxon and binomial tests, Holm.
* :mod:`foleygen.rate.report`: attention-check filtering, tables (markdown, LaTeX, JSON) and a plot.

See docs/rate.md for running a study end to end.
"""

from foleygen.rate.store import SCHEMA_VERSION, Store

__all__ = ["SCHEMA_VERSION", "Store"]
