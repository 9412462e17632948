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
    return np.maximum(x, 0, dtype=x.dtype)


def relu_backward(grad_output, x):
    r"""Gradient of :func:`relu`: ``grad_output * (x > 0)``.

    Notes
    -----
    At the kink ``x == 0`` the gradient is taken as 0, as in PyTorch.
    Computed as a product with the 0/1 mask (several times faster than
    ``np.where`` on random signs), so a non-finite ``grad_output`` where
    ``x <= 0`` gives nan, not 0.

    Examples
    --------
    >>> relu_backward(np.ones(3), np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 1.])
    """
    return np.multiply(grad_output, x > 0, dtype=grad_output.dtype)
