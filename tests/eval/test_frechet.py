import numpy as np
import pytest

from foleygen.errors import DataError
from foleygen.eval.frechet import frechet_distance


def _reference_fd(a, b):
    """Independent float64 reference: tr((S_a S_b)^1/2) = sum sqrt(eig(S_a^1/2 S_b S_a^1/2))."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    sa = (a - mu_a).T @ (a - mu_a) / (len(a) - 1)
    sb = (b - mu_b).T @ (b - mu_b) / (len(b) - 1)
    w, v = np.linalg.eigh(sa)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root_a @ sb @ root_a)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2 * np.sqrt(np.clip(inner, 0, None)).sum())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_independent_reference(seed):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(16, 16))
    a = rng.normal(size=(300, 16)) @ mix
    b = rng.normal(loc=0.5, size=(250, 16)) @ (mix + 0.3 * rng.normal(size=(16, 16)))
    got = frechet_distance(a.astype(np.float32), b.astype(np.float32))
    want = _reference_fd(a.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64))
    assert got == pytest.approx(want, rel=1e-6)


def test_identical_sets_give_zero_and_symmetry():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(100, 8))
    b = rng.normal(size=(120, 8)) * 2 + 1
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-8)
    # Shift only: FD equals the squared mean difference.
    assert frechet_distance(a, a + 2.0) == pytest.approx(4.0 * 8, rel=1e-6)


def test_singular_covariance_is_regularised():
    rng = np.random.default_rng(4)
    # 5 samples in 32 dims: rank-deficient covariances, sqrtm of their product is ill-defined.
    a = rng.normal(size=(5, 32))
    b = rng.normal(size=(6, 32))
    value = frechet_distance(a, b)
    assert np.isfinite(value) and value > 0
    # The regularised value stays close to the eigen-based reference (the eps shift is tiny).
    assert value == pytest.approx(_reference_fd(a, b), rel=1e-2)


def test_errors():
    with pytest.raises(DataError, match="same D"):
        frechet_distance(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(DataError, match="at least 2"):
        frechet_distance(np.zeros((1, 3)), np.zeros((4, 3)))
