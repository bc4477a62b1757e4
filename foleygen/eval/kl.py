"""Paired KL divergence between a classifier's outputs on reference and generated audio.

Convention (av-benchmark, inherited from SpecVQGAN / Diff-Foley, "KL-PANNS-softmax", "KL-PASST-softmax"):
AudioSet is multi-label, but the classifier logits are turned into one distribution per clip with a
*softmax* over the 527 classes; for each pair ``KL(p_ref || p_gen) = sum_c p_ref log(p_ref / p_gen)`` and
the mean over pairs is reported. That direction is the one tables call "KL"; we also report the reverse
``KL(p_gen || p_ref)`` since papers are not always explicit. (The multi-label "sigmoid" variant is not
computed: no current Foley paper reports it.)
"""

from __future__ import annotations

import numpy as np

from foleygen.errors import DataError

__all__ = ["kl_from_probs", "kl_from_logits", "paired_kl"]


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise DataError(f"KL needs two [N, C] arrays of the same shape, got {a.shape} and {b.shape}")
    if a.shape[0] == 0:
        raise DataError("KL needs at least one pair of clips")
    return a, b


def kl_from_probs(p: np.ndarray, q: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Per-row ``KL(p || q)`` ``[N]`` for distributions ``p, q [N, C]`` (rows sum to 1; 0 log 0 = 0).

    ``q`` is floored at ``eps`` so that a class with ``q = 0 < p`` gives a large finite value.
    """
    from scipy.special import xlogy

    p, q = _check_pair(p, q)
    return (xlogy(p, p) - xlogy(p, np.maximum(q, eps))).sum(axis=1)


def kl_from_logits(p_logits: np.ndarray, q_logits: np.ndarray) -> np.ndarray:
    """Per-row ``KL(softmax(p_logits) || softmax(q_logits))`` ``[N]``, computed stably in log space."""
    from scipy.special import log_softmax

    p_logits, q_logits = _check_pair(p_logits, q_logits)
    log_p, log_q = log_softmax(p_logits, axis=1), log_softmax(q_logits, axis=1)
    return (np.exp(log_p) * (log_p - log_q)).sum(axis=1)


def paired_kl(ref_logits: np.ndarray, gen_logits: np.ndarray) -> dict[str, float]:
    """Mean softmax KL over pairs ``ref_logits [N, C]`` / ``gen_logits [N, C]`` (row i = the same clip).

    Returns:
        ``{"kl": mean KL(ref || gen), "kl_ref_gen": the same, "kl_gen_ref": mean KL(gen || ref)}``.
    """
    forward = kl_from_logits(ref_logits, gen_logits)
    backward = kl_from_logits(gen_logits, ref_logits)
    return {"kl": float(forward.mean()), "kl_ref_gen": float(forward.mean()), "kl_gen_ref": float(backward.mean())}
