"""ELU, Softplus, Hardswish, Mish and PReLU, as :mod:`torch.nn.functional`'s, each forward
next to its backward. float16 is computed in float32 and rounded back, as torch does on the CPU.
The derivations are in docs/derivations/activations.md.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..validation import check_same_dtype
from .activation import check_grad_pair, float_input, sigmoid

__all__ = ["elu", "elu_backward", "softplus", "softplus_backward", "hardswish", "hardswish_backward",
           "mish", "mish_backward", "prelu", "prelu_backward", "check_real"]


def check_real(value, name, where, *, finite=True, nonzero=False) -> float:
    """``value`` as a float, or the TypeError/ValueError that names ``where`` and ``name``.

    Parameters
    ----------
    value : real number
        A bool is refused.
    name : str
        The argument's name, for the message.
    where : str
        The caller, named in error messages.
    finite : bool, default True
        Refuse inf (nan is always refused).
    nonzero : bool, default False
        Refuse 0.

    Returns
    -------
    float

    Raises
    ------
    TypeError
        Not a real number.
    ValueError
        nan, inf (when ``finite``), or 0 (when ``nonzero``).

    Examples
    --------
    >>> check_real(np.float32(0.5), "alpha", "ELU")
    0.5
    >>> check_real(0, "beta", "Softplus", nonzero=True)
    Traceback (most recent call last):
    ...
    ValueError: Softplus: beta must be a finite number other than 0. Received: beta=0
    """
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: {name} must be a real number. Received: {name}={value!r}")
    wanted = ("a finite number" if finite else "a number (not nan)") + (" other than 0" if nonzero else "")
    if np.isnan(value) or (finite and not np.isfinite(value)) or (nonzero and value == 0):
        raise ValueError(f"{where}: {name} must be {wanted}. Received: {name}={value!r}")
    return float(value)


def _compute(x):
    """The array itself, or in float32 when it is float16 (torch's "opmath" type for half)."""
    return x.astype(np.float32) if x.dtype == np.float16 else x


def elu(x, alpha=1.0, *, where="elu"):
    r"""``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``, as :func:`torch.nn.functional.elu`.

    Parameters
    ----------
    x : ndarray, floating point
    alpha : float, default 1.0
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray, same shape and dtype as ``x``

    Shape
    -----
    Any shape; the output has ``x``'s.

    Examples
    --------
    >>> elu(np.array([-1.0, 0.0, 2.0])).round(4)
    array([-0.6321,  0.    ,  2.    ])
    """
    float_input(x, "x", where)
    alpha = check_real(alpha, "alpha", where)
    xc = _compute(x)
    neg = xc.dtype.type(alpha) * np.expm1(np.minimum(xc, 0))  # min: no overflow where x > 0
    return np.where(xc > 0, xc, neg).astype(x.dtype, copy=False)


def elu_backward(grad_output, x, alpha=1.0, *, where="elu_backward"):
    r"""Gradient of :func:`elu`: ``grad_output`` where ``x > 0``, else ``grad_output * alpha * exp(x)``.

    At ``x == 0`` the slope is ``alpha`` (torch's rule: the ``x <= 0`` branch).

    Parameters
    ----------
    grad_output : ndarray
        dL/d(output), of ``x``'s shape and dtype.
    x : ndarray, floating point
        The forward input.
    alpha : float, default 1.0
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray
        dL/dx, same shape and dtype as ``x``.

    Shape
    -----
    ``grad_output``, ``x`` and dL/dx: one shape, any.

    Examples
    --------
    >>> elu_backward(np.ones(3), np.array([-1.0, 0.0, 2.0]), alpha=2.0).round(4)
    array([0.7358, 2.    , 1.    ])
    """
    float_input(x, "x", where)
    check_grad_pair(grad_output, x, "x", where)
    alpha = check_real(alpha, "alpha", where)
    xc, gc = _compute(x), _compute(grad_output)
    slope = xc.dtype.type(alpha) * np.exp(np.minimum(xc, 0))
    return np.where(xc > 0, gc, gc * slope).astype(x.dtype, copy=False)


def softplus(x, beta=1.0, threshold=20.0, *, where="softplus"):
    r"""``log(1 + exp(beta * x)) / beta``, and ``x`` where ``beta * x > threshold``.

    As :func:`torch.nn.functional.softplus`; ``exp`` never overflows (``np.logaddexp``).

    Parameters
    ----------
    x : ndarray, floating point
    beta : float, default 1.0
        Not 0.
    threshold : float, default 20.0
        Above it (``beta * x > threshold``) the output is ``x`` itself.
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray, same shape and dtype as ``x``

    Shape
    -----
    Any shape; the output has ``x``'s.

    Examples
    --------
    >>> softplus(np.array([-1.0, 0.0, 30.0])).round(4)
    array([ 0.3133,  0.6931, 30.    ])
    """
    float_input(x, "x", where)
    beta = check_real(beta, "beta", where, nonzero=True)
    threshold = check_real(threshold, "threshold", where, finite=False)
    xc = _compute(x)
    xb = xc * xc.dtype.type(beta)
    soft = np.logaddexp(xc.dtype.type(0), xb) / xc.dtype.type(beta)
    return np.where(xb > threshold, xc, soft).astype(x.dtype, copy=False)


def softplus_backward(grad_output, x, beta=1.0, threshold=20.0, *, where="softplus_backward"):
    r"""Gradient of :func:`softplus`: ``grad_output * sigmoid(beta * x)``, ``grad_output`` above the threshold.

    Parameters
    ----------
    grad_output : ndarray
        dL/d(output), of ``x``'s shape and dtype.
    x : ndarray, floating point
        The forward input.
    beta : float, default 1.0
    threshold : float, default 20.0
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray
        dL/dx, same shape and dtype as ``x``.

    Shape
    -----
    ``grad_output``, ``x`` and dL/dx: one shape, any.

    Examples
    --------
    >>> softplus_backward(np.ones(2), np.array([0.0, 30.0]))
    array([0.5, 1. ])
    """
    float_input(x, "x", where)
    check_grad_pair(grad_output, x, "x", where)
    beta = check_real(beta, "beta", where, nonzero=True)
    threshold = check_real(threshold, "threshold", where, finite=False)
    xc, gc = _compute(x), _compute(grad_output)
    xb = xc * xc.dtype.type(beta)
    return np.where(xb > threshold, gc, gc * sigmoid(xb)).astype(x.dtype, copy=False)


def hardswish(x, *, where="hardswish"):
    r"""``x * min(max(x + 3, 0), 6) / 6``, as :func:`torch.nn.functional.hardswish`.

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

    Examples
    --------
    >>> hardswish(np.array([-4.0, 0.0, 1.5, 4.0]))
    array([-0.   ,  0.   ,  1.125,  4.   ])
    """
    float_input(x, "x", where)
    xc = _compute(x)
    return (xc * np.clip(xc + 3, 0, 6) / 6).astype(x.dtype, copy=False)


def hardswish_backward(grad_output, x, *, where="hardswish_backward"):
    r"""Gradient of :func:`hardswish`: 0 up to -3, ``grad_output * (x / 3 + 1/2)`` between, ``grad_output`` from 3.

    At the kinks torch's rule: slope 0 at ``x == -3`` and 1 at ``x == 3``.

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

    Examples
    --------
    >>> hardswish_backward(np.ones(4), np.array([-4.0, 0.0, 1.5, 4.0]))
    array([0. , 0.5, 1. , 1. ])
    """
    float_input(x, "x", where)
    check_grad_pair(grad_output, x, "x", where)
    xc, gc = _compute(x), _compute(grad_output)
    slope = np.where(xc <= -3, xc.dtype.type(0), np.where(xc < 3, xc / 3 + xc.dtype.type(0.5), xc.dtype.type(1)))
    return (gc * slope).astype(x.dtype, copy=False)


def mish(x, *, where="mish"):
    r"""``x * tanh(softplus(x))``, as :func:`torch.nn.functional.mish`.

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

    Examples
    --------
    >>> mish(np.array([-1.0, 0.0, 1.0])).round(4)
    array([-0.3034,  0.    ,  0.8651])
    """
    float_input(x, "x", where)
    xc = _compute(x)
    return (xc * np.tanh(np.logaddexp(xc.dtype.type(0), xc))).astype(x.dtype, copy=False)


def mish_backward(grad_output, x, *, where="mish_backward"):
    r"""Gradient of :func:`mish`: ``grad_output * (t + x * sigmoid(x) * (1 - t**2))``, ``t = tanh(softplus(x))``.

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

    Examples
    --------
    >>> mish_backward(np.ones(1), np.zeros(1)).round(4)
    array([0.6])
    """
    float_input(x, "x", where)
    check_grad_pair(grad_output, x, "x", where)
    xc, gc = _compute(x), _compute(grad_output)
    t = np.tanh(np.logaddexp(xc.dtype.type(0), xc))
    return (gc * (t + xc * sigmoid(xc) * (1 - t * t))).astype(x.dtype, copy=False)


def _channel_view(weight, x, where):
    """``weight`` shaped to broadcast along axis 1 of ``x`` (one value: any shape of ``x``)."""
    if weight.ndim != 1 or (weight.size != 1 and (x.ndim < 2 or x.shape[1] != weight.size)):
        raise ValueError(
            f"{where}: expected weight of shape (1,) or (C,) with C = input.shape[1], got weight of shape "
            f"{weight.shape} for input of shape {x.shape}. Set num_parameters to the number of channels, or to 1."
        )
    return weight if weight.size == 1 else weight.reshape((-1,) + (1,) * (x.ndim - 2))


def prelu(x, weight, *, where="prelu"):
    r"""``x`` where ``x > 0``, else ``weight * x``, as :func:`torch.nn.functional.prelu`.

    Parameters
    ----------
    x : ndarray, floating point
    weight : ndarray of x's dtype, shape (1,) or (C,)
        The slopes: one for every element, or one per channel (axis 1 of ``x``).
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray, same shape and dtype as ``x``

    Raises
    ------
    ValueError
        ``weight`` neither one value nor one per channel.

    Shape
    -----
    ``x``: any shape, ``(N, C, *)`` when ``weight`` has C > 1 values; the output has ``x``'s.

    Examples
    --------
    >>> prelu(np.array([[-1.0, 2.0], [-3.0, 4.0]]), np.array([0.1, 0.5]))
    array([[-0.1,  2. ],
           [-0.3,  4. ]])
    """
    float_input(x, "x", where)
    float_input(weight, "weight", where)
    check_same_dtype(weight, x, "weight", "x", where)
    xc = _compute(x)
    w = _compute(_channel_view(weight, x, where))
    return np.where(xc > 0, xc, w * xc).astype(x.dtype, copy=False)


def prelu_backward(grad_output, x, weight, *, where="prelu_backward"):
    r"""Gradients of :func:`prelu`: ``(dL/dx, dL/dweight)``.

    dL/dx is ``grad_output`` where ``x > 0``, else ``weight * grad_output``; dL/dweight sums
    ``x * grad_output`` where ``x <= 0`` over every axis but the channel axis (over all, for one
    weight). At ``x == 0`` the slope is ``weight`` (torch's rule).

    Parameters
    ----------
    grad_output : ndarray
        dL/d(output), of ``x``'s shape and dtype.
    x : ndarray, floating point
        The forward input.
    weight : ndarray, shape (1,) or (C,)
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    grad_input : ndarray
        dL/dx, ``x``'s shape and dtype.
    grad_weight : ndarray
        dL/dweight, ``weight``'s shape and dtype.

    Shape
    -----
    ``grad_output``, ``x``: one shape, ``(N, C, *)`` for C > 1 weights; ``grad_weight``: ``weight``'s.

    Examples
    --------
    >>> dx, dw = prelu_backward(np.ones((1, 2)), np.array([[-1.0, 2.0]]), np.array([0.25]))
    >>> dx, dw
    (array([[0.25, 1.  ]]), array([-1.]))
    """
    float_input(x, "x", where)
    check_grad_pair(grad_output, x, "x", where)
    float_input(weight, "weight", where)
    check_same_dtype(weight, x, "weight", "x", where)
    xc, gc = _compute(x), _compute(grad_output)
    w = _compute(_channel_view(weight, x, where))
    positive = xc > 0
    grad_input = np.where(positive, gc, w * gc).astype(x.dtype, copy=False)
    contrib = np.where(positive, xc.dtype.type(0), xc * gc)
    axes = tuple(i for i in range(x.ndim) if weight.size == 1 or i != 1)
    grad_weight = contrib.sum(axis=axes).reshape(weight.shape).astype(weight.dtype, copy=False)
    return grad_input, grad_weight
