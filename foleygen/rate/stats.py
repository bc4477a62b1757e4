"""The statistics of a listening test, written out so that their conventions are explicit.

* :func:`mean_ci`: mean with a Student-t confidence interval (ITU-T P.800's MOS interval).
* :func:`wilcoxon`: two-sided Wilcoxon signed-rank test for paired ratings. Zero differences are
  dropped (Wilcoxon's own convention); exact null distribution when at most 50 pairs remain and their
  absolute differences have no ties, else the normal approximation with the tie correction of the
  variance and no continuity correction. Matches ``scipy.stats.wilcoxon(x, y, zero_method="wilcox",
  correction=False)`` with ``method="exact"`` / ``"approx"`` respectively (tested).
* :func:`binomial`: exact two-sided binomial test (outcomes at most as likely as the observed one),
  as ``scipy.stats.binomtest``; for A/B preference against chance.
* :func:`holm`: Holm's step-down adjustment of a family of p-values (controls the family-wise error).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

EXACT_MAX_N = 50


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``; the interval is ``mean -/+ t_{(1+level)/2, n-1} * sd / sqrt(n)``.

    With fewer than two values the bounds are NaN (no spread to estimate); an empty input gives NaNs.
    """
    from scipy.stats import t

    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan
    half = float(t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, mean - half, mean + half


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``values``, ties sharing the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_values[j + 1] == sorted_values[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _signed_rank_counts(n: int) -> np.ndarray:
    """How many of the ``2**n`` sign patterns give each rank sum ``W+ = 0 .. n(n+1)/2`` (no ties)."""
    counts = np.zeros(n * (n + 1) // 2 + 1, dtype=np.float64)
    counts[0] = 1.0
    for r in range(1, n + 1):
        counts[r:] = counts[r:] + counts[:-r].copy()
    return counts


def wilcoxon(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, int]:
    """Two-sided Wilcoxon signed-rank test of ``x - y``; returns ``(statistic, p, n used)``.

    ``statistic`` is ``min(W+, W-)``. With no non-zero difference, ``p`` is 1.0 (nothing to test).
    """
    d = np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    if d.ndim != 1:
        raise ValueError("x and y must be 1-D sequences of equal length")
    d = d[d != 0]
    n = int(d.size)
    if n == 0:
        return 0.0, 1.0, 0
    ranks = average_ranks(np.abs(d))
    w_plus = float(ranks[d > 0].sum())
    w_minus = float(ranks[d < 0].sum())
    statistic = min(w_plus, w_minus)
    _, tie_sizes = np.unique(np.abs(d), return_counts=True)
    if n <= EXACT_MAX_N and np.all(tie_sizes == 1):
        counts = _signed_rank_counts(n)
        p = 2.0 * float(counts[: int(statistic) + 1].sum()) / 2.0**n
        return statistic, min(1.0, p), n
    mean = n * (n + 1) / 4
    var = n * (n + 1) * (2 * n + 1) / 24 - float(np.sum(tie_sizes**3 - tie_sizes)) / 48
    if var <= 0:
        return statistic, 1.0, n
    z = (statistic - mean) / math.sqrt(var)
    return statistic, min(1.0, math.erfc(abs(z) / math.sqrt(2))), n


def _log_pmf(k: int, n: int, p: float) -> float:
    if p in (0.0, 1.0):
        return 0.0 if k == n * p else -math.inf
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(p) + (n - k) * math.log1p(-p)


def binomial(k: int, n: int, p: float = 0.5) -> float:
    """Exact two-sided p-value of ``k`` successes in ``n`` trials under success probability ``p``.

    Sums the probabilities of every outcome no more likely than ``k`` (with a relative tolerance of
    1e-7, so that outcomes equally likely by symmetry are not lost to rounding). ``n == 0`` gives 1.0.
    """
    if not (0 <= k <= n) or not 0.0 <= p <= 1.0:
        raise ValueError(f"need 0 <= k <= n and 0 <= p <= 1, got k={k}, n={n}, p={p}")
    if n == 0:
        return 1.0
    threshold = _log_pmf(k, n, p) + math.log1p(1e-7)
    total = sum(math.exp(lp) for i in range(n + 1) if (lp := _log_pmf(i, n, p)) <= threshold)
    return min(1.0, total)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input's order: sorted ascending, the ``i``-th (from 0) of ``m``
    becomes ``max_{j <= i} min(1, (m - j) * p_(j))``. Reject where the adjusted value is below alpha."""
    p = [float(v) for v in p_values]
    m = len(p)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda i: p[i])):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted
