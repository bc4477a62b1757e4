import math

import numpy as np
import pytest

from foleygen.errors import DataError
from foleygen.eval.inception import inception_score, inception_score_from_probs
from foleygen.eval.kl import kl_from_logits, kl_from_probs, paired_kl


def test_kl_hand_computed():
    p = np.array([[0.5, 0.5, 0.0], [0.25, 0.25, 0.5]])
    q = np.array([[0.25, 0.75, 0.0], [0.5, 0.25, 0.25]])
    want0 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    want1 = 0.25 * math.log(0.25 / 0.5) + 0 + 0.5 * math.log(0.5 / 0.25)
    np.testing.assert_allclose(kl_from_probs(p, q), [want0, want1], rtol=1e-12)


def test_kl_from_logits_is_softmax_kl_and_directions():
    ref = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
    gen = np.log(np.array([[0.2, 0.7, 0.1], [0.3, 0.6, 0.1]])) + 3.0  # a constant shift does not change softmax
    p, q = np.exp(ref), np.exp(gen - 3.0)
    np.testing.assert_allclose(kl_from_logits(ref, gen), kl_from_probs(p, q), rtol=1e-10)
    result = paired_kl(ref, gen)
    assert result["kl"] == result["kl_ref_gen"] == pytest.approx(kl_from_probs(p, q).mean())
    assert result["kl_gen_ref"] == pytest.approx(kl_from_probs(q, p).mean())
    assert result["kl_gen_ref"] != pytest.approx(result["kl_ref_gen"])
    assert paired_kl(ref, ref)["kl"] == pytest.approx(0.0, abs=1e-12)


def test_kl_shape_error():
    with pytest.raises(DataError, match="same shape"):
        paired_kl(np.zeros((2, 3)), np.zeros((3, 3)))


def test_is_hand_made_probabilities():
    # One split: half the clips certain of class 0, half of class 1 -> marginal [.5, .5], IS = exp(log 2) = 2.
    probs = np.array([[1.0, 0.0]] * 10 + [[0.0, 1.0]] * 10)
    result = inception_score_from_probs(probs, splits=1, shuffle=False)
    assert result["mean"] == pytest.approx(2.0) and result["std"] == 0.0
    # C equally used, confident classes: IS = C; uniform predictions: IS = 1.
    eye = np.tile(np.eye(5), (4, 1))
    assert inception_score_from_probs(eye, splits=2, shuffle=False)["mean"] == pytest.approx(5.0)
    assert inception_score_from_probs(np.full((20, 5), 0.2), splits=10)["mean"] == pytest.approx(1.0)


def test_is_splits_and_shuffle():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(100, 7)) * 3
    result = inception_score(logits)
    assert result["splits"] == 10 and 1.0 < result["mean"] < 7.0 and result["std"] > 0
    # Hand computation of the same procedure: seed-2020 permutation, 10 contiguous splits.
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p = p[np.random.RandomState(2020).permutation(100)]
    scores = []
    for i in range(10):
        c = p[i * 10 : (i + 1) * 10]
        m = c.mean(0)
        scores.append(np.exp(np.mean(np.sum(c * np.log(c / m), axis=1))))
    assert result["mean"] == pytest.approx(np.mean(scores)) and result["std"] == pytest.approx(np.std(scores))
    assert inception_score(logits[:6])["splits"] == 3  # fewer clips than splits
