"""minidl.data: the digits split and the batch iterator."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl as mdl
from minidl.data import iterate_batches, load_digits, num_batches


@pytest.fixture(scope="module")
def digits():
    return load_digits(test_size=0.2, seed=0)


@pytest.fixture(scope="module")
def sk_digits():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    return sklearn_datasets.load_digits()


# ------------------------------------------------------------------ load_digits
def test_load_digits_shapes_dtypes_and_range(digits):
    (X, y), (Xt, yt) = digits
    assert X.shape == (1437, 1, 8, 8) and Xt.shape == (360, 1, 8, 8)
    assert y.shape == (1437,) and yt.shape == (360,)
    assert X.dtype == np.float32 and Xt.dtype == np.float32
    assert y.dtype == np.int64 and yt.dtype == np.int64
    for arr in (X, Xt):
        assert arr.min() >= 0.0 and arr.max() <= 1.0
        assert arr.flags["C_CONTIGUOUS"]
    # the full [0, 1] range is used (pixel / 16), not, say, [0, 1/16]
    assert X.max() == 1.0 and X.min() == 0.0
    assert set(np.unique(y)) == set(range(10)) and set(np.unique(yt)) == set(range(10))


def test_load_digits_is_the_sklearn_data_scaled(digits, sk_digits):
    """Train + test together are exactly sklearn's 1,797 images / 16, each once."""
    (X, y), (Xt, yt) = digits
    ours = np.concatenate([X, Xt]).reshape(-1, 64).astype(np.float64)
    ours_y = np.concatenate([y, yt])
    ref = sk_digits.images.reshape(-1, 64) / 16.0
    # sort rows (with label appended) lexicographically and compare as multisets
    a = np.column_stack([ours, ours_y])
    b = np.column_stack([ref, sk_digits.target])
    a = a[np.lexsort(a.T[::-1])]
    b = b[np.lexsort(b.T[::-1])]
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-7)


def test_load_digits_is_stratified(digits, sk_digits):
    (_, y), (_, yt) = digits
    full = np.bincount(sk_digits.target, minlength=10)
    train, test = np.bincount(y, minlength=10), np.bincount(yt, minlength=10)
    np.testing.assert_array_equal(train + test, full)
    # every class's test share is 20% up to rounding (one sample)
    assert np.all(np.abs(test - 0.2 * full) <= 1.0), (test, 0.2 * full)
    # so class proportions in train, test and full agree closely
    np.testing.assert_allclose(test / test.sum(), full / full.sum(), atol=0.005)
    np.testing.assert_allclose(train / train.sum(), full / full.sum(), atol=0.005)


def test_load_digits_is_deterministic_by_seed(digits):
    (X, y), (Xt, yt) = digits
    (X2, y2), (Xt2, yt2) = load_digits(test_size=0.2, seed=0)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(Xt, Xt2)
    np.testing.assert_array_equal(yt, yt2)
    (X3, y3), (Xt3, yt3) = load_digits(test_size=0.2, seed=1)
    assert X3.shape == X.shape
    assert not np.array_equal(yt3, yt) or not np.array_equal(Xt3, Xt)


def test_load_digits_defaults_are_test_size_02_seed_0(digits):
    (X, y), (Xt, yt) = load_digits()
    np.testing.assert_array_equal(Xt, digits[1][0])
    np.testing.assert_array_equal(y, digits[0][1])


def test_load_digits_other_test_size():
    (X, _), (Xt, yt) = load_digits(test_size=0.5, seed=3)
    assert len(X) + len(Xt) == 1797
    assert abs(len(Xt) - 898.5) <= 1
    assert set(np.unique(yt)) == set(range(10))


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5, 2, "0.2", None])
def test_load_digits_rejects_bad_test_size(bad):
    with pytest.raises(ValueError, match="test_size"):
        load_digits(test_size=bad)


def test_load_digits_is_exported():
    assert mdl.data.load_digits is load_digits


# -------------------------------------------------------------- iterate_batches
def _indices(n):
    """An X whose rows carry their own index, and a y equal to it."""
    return np.arange(n, dtype=np.float64).reshape(n, 1) * np.ones((1, 3)), np.arange(n)


def test_iterate_batches_keeps_last_partial_batch_and_covers_every_index_once():
    X, y = _indices(10)
    batches = list(iterate_batches(X, y, batch_size=4, seed=0))
    assert [len(xb) for xb, _ in batches] == [4, 4, 2]
    seen = np.concatenate([yb for _, yb in batches])
    assert sorted(seen.tolist()) == list(range(10))
    # X and y stay aligned
    for xb, yb in batches:
        np.testing.assert_array_equal(xb[:, 0], yb)


def test_iterate_batches_shuffles_and_is_deterministic_by_seed():
    X, y = _indices(50)
    def order(seed):
        return np.concatenate([yb for _, yb in iterate_batches(X, y, 8, seed=seed)])

    a, b, c = order(0), order(0), order(1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, np.arange(50))  # actually shuffled
    assert sorted(a.tolist()) == list(range(50))


def test_iterate_batches_with_rng_advances_between_passes():
    X, y = _indices(30)
    rng = np.random.default_rng(0)
    first = np.concatenate([yb for _, yb in iterate_batches(X, y, 7, rng=rng)])
    second = np.concatenate([yb for _, yb in iterate_batches(X, y, 7, rng=rng)])
    assert not np.array_equal(first, second)
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(30))


def test_iterate_batches_without_shuffle_keeps_order():
    X, y = _indices(11)
    batches = list(iterate_batches(X, y, batch_size=5, shuffle=False))
    assert [yb.tolist() for _, yb in batches] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10]]


def test_iterate_batches_without_y_yields_arrays():
    X, _ = _indices(5)
    batches = list(iterate_batches(X, batch_size=2, shuffle=False))
    assert all(isinstance(b, np.ndarray) for b in batches)
    assert [len(b) for b in batches] == [2, 2, 1]


def test_iterate_batches_batch_larger_than_data():
    X, y = _indices(3)
    batches = list(iterate_batches(X, y, batch_size=100, seed=0))
    assert len(batches) == 1 and sorted(batches[0][1].tolist()) == [0, 1, 2]


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "4", None])
def test_iterate_batches_rejects_bad_batch_size(bad):
    X, y = _indices(4)
    error = ValueError if bad in (0, -1) and bad is not False else TypeError  # TypeError: issue 11
    with pytest.raises(error, match="batch_size"):
        list(iterate_batches(X, y, batch_size=bad))


def test_iterate_batches_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="same number of samples"):
        list(iterate_batches(np.zeros((5, 2)), np.zeros(4), batch_size=2))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 200), batch_size=st.integers(1, 64), seed=st.integers(0, 2**31 - 1),
       shuffle=st.booleans())
def test_iterate_batches_property_every_index_exactly_once(n, batch_size, seed, shuffle):
    X, y = _indices(n)
    batches = list(iterate_batches(X, y, batch_size, shuffle=shuffle, seed=seed))
    sizes = [len(yb) for _, yb in batches]
    assert len(batches) == num_batches(n, batch_size) == -(-n // batch_size)
    assert all(s == batch_size for s in sizes[:-1]) and 1 <= sizes[-1] <= batch_size
    seen = np.concatenate([yb for _, yb in batches])
    np.testing.assert_array_equal(np.sort(seen), np.arange(n))
    for xb, yb in batches:
        np.testing.assert_array_equal(xb[:, 0], yb)
