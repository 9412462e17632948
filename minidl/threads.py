"""Thread settings in one place: :func:`set_num_threads` and :func:`get_num_threads`, as in PyTorch.

The setting is the number of threads minidl uses for intra-op parallelism, process-wide:
inside ``fit``, ``evaluate`` and ``predict`` of a ``Trainer(blas_threads="auto")`` (the
default), a batch with enough work is cut into runs of samples that are computed on up to
that many threads, while BLAS runs on one (:mod:`minidl.functional._engine.blas`). By
default it is BLAS's own thread count (the cores, or ``OPENBLAS_NUM_THREADS``), as it was
before there was a setting.

The runs a batch is cut into depend on the machine's cores only, never on this setting, so a
seeded training run gives the same model, bit for bit, on 1 thread or on every core. An int
``Trainer(blas_threads=n)`` does not read the setting: it fixes BLAS's own threads instead
(no split), as it always did.
"""

from __future__ import annotations

import contextlib
import functools

from .functional._engine import blas
from .validation import check_int

__all__ = ["set_num_threads", "get_num_threads"]

# The count set by set_num_threads; None: BLAS's own thread count (blas.own_threads).
_SETTING: dict = {"threads": None}


def set_num_threads(n) -> None:
    """Set the number of threads minidl uses for intra-op parallelism, process-wide.

    As :func:`torch.set_num_threads`. A ``Trainer`` with ``blas_threads="auto"`` (its
    default) computes the runs of a large batch on up to ``n`` threads (at most
    :data:`minidl.functional._engine.blas.MAX_RUNS`, the runs a batch is cut into).
    ``n=1`` keeps all the work on the calling thread. The results do not change
    with ``n``: the runs depend on the machine's cores only.

    Parameters
    ----------
    n : int >= 1 or None
        Threads. None (a minidl addition) goes back to the default, BLAS's own thread
        count (:func:`minidl.functional._engine.blas.own_threads`), which then follows
        ``OPENBLAS_NUM_THREADS`` or an outer :func:`threadpoolctl.threadpool_limits` again.

    Raises
    ------
    TypeError
        ``n`` is not an int (bools and floats included) or None.
    ValueError
        ``n`` is below 1. Either leaves the setting as it was.

    Examples
    --------
    >>> import minidl as mdl
    >>> mdl.set_num_threads(1)  # every batch computed on the calling thread
    >>> mdl.get_num_threads()
    1
    >>> mdl.set_num_threads(None)  # back to the default
    """
    if n is not None:
        n = check_int(n, "n", "minidl.set_num_threads", 1,
                      hint=" (e.g. 1 for the calling thread only, os.cpu_count() for every core; "
                      "None for the default, BLAS's own thread count)")
    _SETTING["threads"] = n


def get_num_threads() -> int:
    """The number of threads minidl uses for intra-op parallelism.

    As :func:`torch.get_num_threads`: the value of the last :func:`set_num_threads`,
    else BLAS's own thread count (the cores, or ``OPENBLAS_NUM_THREADS``; 1 without
    :mod:`threadpoolctl`), read when called. ``Trainer(blas_threads="auto")`` passes it
    to :func:`minidl.functional._engine.blas.auto_threads` as ``max_threads``.

    Returns
    -------
    int
        At least 1.

    Examples
    --------
    >>> import minidl as mdl
    >>> mdl.get_num_threads() >= 1
    True
    >>> mdl.set_num_threads(2); mdl.get_num_threads()
    2
    >>> mdl.set_num_threads(None)
    """
    n = _SETTING["threads"]
    return blas.own_threads() if n is None else n


def _blas_context(blas_threads):
    """The context a Trainer runs in for ``blas_threads``: None leaves BLAS alone, "auto"
    is :func:`minidl.functional._engine.blas.auto_threads` on :func:`get_num_threads`
    threads, an int :func:`~minidl.functional._engine.blas.limit_threads`."""
    if blas_threads is None:
        return contextlib.nullcontext()
    if isinstance(blas_threads, str):  # "auto": one-thread BLAS, large batches split over the threads
        return blas.auto_threads(max_threads=get_num_threads())
    return blas.limit_threads(int(blas_threads))


def limited_blas(method):
    """Run ``method`` with the BLAS thread pool limited to ``self.blas_threads``."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with _blas_context(self.blas_threads):
            return method(self, *args, **kwargs)

    return wrapper
