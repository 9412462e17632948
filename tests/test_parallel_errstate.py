"""numpy's floating-point error state (np.errstate / np.seterr) holds in the worker
threads of a split batch (minidl.functional._engine.blas.map_batch) as on the calling thread.

numpy keeps it in a context variable, which a thread pool's threads do not inherit:
before the fix the runs computed on worker threads used numpy's defaults (warn), so
``np.errstate(all="raise")`` did not raise for them and ``minidl train``'s
``np.errstate(over="ignore", ...)`` around fit let overflow warnings through.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from minidl.functional import dense
from minidl.functional._engine import blas

pytest.importorskip("threadpoolctl")


@pytest.fixture
def two_threads(monkeypatch):
    """8 runs of one sample on 2 threads: samples 0-3 on the caller, 4-7 on a worker."""
    monkeypatch.setattr(blas, "PARALLEL_MIN_FLOPS", 1e-3)
    monkeypatch.setattr(blas, "MAX_RUNS", 8)
    x = np.ones((8, 4), np.float32)
    x[6] = 1e30  # overflows in x @ w.T, in a run on the worker thread
    return x, np.full((3, 4), 1e30, np.float32)


def test_errstate_raise_holds_in_worker_threads(two_threads):
    x, w = two_threads
    with np.errstate(over="raise"), pytest.raises(FloatingPointError, match="overflow"):
        dense.linear(x, w)  # unsplit: raises
    with np.errstate(over="raise"), blas.auto_threads(max_threads=2):
        assert blas.batch_runs(8, 1e12) == 8
        with pytest.raises(FloatingPointError, match="overflow"):
            dense.linear(x, w)


def test_errstate_ignore_holds_in_worker_threads(two_threads):
    x, w = two_threads
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with np.errstate(over="ignore", invalid="ignore"), blas.auto_threads(max_threads=2):
            y = dense.linear(x, w)
    assert np.isinf(y[6]).all() and np.isfinite(np.delete(y, 6, axis=0)).all()
    assert [str(c.message) for c in caught] == []
