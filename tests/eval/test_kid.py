"""KID: the unbiased polynomial-kernel MMD^2, checked against torchmetrics and an explicit double sum."""

import numpy as np
import pytest
import torch

from foleygen.errors import DataError
from foleygen.eval.kid import kernel_distance, polynomial_mmd2
from foleygen.eval.report import EvalConfig, evaluate, expand_metrics, render_markdown


def _explicit_mmd2(a: np.ndarray, b: np.ndarray) -> float:
    """The definition written out term by term (no matrix algebra): the check of the vectorised one."""
    d = a.shape[1]

    def k(x, y):
        return (float(np.dot(x, y)) / d + 1.0) ** 3

    n, m = len(a), len(b)
    aa = sum(k(a[i], a[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    bb = sum(k(b[i], b[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    ab = sum(k(a[i], b[j]) for i in range(n) for j in range(m)) / (n * m)
    return aa + bb - 2 * ab


def test_mmd2_equals_torchmetrics_poly_mmd():
    pytest.importorskip("torchmetrics")
    from torchmetrics.image.kid import poly_mmd

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 16)), rng.normal(0.3, 1.2, size=(40, 16))
    ours = polynomial_mmd2(a, b)
    # torchmetrics' KID takes (real, fake); the estimate is symmetric in the two sets
    theirs = float(poly_mmd(torch.from_numpy(b), torch.from_numpy(a)))
    assert ours == pytest.approx(theirs, rel=1e-10)


def test_mmd2_of_sets_of_different_sizes_equals_the_double_sum():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(7, 5)), rng.normal(0.5, 1.0, size=(11, 5))
    assert polynomial_mmd2(a, b) == pytest.approx(_explicit_mmd2(a, b), rel=1e-10)


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(2)
    same = kernel_distance(rng.normal(size=(300, 8)), rng.normal(size=(300, 8)), subsets=50, subset_size=100)
    shifted = kernel_distance(rng.normal(size=(300, 8)), rng.normal(0.5, 1.0, size=(300, 8)), subsets=50)
    assert abs(same["mean"]) < 3 * same["std"] + 1e-3  # no bias: zero within the subsets' spread
    assert shifted["mean"] > 10 * max(same["std"], 1e-6) and shifted["subset_size"] == 300


def test_kid_subsets_are_seeded_and_the_whole_set_is_one_value():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(50, 4)), rng.normal(0.2, 1.0, size=(60, 4))
    first, again = kernel_distance(a, b, subsets=5, subset_size=20), kernel_distance(a, b, subsets=5, subset_size=20)
    assert first == again and first["subset_size"] == 20 and first["std"] > 0
    assert kernel_distance(a, b, subsets=3, seed=7) != kernel_distance(a, b, subsets=3, seed=8)
    # A subset as large as the smaller set on both sides of equal size is a permutation: one value, no spread.
    whole = kernel_distance(a, b[:50], subsets=4)
    assert whole["std"] == pytest.approx(0.0, abs=1e-12)
    assert whole["mean"] == pytest.approx(polynomial_mmd2(a, b[:50]), rel=1e-10)


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        (np.zeros((1, 3)), np.zeros((5, 3)), "at least 2 embeddings"),
        (np.zeros((4, 3)), np.zeros((4, 2)), "same D"),
        (np.full((4, 3), np.nan), np.zeros((4, 3)), "NaN"),
    ],
)
def test_kid_refuses_bad_embeddings(a, b, message):
    with pytest.raises(DataError, match=message):
        kernel_distance(a, b)


def test_kid_in_the_report(folders, stand_in_embedder, monkeypatch):
    from foleygen.eval.embedders import EMBEDDERS, EmbedderSpec

    assert expand_metrics(["kid"]) == ["kid-vggish", "kid-panns", "kid-passt"]
    monkeypatch.setitem(EMBEDDERS, "panns", EmbedderSpec("panns", None, "x", "tests", lambda p, **o: stand_in_embedder))
    gen, ref = folders
    report = evaluate(gen, ref, metrics=["kid-panns", "fad-panns"], config=EvalConfig(duration=1.0, quiet=True))
    kid = report["metrics"]["kid-panns"]
    # every clip on both sides (5 + 5), two embeddings each: the same rows FAD reads
    assert kid["n_generated"] == report["metrics"]["fad-panns"]["n_generated"] == 10
    assert kid["subset_size"] == 10 and kid["subsets"] == 100 and kid["std"] == pytest.approx(0.0, abs=1e-6)
    # subsets as large as both sets are permutations of them: the value is the MMD^2 of the two sets
    from foleygen.eval.pairing import list_media, load_clip

    def rows(folder):
        return np.concatenate(
            [stand_in_embedder.embed(load_clip(p, 16000, 1.0)).embeddings for p in list_media(folder).values()]
        )

    assert kid["value"] == pytest.approx(polynomial_mmd2(rows(gen), rows(ref)), rel=1e-6)
    assert "| KID (PANNs) |" in render_markdown(report) and "100 subsets of 10" in render_markdown(report)
