"""Trainable tensors."""

from __future__ import annotations

import contextlib
import threading

import numpy as np

__all__ = ["Parameter", "deferred_init", "is_deferred"]

_STATE = threading.local()


@contextlib.contextmanager
def deferred_init():
    """Build layers without drawing or allocating their weights (for loading).

    Inside the block, built-in layers give each :class:`Parameter` a zero-strided
    read-only placeholder of the right shape and dtype (no memory, no random
    draws) and no ``.grad``; the caller must then assign real arrays (as
    :func:`minidl.load` does after checking the file against those shapes).
    Like PyTorch's ``torch.device("meta")``.

    Yields
    ------
    None
        Only a context: the layers built inside are deferred.

    Examples
    --------
    >>> from minidl import layers
    >>> with deferred_init():
    ...     big = layers.Dense(100_000, 100_000)   # 40 GB of float32 if it were allocated
    >>> big.weight.shape, big.weight.data.strides, is_deferred(big.weight)
    ((100000, 100000), (0, 0), True)
    """
    previous = getattr(_STATE, "active", False)
    _STATE.active = True
    try:
        yield
    finally:
        _STATE.active = previous


def deferring() -> bool:
    """True inside :func:`deferred_init` (in this thread)."""
    return getattr(_STATE, "active", False)


def placeholder(shape, dtype) -> np.ndarray:
    """A zero-strided, read-only array of ``shape``: no memory behind it."""
    return np.broadcast_to(np.zeros((), dtype=dtype), tuple(shape))


def is_deferred(p: "Parameter") -> bool:
    """True when ``p`` still holds a :func:`deferred_init` placeholder.

    Parameters
    ----------
    p : Parameter

    Returns
    -------
    bool

    Examples
    --------
    >>> is_deferred(Parameter(np.zeros(3)))
    False
    """
    return p.grad is None and not p.data.flags.writeable and all(s == 0 for s in p.data.strides)


class Parameter:
    """A trainable array and its gradient, like :class:`torch.nn.Parameter`.

    Parameters
    ----------
    data : ndarray of a floating dtype
        Kept, not copied (a TypeError for anything else).

    Attributes
    ----------
    data : ndarray
        The value. Optimizers update it in place.
    grad : ndarray
        Same shape and dtype as ``data``. ``backward`` *adds* into it (as
        PyTorch accumulates ``.grad``); ``zero_grad()`` resets it.

    Examples
    --------
    >>> p = Parameter(np.ones((2, 3), np.float32))
    >>> p.grad.shape, p.grad.dtype
    ((2, 3), dtype('float32'))
    """

    __slots__ = ("data", "grad")

    def __init__(self, data: np.ndarray):
        if not isinstance(data, np.ndarray) or not np.issubdtype(data.dtype, np.floating):
            raise TypeError(
                "Parameter: data must be a floating-point numpy.ndarray. "
                f"Received: {type(data).__name__} {getattr(data, 'dtype', '')}"
            )
        self.data = data
        # under deferred_init the data is a placeholder: no gradient buffer yet
        self.grad = None if deferring() and not data.flags.writeable else np.zeros_like(data)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of ``data``."""
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        """The dtype of ``data``."""
        return self.data.dtype

    @property
    def size(self) -> int:
        """The number of elements of ``data``."""
        return self.data.size

    def zero_grad(self) -> None:
        """Reset the gradient to zeros (keeping its array, shape and dtype).

        Examples
        --------
        >>> p = Parameter(np.ones(3))
        >>> p.grad += 2.0
        >>> p.zero_grad(); p.grad
        array([0., 0., 0.])
        """
        if self.grad is None or self.grad.shape != self.data.shape or self.grad.dtype != self.data.dtype:
            self.grad = np.zeros_like(self.data)
        else:
            self.grad.fill(0)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"
