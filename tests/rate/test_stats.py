"""The statistics against scipy on known data (our implementations are independent of scipy's)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp

from foleygen.rate.stats import average_ranks, binomial, holm, mean_ci, wilcoxon


def test_mean_ci_matches_scipy_t_interval():
    x = [4, 5, 3, 4, 4, 2, 5, 3, 4, 4, 5, 1]
    mean, lo, hi = mean_ci(x)
    ref = sp.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=sp.sem(x))
    assert mean == pytest.approx(np.mean(x)) and (lo, hi) == pytest.approx(ref, rel=1e-12)
    # a hand-checked value: n=4, mean 3, sd 1.8257..., t(0.975, 3) = 3.18245
    m, lo, hi = mean_ci([1, 2, 4, 5])
    assert m == 3 and hi - m == pytest.approx(3.182446305 * 1.825741858 / 2, rel=1e-8)
    assert math.isnan(mean_ci([3])[1]) and math.isnan(mean_ci([])[0])


def test_average_ranks_match_scipy():
    x = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0, 5.0])
    assert average_ranks(x) == pytest.approx(sp.rankdata(x))


@pytest.mark.parametrize("seed", range(6))
def test_wilcoxon_exact_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 40))
    x = rng.normal(0.3 * (seed % 3), 1.0, n)  # continuous: no ties, no zeros -> exact
    y = rng.normal(0.0, 1.0, n)
    stat, p, used = wilcoxon(x, y)
    ref = sp.wilcoxon(x, y, zero_method="wilcox", correction=False, method="exact")
    assert used == n and stat == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue, rel=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_wilcoxon_with_ties_and_zeros_matches_scipy_approx(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(10, 120))
    x = rng.integers(1, 6, n)  # MOS-like: many ties and zero differences
    y = np.clip(x + rng.integers(-2, 3, n) - (seed % 2), 1, 5)
    stat, p, used = wilcoxon(x, y)
    ref = sp.wilcoxon(x, y, zero_method="wilcox", correction=False, method="approx")
    assert used == int(np.sum(x != y))
    assert stat == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue, rel=1e-9)


def test_wilcoxon_edge_cases():
    assert wilcoxon([3, 3, 3], [3, 3, 3]) == (0.0, 1.0, 0)
    # all five differences positive, no ties: p = 2 / 2**5 exactly
    assert wilcoxon([2, 3, 4, 5, 6], [1, 1, 1, 1, 1])[1] == pytest.approx(2 / 32)


@pytest.mark.parametrize(("k", "n", "p"), [(7, 10, 0.5), (0, 12, 0.5), (15, 20, 0.5), (10, 20, 0.5), (3, 25, 0.3),
                                           (40, 60, 0.5), (1, 1, 0.5), (9, 30, 0.2)])  # fmt: skip
def test_binomial_matches_scipy(k, n, p):
    assert binomial(k, n, p) == pytest.approx(sp.binomtest(k, n, p).pvalue, rel=1e-9)


def test_binomial_edge_cases():
    assert binomial(0, 0) == 1.0
    with pytest.raises(ValueError):
        binomial(5, 3)


def test_holm_on_a_known_family():
    # Holm (1979)-style example worked by hand: sorted 0.01, 0.02, 0.03, 0.04 with m = 4
    # -> 0.04, max(0.04, 0.06) = 0.06, max(0.06, 0.06) = 0.06, max(0.06, 0.04) = 0.06
    assert holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []
    # equivalent to scipy's step-down rule: reject H_(i) while p_(i) <= alpha / (m - i)
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 0.06, 12)
    adjusted = np.array(holm(p))
    order = np.argsort(p)
    reject = np.zeros(12, bool)
    for i, j in enumerate(order):
        if p[j] > 0.05 / (12 - i):
            break
        reject[j] = True
    assert np.array_equal(adjusted <= 0.05, reject)
