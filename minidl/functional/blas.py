"""Matrix products with BLAS threads chosen by the size of each product.

Small GEMMs (the 8x8 digits CNN's) run fastest on one BLAS thread: waking worker
threads costs more than they save. Large ones (28x28 and 32x32 images) run up to
1.6x faster on every core. Inside :func:`auto_threads` -- which the Trainer enters
when ``blas_threads="auto"``, its default -- :func:`matmul` sets the BLAS library
to one thread below :data:`THRESHOLD_FLOPS` and to all of its threads above,
switching only when the choice changes (one C call, about 0.6 us). Outside it,
:func:`matmul` is ``np.matmul`` and BLAS threads are left alone.
"""

from __future__ import annotations

import contextlib

import numpy as np

__all__ = ["matmul", "column_sums", "add_row_vector", "auto_threads", "THRESHOLD_FLOPS"]

#: Floating-point operations (2 * M * N * K) from which a GEMM uses every BLAS thread.
#: Measured crossover on 2-core machines; see docs/performance.md.
THRESHOLD_FLOPS = 4e6

_STATE = {"libs": None, "high": 1, "current": None}


def matmul(a, b, out=None):
    """``np.matmul(a, b, out=out)`` for 2-D ``a`` and ``b`` (or stacks of them), on the
    BLAS threads its size calls for.

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
    libs = _STATE["libs"]
    if libs is not None:
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
    """Within the block, :func:`matmul` picks 1 or ``max_threads`` BLAS threads per product
    (default: the BLAS library's own setting when the block starts); restored on exit.

    Parameters
    ----------
    max_threads : int, optional
        The thread count for products of at least ``THRESHOLD_FLOPS``.

    Yields
    ------
    None
        Only a context (the Trainer enters it with ``blas_threads="auto"``).

    Examples
    --------
    >>> with auto_threads():
    ...     matmul(np.ones((2, 3)), np.ones((3, 2)))  # 24 FLOP: on one thread
    array([[3., 3.],
           [3., 3.]])
    """
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
                  current=saved[0] if len(set(saved)) == 1 else None)
    try:
        yield
    finally:
        _STATE.update(libs=None, current=None)
        for lib, n in zip(libs, saved):
            lib.set_num_threads(n)
