"""Memory of batches split into runs (minidl.functional._engine.blas.map_batch).

A split batch must not hold more than the unsplit computation: each run's temporaries
(its im2col columns, its part of dL/dX) are freed when the run ends, not kept until the
whole batch is done. The runs here are computed one after the other (one thread, as
under ``OPENBLAS_NUM_THREADS=1``), so the peaks are deterministic.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from minidl.functional import conv as fconv
from minidl.functional._engine import blas

pytest.importorskip("threadpoolctl")


@pytest.fixture
def eight_runs(monkeypatch):
    """Every batch of 8 or more samples is split into 8 runs, computed on the calling thread."""
    monkeypatch.setattr(blas, "PARALLEL_MIN_FLOPS", 1e-3)
    monkeypatch.setattr(blas, "MAX_RUNS", 8)
    return lambda: blas.auto_threads(max_threads=1)


def _peak(fn):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        return result, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_split_conv2d_frees_each_runs_columns(eight_runs, monkeypatch):
    """Before the fix every run returned its columns to map_batch, which kept them all:
    the peak was the whole batch's columns (here 1.2 MiB, 8x the output) instead of
    one piece of at most MAX_COLUMN_BYTES."""
    cap = 256 * 1024
    monkeypatch.setattr(fconv, "MAX_COLUMN_BYTES", cap)  # the whole batch's columns exceed it, a run's do not
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 8, 12, 12))
    w = rng.standard_normal((8, 8, 3, 3))
    whole_columns = 16 * 12 * 12 * 8 * 9 * x.itemsize
    assert whole_columns > 4 * cap and whole_columns / 8 <= cap
    expected, serial = _peak(lambda: fconv.conv2d(x, w, None, padding=1))
    with eight_runs():
        assert blas.batch_runs(16, 1e12) == 8
        y, split = _peak(lambda: fconv.conv2d(x, w, None, padding=1))
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    assert serial <= y.nbytes + cap + 64 * 1024  # the output and one piece of columns
    assert split <= y.nbytes + cap + 64 * 1024, f"split peak {split} B, output {y.nbytes} B, cap {cap} B"


def test_split_conv2d_backward_holds_dx_once(eight_runs, monkeypatch):
    """Before the fix each run's dL/dX part stayed referenced (map_batch's result list)
    after it was copied into the whole dL/dX: the peak held dL/dX twice."""
    monkeypatch.setattr(fconv, "MAX_COLUMN_BYTES", 64 * 1024)  # pieces much smaller than dL/dX, split or not
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 8, 16, 16))
    w = rng.standard_normal((8, 8, 3, 3))
    g = rng.standard_normal((16, 8, 16, 16))
    (dx0, dw0, _), serial = _peak(lambda: fconv.conv2d_backward(x, w, g, padding=1, bias=False))
    with eight_runs():
        (dx, dw, _), split = _peak(lambda: fconv.conv2d_backward(x, w, g, padding=1, bias=False))
    np.testing.assert_allclose(dx, dx0, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, dw0, rtol=1e-12, atol=1e-12)
    # eight runs each hold a few small temporaries (a dW partial, rows): about 66 KB here, at the
    # edge of dx / 4 (the test failed by 0.5 % depending on what ran before); dx held twice
    # would add all of dx
    assert split <= serial + dx.nbytes // 2, f"split peak {split} B, unsplit {serial} B, dx {dx.nbytes} B"
