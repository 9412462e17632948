"""Element-wise activations."""

from __future__ import annotations

import numpy as np

from .._validation import check_array

__all__ = ["relu", "relu_backward"]

_SAME_SIZE_INT = {2: np.int16, 4: np.int32, 8: np.int64}


def relu(x):
    r"""``max(x, 0)``, dtype kept; NaN stays NaN (as :func:`torch.relu`).

    Parameters
    ----------
    x : ndarray
        Any shape.

    Returns
    -------
    ndarray, same shape and dtype as ``x``

    Examples
    --------
    >>> relu(np.array([-1.0, 0.0, 2.0, np.nan]))
    array([ 0.,  0.,  2., nan])
    """
    check_array(x, "x", "relu")
    return np.maximum(x, 0, dtype=x.dtype)


def relu_backward(grad_output, x):
    r"""Gradient of :func:`relu`: ``0 where x <= 0, else grad_output``.

    Parameters
    ----------
    grad_output : ndarray
        dL/d(relu(x)); its dtype is kept.
    x : ndarray
        The forward input, same shape.

    Returns
    -------
    ndarray, dL/dx

    Notes
    -----
    PyTorch's ``threshold_backward``, a select rather than a product with a
    0/1 mask: at the kink ``x == 0`` the gradient is 0; at ``x = NaN`` the
    gradient passes (``NaN <= 0`` is false); where ``x <= 0`` a non-finite
    ``grad_output`` still gives 0 (a product would give ``0 * inf = nan``).
    The zeros are ``+0.0``.

    The select is done on the bits: ``grad_output``'s bits AND a mask that is
    all ones where the gradient passes and all zeros where it does not. This
    costs about what the mask product costs, where ``np.where`` on random signs
    is ~10x slower.

    Examples
    --------
    >>> relu_backward(np.ones(4), np.array([-1.0, 0.0, 2.0, np.nan]))
    array([0., 0., 1., 1.])
    >>> relu_backward(np.array([np.inf, np.nan, 3.0]), np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 3.])
    """
    check_array(grad_output, "grad_output", "relu_backward")
    check_array(x, "x", "relu_backward")
    dtype = grad_output.dtype
    drop = np.asarray(np.less_equal(x, 0))  # asarray: a 0-d x gives a numpy scalar
    as_int = _SAME_SIZE_INT.get(dtype.itemsize) if dtype.kind == "f" else None
    if as_int is None:  # e.g. longdouble, integers
        return np.where(drop, dtype.type(0), grad_output)
    mask = drop.view(np.int8)
    mask -= 1  # 0 where x <= 0, -1 (all bits set) where the gradient passes
    return np.bitwise_and(grad_output.view(as_int), mask, dtype=as_int).view(dtype)
