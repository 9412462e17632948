"""Matrix products, and the threads minidl's kernels run on.

Inside :func:`auto_threads` -- which the Trainer enters when ``blas_threads="auto"``,
its default -- the BLAS library runs on one thread, and kernels whose batch holds
enough work (at least :data:`PARALLEL_MIN_FLOPS`: a convolution or a Dense layer on
28x28 or 32x32 images, not the reference digits CNN) split it into contiguous runs of
samples, one per core, computed on as many threads (:func:`map_batch`). Each thread
unfolds, multiplies and folds its own samples, so that the copies around the GEMMs, single-threaded in numpy, use every
core too (numpy releases the GIL in both). Small batches stay on the calling thread:
waking threads would cost more than it saves.

BLAS's own threads are not used inside the block: they parallelise only the GEMMs,
and after each multi-threaded GEMM OpenBLAS's workers keep spinning for a while,
taking the cores from any other thread. Measured on 2 cores, MNIST-shaped training
step, medians: 37 ms with BLAS threads chosen per GEMM (the previous ``"auto"``), 52 ms
when those are mixed with split batches, 31 ms with split batches on a one-thread BLAS
(docs/performance.md). Outside the block, :func:`matmul` is ``np.matmul``, BLAS
threads are left alone and no batch is split.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from ...validation import positive_int

__all__ = ["matmul", "column_sums", "add_row_vector", "auto_threads", "map_batch", "batch_runs",
           "blas_libraries", "own_threads", "limit_threads", "PARALLEL_MIN_FLOPS", "MAX_RUNS", "ELEMENT_FLOPS"]

#: Floating-point operations per run of samples: :func:`map_batch` splits a batch
#: into one run per ``PARALLEL_MIN_FLOPS`` of work (so from twice that on), each run
#: about 0.15 ms of one-thread GEMM. Smaller work is not split: waking a thread would
#: cost more than it saves. Measured on 2 cores (forward + backward, medians): conv
#: 16 -> 32 channels on 8x8 at batch 64 (38 + 75 MFLOP) 1.34 -> 0.98 ms, Dense 3136 -> 128
#: at batch 64 1.35 -> 0.99 ms, an epoch of the best digits model 236-256 -> 217-227 ms
#: against a threshold of 40 MFLOP; 8 MFLOP gained nothing more.
PARALLEL_MIN_FLOPS = 16e6

#: The most runs :func:`map_batch` splits one batch into, hence the most threads it
#: uses: the machine's cores, at most 8. A fixed number on a given machine, so that the
#: split (and every sum over it) is the same whatever the threads; fewer, larger runs
#: cost less (MNIST-shaped step on 2 cores: 31 ms with 2 runs, 34 ms with 8).
MAX_RUNS = max(1, min(8, os.cpu_count() or 1))

#: The work of one element of a memory-bound pass (pooling, ReLU: a few loads and
#: stores), in GEMM floating-point operations that take as long: elementwise numpy
#: runs at about 1 ns per float32 element, a one-thread float32 GEMM at about 100
#: GFLOP/s. Such kernels pass ``elements * ELEMENT_FLOPS`` to :func:`map_batch`.
ELEMENT_FLOPS = 100

# Inside auto_threads (in this context: the thread that entered the block and the workers
# it starts), how many threads a large batch is split over; 0 outside. The block's one-item
# list, set to 0 when the block closes, so that a context still holding it (the block was
# left from another context: a generator resumed in another thread) stops splitting too.
_THREADS: contextvars.ContextVar = contextvars.ContextVar("minidl_split_threads", default=(0,))
# Inside a run of map_batch (in the calling thread and the workers): no nested split.
_IN_RUN: contextvars.ContextVar[bool] = contextvars.ContextVar("minidl_in_run", default=False)
# BLAS's thread counts saved by the first of the blocks open in the process (threads may
# train at once), restored when the last one closes.
_BLAS = {"depth": 0, "saved": [], "lock": threading.Lock()}
_POOL = {"executor": None, "workers": 0, "lock": threading.Lock(), "pid": os.getpid()}


def _new_locks_after_fork() -> None:
    """A child is forked with its parent's locks as they were: one held by another thread
    (which the child does not have) would never be released, so the child gets new ones."""
    _BLAS["lock"] = threading.Lock()
    _POOL["lock"] = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_new_locks_after_fork)


def matmul(a, b, out=None):
    """``np.matmul(a, b, out=out)``: the one place minidl's kernels multiply matrices.

    Parameters
    ----------
    a, b : ndarray
        2-D, or stacks of 2-D matrices (as ``np.matmul`` takes them).
    out : ndarray, optional

    Returns
    -------
    ndarray
        ``out`` when given.

    Examples
    --------
    >>> matmul(np.eye(2), np.arange(4.0).reshape(2, 2))
    array([[0., 1.],
           [2., 3.]])
    """
    return np.matmul(a, b, out=out)


def column_sums(a):
    """``a.sum(axis=0)`` of a 2-D array as one matrix-vector product ``ones @ a``.

    numpy reduces over the rows of a C-ordered matrix one row at a time: for
    a (2048, 16) bias gradient 33 us against 3 us for the product, and the
    product's blocked accumulation is also the more accurate of the two
    (float32 error against a float64 sum, (50176, 32) uniform values: 0.10
    against 0.20).

    Parameters
    ----------
    a : ndarray, 2-D

    Returns
    -------
    ndarray, shape (a.shape[1],), ``a``'s dtype

    Examples
    --------
    >>> column_sums(np.arange(6.0).reshape(3, 2))
    array([6., 9.])
    """
    return np.matmul(np.ones(a.shape[0], dtype=a.dtype), a)


def add_row_vector(a, v):
    """``a += v`` in place, for a C-contiguous ``a`` whose last axis has ``v``'s length.

    The add runs over rows of about 256 values (``v`` tiled): numpy's loop over
    a short last axis (16 or 32 output channels) costs more than the adds --
    (64, 28, 28, 32) += (32,) 272 -> 185 us. Below 65,536 values the plain add is
    kept: tiling ``v`` costs more than it saves there.

    Parameters
    ----------
    a : ndarray, C-contiguous
        Changed in place; its last axis has ``len(v)`` values.
    v : ndarray, 1-D, ``a``'s dtype

    Returns
    -------
    ndarray
        ``a`` itself.

    Examples
    --------
    >>> a = np.zeros((2, 3)); add_row_vector(a, np.arange(3.0))
    array([[0., 1., 2.],
           [0., 1., 2.]])
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
    """Within the block, BLAS runs on one thread and :func:`map_batch` splits large
    batches over ``max_threads`` threads (default: the BLAS library's own thread
    count when the block starts, i.e. the cores, or what ``OPENBLAS_NUM_THREADS``
    or an outer :func:`threadpoolctl.threadpool_limits` set); BLAS is restored on exit.

    The split applies to the thread that entered the block (and the workers it
    starts), not to other threads of the process; when several threads are inside
    blocks at once (two models trained at once), BLAS stays on one thread until the
    last of them leaves, and each thread's batches split exactly as they would alone.

    Parameters
    ----------
    max_threads : int, optional
        How many threads a large batch is computed on (at most :data:`MAX_RUNS` are used);
        at least 1. None: BLAS's own thread count.

    Yields
    ------
    None
        Only a context (the Trainer enters it with ``blas_threads="auto"``).

    Examples
    --------
    >>> with auto_threads(max_threads=2):
    ...     batch_runs(64, 1e9) == MAX_RUNS, batch_runs(64, 1e3)
    (True, 1)
    >>> batch_runs(64, 1e9)  # outside the block: never split
    1
    """
    if _THREADS.get()[0]:  # nested (fit calls evaluate): the outer block rules
        yield
        return
    # a bad value raises before anything changes
    limit = 0 if max_threads is None else positive_int(max_threads, "max_threads", "auto_threads")
    with _BLAS["lock"]:  # the first block open in the process sets BLAS to one thread
        if _BLAS["depth"] == 0:
            _BLAS["saved"] = [(lib, lib.num_threads) for lib in blas_libraries()]
            for lib, n in _BLAS["saved"]:
                if n != 1:
                    lib.set_num_threads(1)
        _BLAS["depth"] += 1
        cores = _own_threads()
        # the setting can be ignored in this thread (threadpoolctl lets one thread at a time set
        # OpenBLAS's count, see _release): then the runs stay on this thread
        deaf = any(lib.num_threads != 1 for lib, _ in _BLAS["saved"])
    block = [1 if deaf else limit or cores]
    token = _THREADS.set(block)
    try:
        yield
    finally:
        block[0] = 0
        with contextlib.suppress(ValueError):  # left from another context: ended by block[0] = 0
            _THREADS.reset(token)
        with _BLAS["lock"]:  # the last one to close restores it
            _BLAS["depth"] -= 1
            if _BLAS["depth"] == 0:
                for lib, n in _BLAS["saved"]:
                    if n != 1:
                        lib.set_num_threads(n)
                _BLAS["saved"] = []
        _release(blas_libraries())


def own_threads() -> int:
    """BLAS's own thread count: what :func:`auto_threads` splits over by default.

    The most threads of the BLAS libraries loaded (the cores, or what
    ``OPENBLAS_NUM_THREADS`` or an outer :func:`threadpoolctl.threadpool_limits` set),
    as the first of the open :func:`auto_threads` blocks found it (inside, BLAS runs
    on one thread); 1 without threadpoolctl. :func:`minidl.get_num_threads` returns it
    unless :func:`minidl.set_num_threads` was called.

    Returns
    -------
    int
        At least 1.

    Examples
    --------
    >>> with auto_threads():
    ...     inside = own_threads()
    >>> inside == own_threads()  # BLAS's one thread inside the block is not its own count
    True
    """
    with _BLAS["lock"]:
        return _own_threads()


def _own_threads() -> int:
    """:func:`own_threads`, with ``_BLAS["lock"]`` held."""
    counts = [n for _, n in _BLAS["saved"]] if _BLAS["depth"] else [lib.num_threads for lib in blas_libraries()]
    return max(counts, default=1)


def blas_libraries() -> list:
    """The BLAS libraries loaded in this process, as :mod:`threadpoolctl` controllers
    (whose ``num_threads`` and ``set_num_threads`` act on the live library).

    Finding them reads the process's memory map: about 2 ms, which
    :func:`auto_threads` used to spend on every ``fit``, ``evaluate`` and ``predict``
    (6 % of a digits epoch). The list is kept, and looked for again only in a forked
    child or after new modules were imported (which is how another BLAS gets loaded).

    Returns
    -------
    list
        ``threadpoolctl`` library controllers; empty without threadpoolctl.

    Examples
    --------
    >>> blas_libraries() is blas_libraries()  # found once
    True
    """
    key = (os.getpid(), len(sys.modules))
    if _LIBS.get("key") != key:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - installed with scikit-learn
            libs = []
        else:
            libs = ThreadpoolController().select(user_api="blas").lib_controllers
        _LIBS.update(key=(os.getpid(), len(sys.modules)), libs=libs)  # after the imports above
    return _LIBS["libs"]


_LIBS: dict = {}


@contextlib.contextmanager
def limit_threads(n: int):
    """Within the block, every BLAS library runs on ``n`` threads; restored on exit.
    :func:`threadpoolctl.threadpool_limits` with ``user_api="blas"``, without looking
    for the libraries again each time (:func:`blas_libraries`).

    Parameters
    ----------
    n : int
        Threads, at least 1.

    Yields
    ------
    None
        Only a context (the Trainer enters it with an integer ``blas_threads``).

    Warns
    -----
    RuntimeWarning
        A library keeps its thread count: another thread is inside a block that set it
        (threadpoolctl lets one thread at a time set OpenBLAS's threads). Only what the
        block changed is restored.

    Examples
    --------
    >>> with limit_threads(1):
    ...     all(lib.num_threads == 1 for lib in blas_libraries())
    True
    """
    n = positive_int(n, "n", "limit_threads")
    libs = blas_libraries()
    saved = [lib.num_threads for lib in libs]
    for lib in libs:
        lib.set_num_threads(n)
    changed = [(lib, was) for lib, was in zip(libs, saved) if lib.num_threads != was]  # restored on exit
    deaf = [lib for lib in libs if lib.num_threads > n]  # another thread controls it (more than n: capped)
    if deaf:
        names = ", ".join(getattr(lib, "internal_api", "BLAS") for lib in deaf)
        warnings.warn(
            f"limit_threads({n}) (Trainer blas_threads={n}): {names} keeps {deaf[0].num_threads} threads in "
            "this thread, because another thread is inside a block that set BLAS's threads (threadpoolctl "
            "lets one thread at a time set them). Train in that thread, or start the process with "
            f"OPENBLAS_NUM_THREADS={n}.", RuntimeWarning, stacklevel=3)
    try:
        yield
    finally:
        for lib, was in changed:
            lib.set_num_threads(was)
        _release(libs)


def _release(libs) -> None:
    """Let other threads set BLAS's threads again once this thread's block has ended.

    threadpoolctl (3.8) lets only the thread that first set OpenBLAS's count change it,
    silently ignoring every other thread, until that thread lets go (its own
    ``threadpool_limits`` does on exit). Without this, ``Trainer(blas_threads=1)`` in a
    background thread was ignored for good once the main thread had run a ``fit``: BLAS on
    2 threads, 3.3 s against 0.37 s. A thread that does not control BLAS changes nothing here.
    """
    for cls in {type(lib) for lib in libs}:
        clear = getattr(cls, "clear_controlling_thread", None)
        if callable(clear):
            clear()


def batch_runs(n: int, flops: float) -> int:
    """How many runs of samples :func:`map_batch` splits a batch of ``n`` samples and
    ``flops`` operations into: inside :func:`auto_threads`, one per
    :data:`PARALLEL_MIN_FLOPS` of work, at most :data:`MAX_RUNS` and ``n``; otherwise
    (and inside a split batch) 1.

    The count depends on the work (and the machine, through :data:`MAX_RUNS`), never
    on the number of threads, so that sums over the runs (a weight gradient) come out
    the same, bit for bit, whatever the threads: on one machine, a seeded training run
    trains the same model whether its runs are computed on one thread (under
    ``OPENBLAS_NUM_THREADS=1``) or on every core.

    Parameters
    ----------
    n : int
        Samples in the batch.
    flops : float
        Its work, in GEMM floating-point operations (``elements * ELEMENT_FLOPS`` for
        memory-bound passes).

    Returns
    -------
    int
        Runs, from 1 to ``min(n, MAX_RUNS)``.

    Examples
    --------
    >>> batch_runs(64, 1e12)  # outside auto_threads
    1
    """
    if not _THREADS.get()[0] or _IN_RUN.get() or flops < 2 * PARALLEL_MIN_FLOPS:
        return 1
    return int(max(1, min(n, MAX_RUNS, flops // PARALLEL_MIN_FLOPS)))


def map_batch(fn, n: int, flops: float) -> list:
    """``[fn(n0, n1) for each run of samples]``: the batch ``0:n`` in one run, or, inside
    :func:`auto_threads`, in the :func:`batch_runs` contiguous runs its work calls for,
    computed on up to as many threads (each thread takes a contiguous block of runs).
    Results come in batch order, so whatever the caller adds up is added in the same
    order at every call, whatever the number of threads.

    Parameters
    ----------
    fn : callable ``fn(n0, n1)``
        Computes samples ``n0:n1`` (writing into its own block of a shared output, or
        returning a partial result). It must be safe to run on several threads at once
        on disjoint runs.
    n : int
        Samples in the batch.
    flops : float
        The batch's work (see :func:`batch_runs`).

    Returns
    -------
    list
        ``fn``'s results, in batch order.

    Examples
    --------
    >>> with auto_threads(max_threads=2):
    ...     map_batch(lambda n0, n1: (n0, n1), 5, flops=2 * PARALLEL_MIN_FLOPS)  # on 2 or more cores
    [(0, 2), (2, 5)]
    """
    count = batch_runs(n, flops)
    if count == 1:  # the usual case for small batches: no lists, no threads
        return [fn(0, n)]
    runs = [(n * r // count, n * (r + 1) // count) for r in range(count)]
    threads = min(_THREADS.get()[0], count)
    token = _IN_RUN.set(True)  # before the contexts are copied: the workers see it too
    try:
        if threads < 2:
            return [fn(*run) for run in runs]
        blocks = [runs[count * t // threads : count * (t + 1) // threads] for t in range(threads)]
        # each worker block in a copy of the caller's context: numpy's error state (np.errstate)
        # is a context variable, which the pool's threads would otherwise not see
        futures = [_executor(threads - 1).submit(contextvars.copy_context().run, _run_block, fn, block)
                   for block in blocks[1:]]
        try:
            first = _run_block(fn, blocks[0])  # the calling thread takes the first block itself
        finally:  # every run has ended before the region closes, even on an error
            wait(futures)
        return first + [result for f in futures for result in f.result()]
    finally:
        _IN_RUN.reset(token)


def _run_block(fn, block):
    return [fn(*run) for run in block]


def _executor(workers: int) -> ThreadPoolExecutor:
    """The process's worker threads (created on first use, grown when more are asked for).

    A process forked from one that had them (``multiprocessing``'s fork start method)
    inherits the executor but not its threads: it gets a new one, instead of waiting
    forever for threads that do not exist.
    """
    with _POOL["lock"]:
        if _POOL["pid"] != os.getpid():
            _POOL.update(executor=None, workers=0, pid=os.getpid())
        if _POOL["workers"] < workers:
            if _POOL["executor"] is not None:
                _POOL["executor"].shutdown(wait=False)
            _POOL.update(executor=ThreadPoolExecutor(workers, thread_name_prefix="minidl"), workers=workers)
        return _POOL["executor"]
