"""Kernel distance between two sets of embeddings: KID (Binkowski et al., 2018, "Demystifying MMD GANs").

Where FD fits one Gaussian to each set, KID is an unbiased estimate of the squared maximum mean discrepancy
``MMD^2`` with the cubic polynomial kernel ``k(x, y) = (x . y / D + 1) ** 3`` (D: the embedding size),
which has no bias in the number of clips: two samples of one distribution score 0 on average (a single
estimate can be slightly negative), so values from sets of different sizes can be compared.

Conventions (those of the image-generation implementations: the paper's code, torch-fidelity,
torchmetrics): ``subsets`` random subsets of ``subset_size`` clips are drawn from each side without
replacement (``subset_size`` is cut to the smaller set when a set is smaller); the reported value is
the mean over subsets and ``std`` their population standard deviation (ddof 0, as torch-fidelity).
The draws come from ``numpy.random.RandomState(seed)`` with seed 2020, the seed av-benchmark uses for
IS. Computed in float64.
"""

from __future__ import annotations

import numpy as np

from foleygen.errors import DataError

__all__ = ["polynomial_mmd2", "kernel_distance"]


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(x @ y.T / D + 1) ** 3`` for ``x [N, D]``, ``y [M, D]`` -> ``[N, M]``."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def polynomial_mmd2(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased ``MMD^2`` between ``a [N, D]`` and ``b [M, D]`` (N, M >= 2) with the cubic polynomial kernel.

    ``sum_{i != j} k(a_i, a_j) / (N (N-1)) + sum_{i != j} k(b_i, b_j) / (M (M-1)) - 2 mean_{i, j} k(a_i, b_j)``
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n, m = a.shape[0], b.shape[0]
    k_aa, k_bb, k_ab = _polynomial_kernel(a, a), _polynomial_kernel(b, b), _polynomial_kernel(a, b)
    within_a = (k_aa.sum() - np.trace(k_aa)) / (n * (n - 1))
    within_b = (k_bb.sum() - np.trace(k_bb)) / (m * (m - 1))
    return float(within_a + within_b - 2.0 * k_ab.mean())


def kernel_distance(
    a: np.ndarray, b: np.ndarray, *, subsets: int = 100, subset_size: int = 1000, seed: int = 2020
) -> dict[str, float | int]:
    """KID between embedding sets ``a [N, D]`` (generated) and ``b [M, D]`` (reference).

    Returns:
        ``{"mean", "std", "subsets", "subset_size"}``: the mean and standard deviation of the unbiased
        ``MMD^2`` over ``subsets`` random subsets of ``min(subset_size, N, M)`` clips per side.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise DataError(f"embedding sets must be [N, D] and [M, D] with the same D, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise DataError("embeddings contain NaN or infinite values")
    size = min(int(subset_size), a.shape[0], b.shape[0])
    if size < 2:
        raise DataError(f"KID needs at least 2 embeddings on each side, got {a.shape[0]} and {b.shape[0]}")
    if subsets < 1:
        raise DataError(f"KID needs at least one subset, got {subsets}")
    rng = np.random.RandomState(seed)
    values = np.empty(subsets, dtype=np.float64)
    for s in range(subsets):
        pick_a = rng.choice(a.shape[0], size, replace=False)
        pick_b = rng.choice(b.shape[0], size, replace=False)
        values[s] = polynomial_mmd2(a[pick_a], b[pick_b])
    return {"mean": float(values.mean()), "std": float(values.std()), "subsets": int(subsets), "subset_size": size}
