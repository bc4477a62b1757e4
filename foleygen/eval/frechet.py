"""Fréchet distance between two sets of embeddings (the "FAD" of every audio generation paper).

``FD = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^{1/2})`` with the means and (unbiased,
``ddof=1``) covariances of the two sets, computed in float64 as in the reference implementations
(pytorch-fid, av-benchmark's ``compute_fd``).

Regularisation (documented in docs/evaluation.md): ``scipy.linalg.sqrtm(S_a S_b)`` is tried first. When
the result is not finite, or its imaginary part is larger than ``imag_tol`` relative to its real part
(singular or nearly singular covariances, e.g. fewer samples than dimensions), ``eps * I`` is added to
both covariances and the square root recomputed, with ``eps`` growing tenfold (1e-6, 1e-5, ... 1e-2)
until the result is finite and (numerically) real. A tiny imaginary residue is always dropped.
"""

from __future__ import annotations

import numpy as np

from foleygen.errors import DataError

__all__ = ["frechet_distance", "frechet_distance_from_stats", "embedding_stats"]


def embedding_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and unbiased covariance ``[D, D]`` (float64) of embeddings ``x [N, D]``, N >= 2."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise DataError(f"embeddings must be a 2-D array [N, D], got shape {tuple(x.shape)}")
    if x.shape[0] < 2:
        raise DataError(f"need at least 2 embeddings for a covariance, got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise DataError("embeddings contain NaN or infinite values")
    return x.mean(axis=0), np.cov(x, rowvar=False, ddof=1).reshape(x.shape[1], x.shape[1])


def _sqrtm_trace(sigma_a: np.ndarray, sigma_b: np.ndarray, imag_tol: float) -> float:
    """``tr((S_a S_b)^{1/2})`` with the eps*I fallback described in the module docstring."""
    import warnings

    from scipy import linalg

    dim = sigma_a.shape[0]
    for eps in (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2):
        offset = eps * np.eye(dim)
        with warnings.catch_warnings():
            # scipy warns on singular input; the checks below decide whether to regularise instead
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            covmean = linalg.sqrtm((sigma_a + offset) @ (sigma_b + offset))
        if not np.isfinite(covmean).all():
            continue
        if np.iscomplexobj(covmean):
            scale = max(float(np.abs(covmean.real).max()), 1e-12)
            if float(np.abs(covmean.imag).max()) > imag_tol * scale:
                continue  # a genuinely complex root: the product is too close to singular
            covmean = covmean.real
        return float(np.trace(covmean))
    raise DataError(
        "Fréchet distance: matrix square root stays non-finite/complex even with eps=1e-2 "
        "regularisation (degenerate embeddings?)"
    )


def frechet_distance_from_stats(
    mu_a: np.ndarray, sigma_a: np.ndarray, mu_b: np.ndarray, sigma_b: np.ndarray, *, imag_tol: float = 1e-3
) -> float:
    """Fréchet distance between Gaussians ``N(mu_a [D], sigma_a [D, D])`` and ``N(mu_b, sigma_b)``."""
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    sigma_a, sigma_b = np.asarray(sigma_a, np.float64), np.asarray(sigma_b, np.float64)
    if mu_a.shape != mu_b.shape or sigma_a.shape != sigma_b.shape:
        raise DataError(
            f"embedding sizes differ: {mu_a.shape[-1] if mu_a.ndim else 0} vs {mu_b.shape[-1] if mu_b.ndim else 0}"
        )
    diff = mu_a - mu_b
    tr_covmean = _sqrtm_trace(sigma_a, sigma_b, imag_tol)
    value = float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * tr_covmean)
    # Rounding can push a distance between (near-)identical sets a hair below zero.
    return max(value, 0.0)


def frechet_distance(a: np.ndarray, b: np.ndarray, *, imag_tol: float = 1e-3) -> float:
    """Fréchet distance between embedding sets ``a [N, D]`` and ``b [M, D]`` (float64, N, M >= 2)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise DataError(f"embedding sets must be [N, D] and [M, D] with the same D, got {a.shape} and {b.shape}")
    mu_a, sigma_a = embedding_stats(a)
    mu_b, sigma_b = embedding_stats(b)
    return frechet_distance_from_stats(mu_a, sigma_a, mu_b, sigma_b, imag_tol=imag_tol)
