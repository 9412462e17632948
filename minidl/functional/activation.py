"""Element-wise activations."""

from __future__ import annotations

import numbers

import numpy as np

from ..validation import check_array, check_float_dtype, check_same_dtype
from ._engine import blas

__all__ = ["relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "sigmoid", "sigmoid_backward",
           "tanh", "tanh_backward", "softmax_backward", "check_negative_slope"]

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

    Shape
    -----
    Any shape; the output has ``x``'s.

    Examples
    --------
    >>> relu(np.array([-1.0, 0.0, 2.0, np.nan]))
    array([ 0.,  0.,  2., nan])
    """
    check_array(x, "x", "relu")
    if x.ndim == 0:
        return np.maximum(x, 0, dtype=x.dtype)
    out = np.empty_like(x)  # x's memory layout (channels-last stays channels-last)
    # one run of samples per thread when the batch is large (minidl.functional._engine.blas.map_batch)
    blas.map_batch(lambda n0, n1: np.maximum(x[n0:n1], 0, out=out[n0:n1], dtype=x.dtype),
                   x.shape[0], x.size * blas.ELEMENT_FLOPS)
    return out


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

    Shape
    -----
    ``grad_output`` and ``x``: the same shape, any; dL/dx: that shape, ``grad_output``'s dtype.

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
    as_int = _SAME_SIZE_INT.get(dtype.itemsize) if dtype.kind == "f" else None
    if as_int is None or grad_output.ndim == 0 or grad_output.shape != np.shape(x):  # e.g. longdouble
        return np.where(np.less_equal(x, 0), dtype.type(0), grad_output)
    out = np.empty_like(grad_output)

    def samples(n0, n1):  # one run of samples per thread when the batch is large (blas.map_batch)
        mask = np.less_equal(x[n0:n1], 0).view(np.int8)
        mask -= 1  # 0 where x <= 0, -1 (all bits set) where the gradient passes
        np.bitwise_and(grad_output[n0:n1].view(as_int), mask, out=out[n0:n1].view(as_int), dtype=as_int)

    blas.map_batch(samples, grad_output.shape[0], grad_output.size * blas.ELEMENT_FLOPS)
    return out


def float_input(x, name, where):
    check_array(x, name, where)
    check_float_dtype(x, name, where)
    return x


def check_grad_pair(grad_output, ref, ref_name, where):
    """``grad_output`` a float array of ``ref``'s shape and dtype (``ref`` is x or the output)."""
    float_input(grad_output, "grad_output", where)
    check_same_dtype(grad_output, ref, "grad_output", ref_name, where)
    if grad_output.shape != ref.shape:
        raise ValueError(
            f"{where}: expected grad_output of shape {ref.shape} (that of {ref_name}), got {grad_output.shape}."
        )


def check_negative_slope(negative_slope, where) -> float:
    """``negative_slope`` as a float, or the TypeError/ValueError that names ``where``.

    Parameters
    ----------
    negative_slope : real number
        Finite (a bool is refused).
    where : str
        The caller, named in error messages.

    Returns
    -------
    float

    Raises
    ------
    TypeError
        Not a real number.
    ValueError
        Not finite.

    Examples
    --------
    >>> check_negative_slope(np.float32(0.5), "LeakyReLU")
    0.5
    """
    if not isinstance(negative_slope, numbers.Real) or isinstance(negative_slope, (bool, np.bool_)):
        raise TypeError(f"{where}: negative_slope must be a real number. Received: negative_slope={negative_slope!r}")
    if not np.isfinite(negative_slope):
        raise ValueError(f"{where}: negative_slope must be finite. Received: negative_slope={negative_slope!r}")
    return float(negative_slope)


def leaky_relu(x, negative_slope=0.01, *, where="leaky_relu"):
    r"""``x`` where ``x > 0``, else ``negative_slope * x``, as :func:`torch.nn.functional.leaky_relu`.

    Parameters
    ----------
    x : ndarray, floating point, any shape (dtype kept)
    negative_slope : float, default 0.01
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
    >>> leaky_relu(np.array([-2.0, 0.0, 3.0]), 0.1)
    array([-0.2,  0. ,  3. ])
    """
    float_input(x, "x", where)
    slope = x.dtype.type(check_negative_slope(negative_slope, where))
    return np.where(x > 0, x, x * slope)


def leaky_relu_backward(grad_output, x, negative_slope=0.01, *, where="leaky_relu_backward"):
    r"""Gradient of :func:`leaky_relu`: ``grad_output`` where ``x > 0``, else ``negative_slope * grad_output``.

    At ``x == 0`` (and for NaN ``x``) the slope is ``negative_slope``, PyTorch's rule.

    Parameters
    ----------
    grad_output : ndarray
        dL/d(leaky_relu(x)), of ``x``'s shape and dtype.
    x : ndarray, floating point
        The forward input.
    negative_slope : float, default 0.01
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
    >>> leaky_relu_backward(np.ones(3), np.array([-2.0, 0.0, 3.0]), 0.1)
    array([0.1, 0.1, 1. ])
    """
    float_input(x, "x", where)
    check_grad_pair(grad_output, x, "x", where)
    slope = x.dtype.type(check_negative_slope(negative_slope, where))
    return np.where(x > 0, grad_output, grad_output * slope)


def sigmoid(x, *, where="sigmoid"):
    r"""``1 / (1 + exp(-x))``, without overflow for any ``x``.

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
    With ``e = exp(-|x|)`` (in (0, 1], never overflows) the value is ``1 / (1 + e)``
    for ``x >= 0`` and ``e / (1 + e)`` for ``x < 0``: both exact rearrangements.

    Examples
    --------
    >>> sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    array([0. , 0.5, 1. ])
    """
    float_input(x, "x", where)
    e = np.exp(-np.abs(x))
    denom = 1 + e
    return np.where(x >= 0, 1 / denom, e / denom).astype(x.dtype, copy=False)


def sigmoid_backward(grad_output, output, *, where="sigmoid_backward"):
    r"""Gradient of :func:`sigmoid` from its output ``s``: ``grad_output * s * (1 - s)``.

    Parameters
    ----------
    grad_output : ndarray
        dL/d(output), of the output's shape and dtype.
    output : ndarray, floating point
        The forward output ``sigmoid(x)`` (the gradient needs only it).
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray
        dL/dx, same shape and dtype as ``output``.

    Shape
    -----
    ``grad_output``, ``output`` and dL/dx: one shape, any.

    Examples
    --------
    >>> sigmoid_backward(np.ones(1), sigmoid(np.zeros(1)))
    array([0.25])
    """
    float_input(output, "output", where)
    check_grad_pair(grad_output, output, "output", where)
    return grad_output * (1 - output) * output


def tanh(x, *, where="tanh"):
    """``np.tanh(x)``, dtype kept.

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
    >>> tanh(np.array([0.0]))
    array([0.])
    """
    float_input(x, "x", where)
    return np.tanh(x)


def tanh_backward(grad_output, output, *, where="tanh_backward"):
    r"""Gradient of :func:`tanh` from its output ``t``: ``grad_output * (1 - t**2)``.

    Parameters
    ----------
    grad_output : ndarray
        dL/d(output), of the output's shape and dtype.
    output : ndarray, floating point
        The forward output ``tanh(x)`` (the gradient needs only it).
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray
        dL/dx, same shape and dtype as ``output``.

    Shape
    -----
    ``grad_output``, ``output`` and dL/dx: one shape, any.

    Examples
    --------
    >>> tanh_backward(np.ones(1), np.zeros(1))
    array([1.])
    """
    float_input(output, "output", where)
    check_grad_pair(grad_output, output, "output", where)
    return grad_output * (1 - output * output)


def softmax_backward(grad_output, output, axis=1, *, where="softmax_backward"):
    r"""Gradient of softmax from its output ``s``: ``s * (g - sum(g * s, axis))``.

    Parameters
    ----------
    grad_output : ndarray
        dL/d(output), of the output's shape and dtype.
    output : ndarray, floating point
        The forward output ``softmax(z, axis)``.
    axis : int, default 1
        The softmax's axis.
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray
        dL/dz, same shape and dtype as ``output``.

    Shape
    -----
    ``grad_output``, ``output`` and dL/dz: one shape, e.g. (N, K) with ``axis=1``.

    Notes
    -----
    :math:`\partial s_i / \partial z_j = s_i (\delta_{ij} - s_j)`, so
    :math:`dz_j = \sum_i g_i s_i (\delta_{ij} - s_j) = s_j (g_j - \sum_i g_i s_i)`
    (PyTorch's ``_softmax_backward_data``).

    Examples
    --------
    >>> softmax_backward(np.array([[1.0, 0.0]]), np.array([[0.5, 0.5]]))
    array([[ 0.25, -0.25]])
    """
    float_input(output, "output", where)
    check_grad_pair(grad_output, output, "output", where)
    gs = grad_output * output
    gs -= output * gs.sum(axis=axis, keepdims=True)
    return gs
