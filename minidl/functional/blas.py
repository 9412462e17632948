"""Matrix products with BLAS threads chosen by the size of each product.

Small GEMMs (the 8x8 digits CNN's) run fastest on one BLAS thread: waking worker
threads costs more than they save. Large ones (28x28 and 32x32 images) run up to
1.6x faster on every core. Inside :func:`auto_threads` -- which the Trainer enters
when ``blas_threads="auto"``, its default -- :func:`matmul` sets the BLAS library
to one thread below :data:`THRESHOLD_FLOPS` and to all of its threads above,
switching only when the choice changes (one C call, about 0.6 us). Outside it,
:func:`matmul` is ``np.matmul`` and BLAS threads are left alone.

Inside the same block, kernels whose batch holds enough work (a convolution of at
least :data:`PARALLEL_MIN_FLOPS`) split it into one contiguous run of samples per
thread (:func:`map_batch`): each thread unfolds, multiplies and folds its own
samples on a one-thread BLAS, so that the copies around the GEMMs -- single-threaded
in numpy -- use every core too (numpy releases the GIL in both).
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

__all__ = ["matmul", "column_sums", "add_row_vector", "auto_threads", "map_batch", "batch_threads",
           "THRESHOLD_FLOPS", "PARALLEL_MIN_FLOPS"]

#: Floating-point operations (2 * M * N * K) from which a GEMM uses every BLAS thread.
#: Measured crossover on 2-core machines; see docs/performance.md.
THRESHOLD_FLOPS = 4e6

#: Floating-point operations of a whole batch (a convolution's forward or backward
#: pass) from which, inside :func:`auto_threads`, :func:`map_batch` splits the batch
#: over the threads. Below it one thread's work is too short to pay for the hand-off.
PARALLEL_MIN_FLOPS = 16e6

# "pinned": inside map_batch's parallel region, where matmul must not switch threads
_STATE = {"libs": None, "high": 1, "current": None, "pinned": False}
_POOL = {"executor": None, "workers": 0, "lock": threading.Lock()}


def matmul(a, b, out=None):
    """``np.matmul(a, b, out=out)`` for 2-D ``a`` and ``b`` (or stacks of them), on the
    BLAS threads its size calls for."""
    libs = _STATE["libs"]
    if libs is not None and not _STATE["pinned"]:
        want = _STATE["high"] if 2.0 * a.size * b.shape[-1] >= THRESHOLD_FLOPS else 1
        if want != _STATE["current"]:
            for lib in libs:
                lib.set_num_threads(want)
            _STATE["current"] = want
    return np.matmul(a, b, out=out)


def column_sums(a):
    """``a.sum(axis=0)`` of a 2-D array as one matrix-vector product ``ones @ a``.

    numpy reduces over the rows of a C-ordered matrix one row at a time: for
    a (2048, 16) bias gradient 33 us against 3 us for the product, and the
    product's blocked accumulation is also the more accurate of the two
    (float32 error against a float64 sum, (50176, 32) uniform values: 0.10
    against 0.20).
    """
    return np.matmul(np.ones(a.shape[0], dtype=a.dtype), a)


def add_row_vector(a, v):
    """``a += v`` in place, for a C-contiguous ``a`` whose last axis has ``v``'s length.

    The add runs over rows of about 256 values (``v`` tiled): numpy's loop over
    a short last axis (16 or 32 output channels) costs more than the adds --
    (64, 28, 28, 32) += (32,) 272 -> 185 us. Below 65,536 values the plain add is
    kept: tiling ``v`` costs more than it saves there.
    """
    n = v.shape[0]
    flat = a.reshape(-1)
    reps = max(1, 256 // max(n, 1)) if a.size >= 65536 else 1  # tiling v costs ~6 us: large arrays only
    whole = flat.size // (reps * n) * (reps * n)
    if reps > 1 and whole:
        flat[:whole].reshape(-1, reps * n).__iadd__(np.tile(v, reps))
        if whole < flat.size:
            flat[whole:].reshape(-1, n).__iadd__(v)
    else:
        flat.reshape(-1, n).__iadd__(v)
    return a


@contextlib.contextmanager
def auto_threads(max_threads=None):
    """Within the block, :func:`matmul` picks 1 or ``max_threads`` BLAS threads per product
    (default: the BLAS library's own setting when the block starts); restored on exit."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - installed with scikit-learn
        yield
        return
    if _STATE["libs"] is not None:  # nested (fit calls evaluate): the outer block rules
        yield
        return
    libs = ThreadpoolController().select(user_api="blas").lib_controllers
    saved = [lib.num_threads for lib in libs]
    # "current" starts as the library's own setting: no call at all while the choice agrees
    _STATE.update(libs=libs, high=max_threads or max(saved, default=1),
                  current=saved[0] if len(set(saved)) == 1 else None, pinned=False)
    try:
        yield
    finally:
        _STATE.update(libs=None, current=None, pinned=False)
        for lib, n in zip(libs, saved):
            lib.set_num_threads(n)


def batch_threads(flops: float) -> int:
    """How many threads :func:`map_batch` uses for a batch of ``flops`` operations: inside
    :func:`auto_threads`, all of them from :data:`PARALLEL_MIN_FLOPS` on; otherwise 1."""
    if _STATE["libs"] is None or _STATE["pinned"] or flops < PARALLEL_MIN_FLOPS:
        return 1
    return _STATE["high"]


def map_batch(fn, n: int, flops: float) -> list:
    """``[fn(n0, n1) for each run of samples]``: the batch ``0:n`` in one run, or, when
    :func:`batch_threads` allows, split into that many contiguous runs computed at once
    on as many threads, each with a one-thread BLAS. Results come in batch order, so
    whatever the caller adds up is added in the same order at every call."""
    threads = min(batch_threads(flops), n)
    if threads < 2:
        return [fn(0, n)]
    bounds = [n * t // threads for t in range(threads + 1)]
    runs = [(bounds[t], bounds[t + 1]) for t in range(threads)]
    if _STATE["current"] != 1:
        for lib in _STATE["libs"]:
            lib.set_num_threads(1)
        _STATE["current"] = 1
    _STATE["pinned"] = True
    try:
        futures = [_executor(threads - 1).submit(fn, *run) for run in runs[1:]]
        try:
            first = fn(*runs[0])  # the calling thread takes the first run itself
        finally:  # every run has ended before the region closes, even on an error
            wait(futures)
        return [first] + [f.result() for f in futures]
    finally:
        _STATE["pinned"] = False


def _executor(workers: int) -> ThreadPoolExecutor:
    """The process's worker threads (created on first use, grown when more are asked for)."""
    with _POOL["lock"]:
        if _POOL["workers"] < workers:
            if _POOL["executor"] is not None:
                _POOL["executor"].shutdown(wait=False)
            _POOL.update(executor=ThreadPoolExecutor(workers, thread_name_prefix="minidl"), workers=workers)
        return _POOL["executor"]
