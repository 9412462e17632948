"""A slow, obviously-correct loop implementation of 2-D convolution and its backward.

This module is the *independent* oracle for ``tests/test_conv.py`` (moved here from ``tests/``). It does not
import :mod:`minidl` at all: the padding rules ('same', 'valid', ints, pairs,
explicit ``((top, bottom), (left, right))``), the output size, the forward
pass and the three gradients are all re-derived here straight from the
definition (``docs/conv_backprop.md``)

    Y[n, o, i, j] = b[o] + sum_{c, p, q} W[o, c, p, q] * Xpad[n, c, sh*i + dh*p, sw*j + dw*q]

with explicit Python loops over every index. The backward pass loops over the
very same sum and applies the chain rule term by term: each term
``W[o,c,p,q] * Xpad[n,c,u,v]`` of ``Y[n,o,i,j]`` sends ``G[n,o,i,j] * Xpad[n,c,u,v]``
to ``dW[o,c,p,q]``, ``G[n,o,i,j] * W[o,c,p,q]`` to ``dXpad[n,c,u,v]``, and the
bias term sends ``G[n,o,i,j]`` to ``db[o]``. ``dX`` is ``dXpad`` with the zero
padding cropped away (padding is a constant, it has no gradient).

Everything is computed in float64 whatever the input dtype.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "as_pair",
    "same_padding",
    "explicit_padding",
    "output_size",
    "pad_input",
    "conv2d_forward",
    "conv2d_backward",
]


def as_pair(value):
    """``3 -> (3, 3)``; ``(2, 3) -> (2, 3)``.

    Parameters
    ----------
    value : int or (int, int)

    Returns
    -------
    (int, int)

    Examples
    --------
    >>> as_pair(3), as_pair((2, 3))
    ((3, 3), (2, 3))
    """
    if isinstance(value, (tuple, list)):
        a, b = value
        return int(a), int(b)
    return int(value), int(value)


def same_padding(size, kernel, stride, dilation):
    """Keras/TensorFlow 'same' padding along one axis, for any stride.

    The output must have ``ceil(size / stride)`` elements. The last window
    starts at ``(out - 1) * stride`` and spans ``(kernel - 1) * dilation + 1``
    elements, so the padded input must be at least
    ``(out - 1) * stride + (kernel - 1) * dilation + 1`` long. The missing
    amount (never negative) is split in two, the odd element going to the
    end (bottom / right).

    Parameters
    ----------
    size, kernel, stride, dilation : int

    Returns
    -------
    (before, after) : (int, int)

    Examples
    --------
    >>> same_padding(8, 4, 1, 1), same_padding(8, 3, 2, 1)
    ((1, 2), (0, 1))
    """
    out = math.ceil(size / stride)
    needed = (out - 1) * stride + (kernel - 1) * dilation + 1
    total = max(needed - size, 0)
    before = total // 2
    after = total - before
    return before, after


def explicit_padding(padding, input_hw, kernel, stride, dilation):
    """Any padding spec -> ``(top, bottom, left, right)``.

    Parameters
    ----------
    padding : int, (ph, pw), ((top, bottom), (left, right)), 'valid' or 'same'
    input_hw : (int, int)
    kernel, stride, dilation : int or (h, w)

    Returns
    -------
    (int, int, int, int)

    Examples
    --------
    >>> explicit_padding("same", (8, 8), 3, 2, 1)
    (0, 1, 0, 1)
    """
    h, w = input_hw
    kh, kw = as_pair(kernel)
    sh, sw = as_pair(stride)
    dh, dw = as_pair(dilation)
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding == "same":
            top, bottom = same_padding(h, kh, sh, dh)
            left, right = same_padding(w, kw, sw, dw)
            return top, bottom, left, right
        raise ValueError(padding)
    if isinstance(padding, (tuple, list)) and isinstance(padding[0], (tuple, list)):
        (top, bottom), (left, right) = padding
        return int(top), int(bottom), int(left), int(right)
    ph, pw = as_pair(padding)
    return ph, ph, pw, pw


def _count_windows(padded_size, kernel, stride, dilation):
    """How many window positions ``i`` satisfy ``stride*i + dilation*(kernel-1) <= padded_size - 1``.

    Counted one by one (no floor formula): the last element a window reads is
    ``stride*i + dilation*(kernel-1)``, and it has to lie inside the padded input.
    """
    count = 0
    while stride * count + dilation * (kernel - 1) <= padded_size - 1:
        count += 1
    return count


def output_size(input_hw, kernel, stride=1, padding=0, dilation=1):
    """``(H_out, W_out)`` by counting the windows that fit in the padded input.

    Parameters
    ----------
    input_hw : (int, int)
    kernel, stride, padding, dilation : as in :func:`explicit_padding`

    Returns
    -------
    (int, int)

    Examples
    --------
    >>> output_size((8, 8), 3, stride=2)
    (3, 3)
    """
    h, w = input_hw
    kh, kw = as_pair(kernel)
    sh, sw = as_pair(stride)
    dh, dw = as_pair(dilation)
    top, bottom, left, right = explicit_padding(padding, input_hw, kernel, stride, dilation)
    return (_count_windows(h + top + bottom, kh, sh, dh),
            _count_windows(w + left + right, kw, sw, dw))


def pad_input(x, top, bottom, left, right):
    """Zero padding written element by element.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    top, bottom, left, right : int

    Returns
    -------
    ndarray, shape (N, C, H + top + bottom, W + left + right), float64

    Shape
    -----
    (N, C, H, W) -> (N, C, H + top + bottom, W + left + right).

    Examples
    --------
    >>> pad_input(np.ones((1, 1, 1, 2)), 1, 0, 0, 1)[0, 0]
    array([[0., 0., 0.],
           [1., 1., 0.]])
    """
    n, c, h, w = x.shape
    xp = np.zeros((n, c, h + top + bottom, w + left + right), dtype=np.float64)
    for a in range(n):
        for b in range(c):
            for u in range(h):
                for v in range(w):
                    xp[a, b, u + top, v + left] = x[a, b, u, v]
    return xp


def conv2d_forward(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """``Y[n,o,i,j] = b[o] + sum_{c,p,q} W[o,c,p,q] * Xpad[n,c,sh*i+dh*p, sw*j+dw*q]``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    weight : ndarray, shape (O, C, kh, kw)
    bias : ndarray, shape (O,), optional
    stride, padding, dilation : as in :func:`explicit_padding`

    Returns
    -------
    ndarray, shape (N, O, H_out, W_out), float64

    Shape
    -----
    (N, C, H, W) -> (N, O, H_out, W_out).

    Examples
    --------
    >>> conv2d_forward(np.arange(16.0).reshape(1, 1, 4, 4), np.ones((1, 1, 2, 2)), stride=2)[0, 0]
    array([[10., 18.],
           [42., 50.]])
    """
    n_batch, n_in, h, w = x.shape
    n_out, n_in_w, kh, kw = weight.shape
    assert n_in == n_in_w
    sh, sw = as_pair(stride)
    dh, dw = as_pair(dilation)
    top, bottom, left, right = explicit_padding(padding, (h, w), (kh, kw), stride, dilation)
    xp = pad_input(x, top, bottom, left, right)
    ho, wo = output_size((h, w), (kh, kw), stride, padding, dilation)
    if ho < 1 or wo < 1:
        raise ValueError("kernel larger than the padded input")
    y = np.zeros((n_batch, n_out, ho, wo), dtype=np.float64)
    for n in range(n_batch):
        for o in range(n_out):
            for i in range(ho):
                for j in range(wo):
                    total = 0.0 if bias is None else float(bias[o])
                    for c in range(n_in):
                        for p in range(kh):
                            for q in range(kw):
                                total += float(weight[o, c, p, q]) * xp[n, c, sh * i + dh * p, sw * j + dw * q]
                    y[n, o, i, j] = total
    return y


def conv2d_backward(x, weight, grad_output, stride=1, padding=0, dilation=1):
    """``(dX, dW, db)`` of ``L = sum(Y * G)`` by the chain rule, term by term.

    ``db`` is a plain sum over the batch and the pixels: nothing is divided by N.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    weight : ndarray, shape (O, C, kh, kw)
    grad_output : ndarray, shape (N, O, H_out, W_out)
    stride, padding, dilation : as in :func:`explicit_padding`

    Returns
    -------
    (dx, dw, db) : ndarrays of the shapes of x, weight and (O,), float64

    Shape
    -----
    (N, O, H_out, W_out) -> (N, C, H, W), (O, C, kh, kw), (O,).

    Examples
    --------
    >>> dx, dw, db = conv2d_backward(np.ones((2, 1, 4, 4)), np.ones((1, 1, 3, 3)), np.ones((2, 1, 2, 2)))
    >>> db
    array([8.])
    """
    n_batch, n_in, h, w = x.shape
    n_out, _, kh, kw = weight.shape
    sh, sw = as_pair(stride)
    dh, dw = as_pair(dilation)
    top, bottom, left, right = explicit_padding(padding, (h, w), (kh, kw), stride, dilation)
    xp = pad_input(x, top, bottom, left, right)
    ho, wo = output_size((h, w), (kh, kw), stride, padding, dilation)
    assert grad_output.shape == (n_batch, n_out, ho, wo), (grad_output.shape, (n_batch, n_out, ho, wo))
    dxp = np.zeros_like(xp)
    dw_ = np.zeros(weight.shape, dtype=np.float64)
    db = np.zeros(n_out, dtype=np.float64)
    for n in range(n_batch):
        for o in range(n_out):
            for i in range(ho):
                for j in range(wo):
                    g = float(grad_output[n, o, i, j])
                    db[o] += g
                    for c in range(n_in):
                        for p in range(kh):
                            for q in range(kw):
                                u = sh * i + dh * p
                                v = sw * j + dw * q
                                dw_[o, c, p, q] += g * xp[n, c, u, v]
                                dxp[n, c, u, v] += g * float(weight[o, c, p, q])
    dx = np.zeros((n_batch, n_in, h, w), dtype=np.float64)
    for a in range(n_batch):
        for b in range(n_in):
            for u in range(h):
                for v in range(w):
                    dx[a, b, u, v] = dxp[a, b, u + top, v + left]
    return dx, dw_, db
