"""Trainable tensors."""

from __future__ import annotations

import numpy as np

__all__ = ["Parameter"]


class Parameter:
    """A trainable array and its gradient, like :class:`torch.nn.Parameter`.

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
        self.grad = np.zeros_like(data)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    def zero_grad(self) -> None:
        """Reset the gradient to zeros (keeping its array, shape and dtype)."""
        if self.grad is None or self.grad.shape != self.data.shape or self.grad.dtype != self.data.dtype:
            self.grad = np.zeros_like(self.data)
        else:
            self.grad.fill(0)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"
