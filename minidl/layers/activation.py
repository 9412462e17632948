"""Activation layers."""

from __future__ import annotations

import numpy as np  # noqa: F401 - the namespace of the docstring examples

from .. import functional as F
from .._validation import check_array, check_float_dtype
from .base import Layer

__all__ = ["ReLU"]


class ReLU(Layer):
    r"""``max(x, 0)`` element-wise, any shape, dtype kept.

    Notes
    -----
    dL/dx is ``grad_output`` where ``x > 0`` (or ``x`` is nan) and 0 where ``x <= 0``, even
    for a nan/inf ``grad_output`` there; at exactly 0 it is 0 (PyTorch's rules).

    Examples
    --------
    >>> ReLU()(np.array([-1.0, 2.0]))
    array([0., 2.])
    """

    def __init__(self):
        super().__init__()

    def forward(self, x):
        check_array(x, "input", "ReLU")
        check_float_dtype(x, "input", "ReLU")
        self.save_for_backward(x)
        return F.relu(x)

    def backward(self, grad_output):
        (x,) = self.saved_values
        return F.relu_backward(self.check_grad_output(grad_output, x.shape, x.dtype), x)
