"""Inception Score of generated audio from a classifier's logits (PANNs by default, as av-benchmark).

``IS = exp(E_x KL(p(y|x) || p(y)))`` with ``p(y|x) = softmax(logits)`` and ``p(y)`` the mean over the
split. As torch-fidelity (which av-benchmark calls with ``splits=10, samples_shuffle=True,
rng_seed=2020``): the clips are shuffled with a fixed seed, cut into 10 contiguous splits
(``[i N / 10, (i+1) N / 10)``), the score is computed per split, and the mean and (population) std
over the splits are reported. With fewer clips than splits, one split per clip-pair is used instead
(and the report says so through ``splits``).
"""

from __future__ import annotations

import numpy as np

from foleygen.errors import DataError

__all__ = ["inception_score", "inception_score_from_probs"]


def inception_score_from_probs(
    probs: np.ndarray, *, splits: int = 10, shuffle: bool = True, seed: int = 2020, min_per_split: int = 2
) -> dict[str, float]:
    """IS of class probabilities ``probs [N, C]`` (rows sum to 1).

    ``min_per_split``: fewer splits are cut when there are fewer than ``splits * min_per_split`` clips
    (2 by default: a one-clip split always scores 1; av-benchmark's protocol uses 1).

    Returns:
        ``{"mean": ..., "std": ..., "splits": number of splits used}``.
    """
    from scipy.special import xlogy

    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] < 2:
        raise DataError(f"Inception Score needs [N, C] probabilities with N >= 2, got shape {probs.shape}")
    n = probs.shape[0]
    splits = max(1, min(splits, n // max(1, min_per_split)))
    if shuffle:
        probs = probs[np.random.RandomState(seed).permutation(n)]
    scores = []
    for i in range(splits):
        chunk = probs[i * n // splits : (i + 1) * n // splits]
        marginal = chunk.mean(axis=0, keepdims=True)
        kl = (xlogy(chunk, chunk) - xlogy(chunk, np.maximum(marginal, 1e-300))).sum(axis=1)
        scores.append(float(np.exp(kl.mean())))
    return {"mean": float(np.mean(scores)), "std": float(np.std(scores)), "splits": splits}


def inception_score(
    logits: np.ndarray, *, splits: int = 10, shuffle: bool = True, seed: int = 2020, min_per_split: int = 2
) -> dict[str, float]:
    """IS of classifier ``logits [N, C]`` (softmax over classes; see the module docstring)."""
    from scipy.special import softmax

    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise DataError(f"Inception Score needs [N, C] logits, got shape {logits.shape}")
    return inception_score_from_probs(
        softmax(logits, axis=1), splits=splits, shuffle=shuffle, seed=seed, min_per_split=min_per_split
    )
