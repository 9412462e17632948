"""Padding modes of :class:`torch.nn.Conv2d` and their adjoints (internal to the conv kernels; the
modes and their checks are in :mod:`minidl.functional.conv_args`).

``'zeros'`` is handled by the im2col machinery itself (it never builds the
padded input). The other modes copy border values of the input into the
padding, so their backward pass must fold the gradient that reaches the
padding back onto the input positions it was copied from: the adjoint of
the padding, :func:`pad_adjoint`.

Along one axis of size ``n`` padded by ``(a, b)``, padded position ``u``
holds input position ``source(u - a)`` with

- ``'reflect'``:   ``i -> mirror of i about 0 and n - 1`` (the edge not repeated),
- ``'replicate'``: ``i -> clip(i, 0, n - 1)``,
- ``'circular'``:  ``i -> i mod n``,

so ``dL/dx[i] = sum over u with source(u - a) = i of dL/dx_pad[u]``. The two
spatial axes are padded one after the other, and the adjoint undoes them in
the reverse order.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pad", "pad_adjoint"]

_NUMPY_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _source(u: int, a: int, n: int, mode: str) -> int:
    """The input index that padded position ``u`` (padding ``a`` before) copies."""
    i = u - a
    if mode == "replicate":
        return min(max(i, 0), n - 1)
    if mode == "circular":
        return i % n
    period = 2 * (n - 1)  # reflect
    i %= period
    return period - i if i >= n else i


def pad(x_nhwc: np.ndarray, pads, mode: str) -> np.ndarray:
    """``x`` (NHWC) padded by ``((top, bottom), (left, right))`` in ``mode`` (not 'zeros').

    Parameters
    ----------
    x_nhwc : ndarray, shape (N, H, W, C)
    pads : ((top, bottom), (left, right))
    mode : {'reflect', 'replicate', 'circular'}

    Returns
    -------
    ndarray, shape (N, H + top + bottom, W + left + right, C)
        A new array.

    Examples
    --------
    >>> x = np.arange(3.0).reshape(1, 3, 1, 1)  # NHWC: a column 0, 1, 2
    >>> pad(x, ((1, 1), (0, 0)), "reflect")[0, :, 0, 0]
    array([1., 0., 1., 2., 1.])
    """
    (pt, pb), (pl, pr) = pads
    return np.pad(x_nhwc, ((0, 0), (pt, pb), (pl, pr), (0, 0)), mode=_NUMPY_MODE[mode])


def _fold_axis(g: np.ndarray, axis: int, a: int, b: int, mode: str) -> np.ndarray:
    n = g.shape[axis] - a - b
    inner = [slice(None)] * g.ndim
    inner[axis] = slice(a, a + n)
    out = np.array(g[tuple(inner)])  # a copy: the interior's own gradient
    for u in [*range(a), *range(a + n, a + n + b)]:  # a few padded rows or columns
        src, dst = [slice(None)] * g.ndim, [slice(None)] * g.ndim
        src[axis], dst[axis] = u, _source(u, a, n, mode)
        out[tuple(dst)] += g[tuple(src)]
    return out


def pad_adjoint(grad_padded: np.ndarray, pads, mode: str) -> np.ndarray:
    """The gradient with respect to the unpadded input of :func:`pad` (NHWC in and out).

    Parameters
    ----------
    grad_padded : ndarray, shape (N, H + top + bottom, W + left + right, C)
        The gradient with respect to :func:`pad`'s result.
    pads : ((top, bottom), (left, right))
    mode : {'reflect', 'replicate', 'circular'}

    Returns
    -------
    ndarray, shape (N, H, W, C)
        Each copied border value's gradient folded back onto the element it copies.

    Examples
    --------
    >>> g = np.ones((1, 5, 1, 1))  # the reflect padding above copies element 1 twice
    >>> pad_adjoint(g, ((1, 1), (0, 0)), "reflect")[0, :, 0, 0]
    array([1., 3., 1.])
    """
    (pt, pb), (pl, pr) = pads
    g = _fold_axis(grad_padded, 2, pl, pr, mode) if pl or pr else grad_padded
    return _fold_axis(g, 1, pt, pb, mode) if pt or pb else np.ascontiguousarray(g)
