"""Memory-light training: Trainer.fit on a np.memmap or another array-like never copies the whole dataset."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import minidl as mdl
from minidl.data import iterate_batches
from minidl.layers import Dense, Flatten

MB = 1 << 20


def traced_peak(fn):
    """``(result, peak_bytes)`` of ``fn()`` above what was allocated before (numpy reports to tracemalloc)."""
    started = tracemalloc.is_tracing()
    if not started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    try:
        result = fn()
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        if not started:
            tracemalloc.stop()
    return result, peak


def make_trainer():
    model = mdl.Sequential([Flatten(), Dense(784, 10, rng=np.random.default_rng(0))])
    return mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(), mdl.optim.SGD(model.parameters(), lr=0.1),
                       blas_threads=1)


@pytest.fixture(scope="module")
def mnist_memmap(tmp_path_factory):
    """60,000 x 1 x 28 x 28 float32 (188 MB) on disk, written 5,000 images at a time."""
    path = tmp_path_factory.mktemp("mm") / "X.npy"
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(60000, 1, 28, 28))
    rng = np.random.default_rng(0)
    for start in range(0, 60000, 5000):
        X[start:start + 5000] = rng.random((5000, 1, 28, 28), dtype=np.float32)
    X.flush()
    y = rng.integers(0, 10, 60000)
    return path, y


def test_fit_on_memmap_peak_far_below_dataset_and_equal_to_in_memory(mnist_memmap):
    path, y = mnist_memmap
    X = np.load(path, mmap_mode="r")
    assert isinstance(X, np.memmap) and X.nbytes == 188_160_000
    trainer = make_trainer()
    history, peak = traced_peak(lambda: trainer.fit(X, y, epochs=1, batch_size=256, seed=0, progress=False))
    print(f"memmap fit: tracemalloc peak {peak / MB:.1f} MB for a {X.nbytes / MB:.0f} MB dataset")
    assert peak < 50 * MB, f"peak {peak / MB:.1f} MB"
    # the same run on the array in memory: identical weights and logs
    reference = make_trainer()
    ref_history = reference.fit(np.array(X), y, epochs=1, batch_size=256, seed=0, progress=False)
    assert ref_history.history == history.history
    for p, q in zip(trainer.model.parameters(), reference.model.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def test_nan_scan_of_memmap_runs_in_chunks(mnist_memmap, tmp_path):
    path, y = mnist_memmap
    X = np.load(path, mmap_mode="r+")
    old = X[59998, 0, 3, 4].copy()
    X[59998, 0, 3, 4] = np.nan
    X.flush()
    try:
        trainer = make_trainer()
        with pytest.raises(ValueError, match=r"1 sample\(s\), e.g. sample 59998"):
            trainer.fit(X, y, epochs=1, progress=False)
        _, peak = traced_peak(lambda: pytest.raises(ValueError, trainer.fit, X, y, epochs=1, progress=False))
        print(f"nan scan of a memmap: tracemalloc peak {peak / MB:.1f} MB")
        assert peak < 20 * MB, f"peak {peak / MB:.1f} MB"
    finally:
        X[59998, 0, 3, 4] = old
        X.flush()


class ArrayLike:
    """An h5py-like dataset: __len__, shape, dtype, slices and increasing integer-array indexing only."""

    def __init__(self, a):
        self.a, self.shape, self.dtype, self.requests = a, a.shape, a.dtype, []

    def __len__(self):
        return len(self.a)

    def __getitem__(self, idx):
        if not isinstance(idx, slice):
            idx = np.asarray(idx)
            if np.any(np.diff(idx) <= 0):
                raise TypeError("Indexing elements must be in increasing order")  # as h5py says
        self.requests.append(idx)
        return self.a[idx].copy()


def test_fit_on_array_like_equals_in_memory():
    rng = np.random.default_rng(1)
    X = rng.random((300, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 300)
    wrapped = ArrayLike(X)
    a, b = make_trainer(), make_trainer()
    h1 = a.fit(wrapped, ArrayLike(y), epochs=2, batch_size=32, seed=3,
               validation_data=(ArrayLike(X[:50]), y[:50]), progress=False)
    h2 = b.fit(X, y, epochs=2, batch_size=32, seed=3, validation_data=(X[:50], y[:50]), progress=False)
    assert h1.history == h2.history
    np.testing.assert_array_equal(a.predict(wrapped), b.predict(X))
    assert a.evaluate(wrapped, y) == b.evaluate(X, y)
    # batches are read one at a time (fit: 32, predict/evaluate: 256); slices are the nan scan's chunks
    assert max(len(r) for r in wrapped.requests if not isinstance(r, slice)) <= 256


def test_iterate_batches_on_memmap_yields_plain_arrays_in_shuffled_order(tmp_path):
    X = np.lib.format.open_memmap(tmp_path / "s.npy", mode="w+", dtype=np.float32, shape=(50, 3))
    X[:] = np.arange(150, dtype=np.float32).reshape(50, 3)
    batches = list(iterate_batches(X, np.arange(50), batch_size=8, seed=0))
    plain = list(iterate_batches(np.array(X), np.arange(50), batch_size=8, seed=0))
    assert all(type(xb) is np.ndarray for xb, _ in batches)
    for (xb, yb), (xp, yp) in zip(batches, plain, strict=True):
        np.testing.assert_array_equal(xb, xp)
        np.testing.assert_array_equal(yb, yp)
        np.testing.assert_array_equal(xb[:, 0], yb * 3)


def test_fit_refuses_objects_that_are_not_array_like():
    trainer = make_trainer()
    with pytest.raises(TypeError, match="memmap.*Received: list"):
        trainer.fit([[0.0] * 784], np.zeros(1, int), epochs=1, progress=False)
