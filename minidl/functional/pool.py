"""2-D max pooling and its backward.

Tie rule: when several elements of a window share the maximum, the first one
in row-major order inside the window (smallest row, then smallest column)
takes the whole gradient -- the rule of PyTorch's CPU kernel. NaN counts as a
maximum, so NaNs propagate; within a window the last NaN wins (PyTorch's CPU kernel).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .._validation import check_array, check_float_dtype, check_ndim, positive_pair
from .geometry import _geometry

__all__ = ["max_pool2d", "max_pool2d_backward"]


def _pool_geometry(input_hw, kernel_size, stride, padding, where):
    ks = positive_pair(kernel_size, "kernel_size", where)
    st = ks if stride is None else positive_pair(stride, "stride", where)
    geo = _geometry(input_hw, ks, st, padding, 1, where)
    check_pool_padding(geo.pads, ks, padding, where)
    return geo


def check_pool_padding(pads, kernel, padding, where) -> None:
    """Refuse explicit ``pads`` wider than half the ``kernel``, as PyTorch does."""
    for (pa, pb), k in zip(pads, kernel):
        if max(pa, pb) > k // 2:
            raise ValueError(
                f"{where}: padding should be at most half the kernel size, as in PyTorch "
                f"(otherwise a window can hold only padding). Received: padding={padding!r} "
                f"with kernel_size={kernel}."
            )


def _channels_last(a) -> bool:
    """True for an NCHW-shaped view of a contiguous NHWC array (see the conv module's docstring)."""
    return not a.flags.c_contiguous and a.transpose(0, 2, 3, 1).flags.c_contiguous


def _full(shape, fill, dtype, channels_last):
    """``np.full`` of NCHW ``shape``, in channels-last memory when asked."""
    if not channels_last:
        return np.full(shape, fill, dtype=dtype)
    n, c, h, w = shape
    return np.full((n, h, w, c), fill, dtype=dtype).transpose(0, 3, 1, 2)


def _offset_view(a, geo):
    """View ``(kh, kw, N, C, H_out, W_out)`` of NCHW ``a``: element ``[p, q, n, c, i, j]``
    is ``a[n, c, s_h * i + p, s_w * j + q]`` (writeable when ``a`` is)."""
    (kh, kw), (sh, sw), (ho, wo) = geo.kernel, geo.stride, geo.out
    n, c = a.shape[:2]
    s = a.strides
    shape = (kh, kw, n, c, ho, wo)
    strides = (s[2], s[3], s[0], s[1], s[2] * sh, s[3] * sw)
    # np.ndarray on a contiguous buffer (with the same start) is far cheaper than as_strided
    for buffer in (a, a.transpose(0, 2, 3, 1)):
        if buffer.flags.c_contiguous:
            return np.ndarray(shape, a.dtype, buffer=buffer, strides=strides)
    return as_strided(a, shape=shape, strides=strides, writeable=False)


def max_pool2d(x, kernel_size, stride=None, padding=0, return_indices=False):
    r"""Max pooling over (kh, kw) windows, as :func:`torch.nn.functional.max_pool2d`.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), floating point
    kernel_size : int or (kh, kw)
    stride : int or (sh, sw), optional
        Defaults to ``kernel_size``.
    padding : int, (ph, pw), 'valid' or 'same'
        Implicit padding with ``-inf`` (never wins a window), at most half the kernel.
    return_indices : bool
        Also return the flat index, inside each window (row-major, ``p * kw + q``),
        of the element that won; :func:`max_pool2d_backward` needs it.

    Returns
    -------
    out : ndarray, shape (N, C, H_out, W_out)
    indices : ndarray of intp, same shape (only with ``return_indices``)

    Shape
    -----
    ``H_out = floor((H + p_top + p_bottom - kh) / sh) + 1``; likewise ``W_out``.

    Notes
    -----
    :math:`Y[n,c,i,j] = \max_{p,q} X_{pad}[n, c, s_h i + p, s_w j + q]`.
    Ties go to the first maximum in row-major window order.

    Examples
    --------
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> max_pool2d(x, 2)[0, 0]
    array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    """
    where = "max_pool2d"
    check_array(x, "x", where)
    check_ndim(x, 4, "x", where, "(N, C, H, W)")
    check_float_dtype(x, "x", where)
    n, c, h, w = x.shape
    geo = _pool_geometry((h, w), kernel_size, stride, padding, where)
    (pt, pb), (pl, pr) = geo.pads
    cl = _channels_last(x)  # work, and answer, in the layout x comes in
    if pt or pb or pl or pr:
        xp = _full((n, c, h + pt + pb, w + pl + pr), -np.inf, x.dtype, cl)
        xp[:, :, pt : pt + h, pl : pl + w] = x
    else:
        xp = x
    (kh, kw), (sh, sw), (ho, wo) = geo.kernel, geo.stride, geo.out
    # One copy gathers the kh * kw kernel offsets into a contiguous stack
    # (kh * kw, N, C, H_out, W_out) -- or (kh * kw, N, H_out, W_out, C) for
    # channels-last input; the reductions over its first axis are then fast
    # contiguous passes.
    view = _offset_view(xp, geo)
    if cl:
        view = view.transpose(0, 1, 2, 4, 5, 3)
    stack = np.ascontiguousarray(view).reshape(kh * kw, *view.shape[2:])
    out = stack.max(axis=0)
    nchw = (lambda a: a.transpose(0, 3, 1, 2)) if cl else (lambda a: a)  # noqa: E731
    if not return_indices:
        return nchw(out)
    # Descending over offsets, so the first maximum wins ties; branch-free
    # update idx <- k where stack[k] == out (wrap-around arithmetic on uint8).
    small = np.uint8 if kh * kw <= 256 else np.int32
    idx = np.zeros(out.shape, dtype=small)
    for k in range(kh * kw - 1, -1, -1):
        hit = np.equal(stack[k], out).view(np.uint8).astype(small, copy=False)
        idx -= (idx - small(k)) * hit
    idx = idx.astype(np.intp)
    if np.isnan(out).any():
        # NaN counts as the maximum; as in PyTorch's CPU kernel (which updates
        # on every NaN it meets) the LAST NaN of a window wins.
        last_nan = kh * kw - 1 - np.isnan(stack[::-1]).argmax(axis=0)
        idx = np.where(np.isnan(out), last_nan, idx)
    out, idx = nchw(out), nchw(idx)
    if (pt or pl) and np.isneginf(out).any():
        # A window whose real elements are all -inf: the padding must not win,
        # the first in-bounds element does (PyTorch's rule).
        p0 = np.maximum(pt - np.arange(ho) * sh, 0)[:, None]
        q0 = np.maximum(pl - np.arange(wo) * sw, 0)[None, :]
        idx = np.where(np.isneginf(out), p0 * kw + q0, idx)
    return (out, idx) if return_indices else out


def max_pool2d_backward(input_size, grad_output, indices, kernel_size, stride=None, padding=0):
    r"""Gradient of :func:`max_pool2d` with respect to its input.

    Parameters
    ----------
    input_size : tuple (N, C, H, W)
    grad_output : ndarray, shape (N, C, H_out, W_out)
    indices : ndarray, from ``max_pool2d(..., return_indices=True)``
    kernel_size, stride, padding : as in the forward call

    Returns
    -------
    ndarray, shape ``input_size``: each window's upstream gradient goes to its
    winning element; overlapping windows add up.

    Examples
    --------
    >>> x = np.array([[[[1., 2.], [2., 0.]]]])
    >>> y, idx = max_pool2d(x, 2, return_indices=True)
    >>> max_pool2d_backward(x.shape, np.ones_like(y), idx, 2)[0, 0]
    array([[0., 1.],
           [0., 0.]])
    """
    where = "max_pool2d_backward"
    check_array(grad_output, "grad_output", where)
    n, c, h, w = (int(v) for v in input_size)
    geo = _pool_geometry((h, w), kernel_size, stride, padding, where)
    (kh, kw), (sh, sw), (ho, wo) = geo.kernel, geo.stride, geo.out
    if grad_output.shape != (n, c, ho, wo) or indices.shape != grad_output.shape:
        raise ValueError(
            f"{where}: expected grad_output and indices of shape {(n, c, ho, wo)}, "
            f"got {grad_output.shape} and {indices.shape}."
        )
    (pt, pb), (pl, pr) = geo.pads
    hp, wp = h + pt + pb, w + pl + pr
    g = grad_output
    # Each window's gradient goes to its winner: offset by offset, the masked
    # gradient is written (non-overlapping windows) or added (overlapping ones)
    # to the input positions of that offset.
    cl = _channels_last(indices)
    if cl and not _channels_last(g):  # one small copy, so every pass below runs in one layout
        g = np.ascontiguousarray(g.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    dxp = _full((n, c, hp, wp), 0, g.dtype, cl)
    overlap = sh < kh or sw < kw
    for p in range(kh):
        for q in range(kw):
            view = dxp[:, :, p : p + sh * (ho - 1) + 1 : sh, q : q + sw * (wo - 1) + 1 : sw]
            if overlap:
                view += g * (indices == p * kw + q)
            else:
                np.multiply(g, indices == p * kw + q, out=view)
    if pt or pb or pl or pr:
        dxp = dxp[:, :, pt : pt + h, pl : pl + w]
    return dxp
