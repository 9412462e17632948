"""SiLU (swish), ``x * sigmoid(x)``, as :func:`torch.nn.functional.silu`.

float16 is computed in float32 and rounded back, as torch does on the CPU.
"""

from __future__ import annotations

import numpy as np

from .activation import check_grad_pair, float_input, sigmoid

__all__ = ["silu", "silu_backward"]


def _compute(x):
    return x.astype(np.float32) if x.dtype == np.float16 else x


def silu(x, *, where="silu"):
    r"""``x * sigmoid(x)`` element-wise (the sigmoid never overflows).

    Parameters
    ----------
    x : ndarray, floating point
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray, same shape and dtype as ``x``

    Shape
    -----
    Any shape; the output has ``x``'s.

    Notes
    -----
    :math:`y = x\,\sigma(x)`, with :math:`\sigma(x) = 1 / (1 + e^{-x})`.

    Examples
    --------
    >>> silu(np.array([-1.0, 0.0, 1.0])).round(4)
    array([-0.2689,  0.    ,  0.7311])
    """
    float_input(x, "x", where)
    xc = _compute(x)
    return (xc * sigmoid(xc)).astype(x.dtype, copy=False)


def silu_backward(grad_output, x, *, where="silu_backward"):
    r"""Gradient of :func:`silu`: ``grad_output * s * (1 + x * (1 - s))`` with ``s = sigmoid(x)``.

    Parameters
    ----------
    grad_output : ndarray
        dL/d(output), of ``x``'s shape and dtype.
    x : ndarray, floating point
        The forward input.
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray
        dL/dx, same shape and dtype as ``x``.

    Shape
    -----
    ``grad_output``, ``x`` and dL/dx: one shape, any.

    Notes
    -----
    Product rule on :math:`y = x\,\sigma(x)` with :math:`\sigma' = \sigma (1 - \sigma)`:

    .. math:: \frac{\partial y}{\partial x} = \sigma(x) + x\,\sigma(x)(1 - \sigma(x))
              = \sigma(x)\,\bigl(1 + x (1 - \sigma(x))\bigr).

    Examples
    --------
    >>> silu_backward(np.ones(1), np.zeros(1))
    array([0.5])
    """
    float_input(x, "x", where)
    check_grad_pair(grad_output, x, "x", where)
    xc = _compute(x)
    s = sigmoid(xc)
    return (_compute(grad_output) * s * (1 + xc * (1 - s))).astype(x.dtype, copy=False)
