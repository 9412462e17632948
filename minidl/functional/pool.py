"""2-D max pooling and its backward.

Tie rule: when several elements of a window share the maximum, the first one
in row-major order inside the window (smallest row, then smallest column)
takes the whole gradient -- the rule of PyTorch's CPU kernel. NaN counts as a
maximum, so NaNs propagate; within a window the last NaN wins (PyTorch's CPU kernel).
"""

from __future__ import annotations

import numpy as np

from ..validation import check_array, check_float_dtype, check_ndim, positive_pair
from ._engine import blas
from .geometry import geometry

__all__ = ["max_pool2d", "max_pool2d_backward", "pool_geometry", "check_pool_padding"]


def pool_geometry(input_hw, kernel_size, stride, padding, where, dilation=1, ceil_mode=False):
    """The validated pooling geometry; ``ceil_mode`` becomes extra bottom/right padding.

    PyTorch's ceil rule: ``out = ceil((H + 2p - d(k - 1) - 1) / s) + 1``, less one when
    the last window would start at or past ``H + p`` (in the right padding). Windows
    that hang over the edge read the extra padding, which pooling never reads.

    Parameters
    ----------
    input_hw : (int, int)
    kernel_size, stride, dilation : int or pair of ints
        ``stride`` None means ``kernel_size``.
    padding : int, (ph, pw), 'valid' or 'same'
    where : str
        The caller, named in error messages.
    ceil_mode : bool, default False

    Returns
    -------
    Geometry

    Examples
    --------
    >>> pool_geometry((5, 5), 2, 2, 0, "MaxPool2D", ceil_mode=True)
    Geometry(kernel=(2, 2), stride=(2, 2), dilation=(1, 1), pads=((0, 1), (0, 1)), out=(3, 3))
    """
    ks = positive_pair(kernel_size, "kernel_size", where)
    st = ks if stride is None else positive_pair(stride, "stride", where)
    dl = positive_pair(dilation, "dilation", where)
    geo = geometry(input_hw, ks, st, padding, dl, where)
    check_pool_padding(geo.pads, ks, padding, where)
    if not ceil_mode:
        return geo
    extra = []
    for size, k, s, d, (pa, pb) in zip(input_hw, ks, st, dl, geo.pads):
        span, padded = (k - 1) * d + 1, size + pa + pb
        out = -(-(padded - span) // s) + 1
        if (out - 1) * s >= size + pa:
            out -= 1
        extra.append(max(0, (out - 1) * s + span - padded))
    if not any(extra):
        return geo
    (pt, pb), (pl, pr) = geo.pads
    return geometry(input_hw, ks, st, ((pt, pb + extra[0]), (pl, pr + extra[1])), dl, where)



def check_pool_padding(pads, kernel, padding, where) -> None:
    """Refuse explicit ``pads`` wider than half the ``kernel``, as PyTorch does.

    Parameters
    ----------
    pads : ((top, bottom), (left, right))
        The resolved padding.
    kernel : (kh, kw)
    padding : object
        The padding argument as given, for the message.
    where : str
        The caller, named in error messages.

    Raises
    ------
    ValueError
        A side wider than ``k // 2``.

    Examples
    --------
    >>> check_pool_padding(((1, 1), (1, 1)), (3, 3), 1, "MaxPool2D")
    >>> check_pool_padding(((2, 2), (2, 2)), (3, 3), 2, "MaxPool2D")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: MaxPool2D: padding should be at most half the kernel size, as in PyTorch ...
    """
    for (pa, pb), k in zip(pads, kernel):
        if max(pa, pb) > k // 2:
            raise ValueError(
                f"{where}: padding should be at most half the kernel size, as in PyTorch "
                f"(otherwise a window can hold only padding). Received: padding={padding!r} "
                f"with kernel_size={kernel}."
            )


def check_channels(x, where) -> None:
    """ValueError for an (N, 0, H, W) input: torch's pooling kernels refuse zero channels."""
    if x.shape[1] == 0:
        raise ValueError(
            f"{where}: expected at least one channel, as PyTorch does (a batch of N = 0 "
            f"samples is fine). Received: x of shape {x.shape}."
        )


def is_channels_last(a) -> bool:
    """True for an NCHW-shaped view of a contiguous NHWC array (see the conv module's docstring)."""
    return not a.flags.c_contiguous and a.transpose(0, 2, 3, 1).flags.c_contiguous


def full_nchw(shape, fill, dtype, channels_last):
    """``np.full`` of NCHW ``shape`` (``np.empty`` for ``fill=None``), in channels-last
    memory when asked."""
    n, c, h, w = shape
    alloc_shape = (n, h, w, c) if channels_last else shape
    a = np.empty(alloc_shape, dtype=dtype) if fill is None else np.full(alloc_shape, fill, dtype=dtype)
    return a.transpose(0, 3, 1, 2) if channels_last else a


def _index_dtype(window: int):
    """The smallest unsigned integer type that holds ``0 .. window - 1``."""
    if window <= 256:
        return np.uint8
    return np.uint16 if window <= 65536 else np.uint32


def _in_bounds(offset, pad, stride, n_out, size):
    """Output positions ``i0:i1`` whose input position ``stride * i + offset - pad`` is in ``[0, size)``."""
    i0 = max(0, -(-(pad - offset) // stride))
    i1 = min(n_out, (size - 1 - offset + pad) // stride + 1)
    return i0, max(i0, i1)


def kernel_offsets(xm, geo, channels_last):
    """Yield ``(k, src, sel)`` for each kernel offset ``k = p * kw + q``.

    ``xm`` is ``x`` in its memory order: NCHW, or NHWC (``channels_last``).
    ``src`` is the view of ``xm`` that the offset reads for the windows where
    it falls inside the input (not in the padding); ``sel`` indexes those
    windows in a memory-order output, or is None when that is every window.
    """
    ha = 1 if channels_last else 2  # the height axis; width follows it
    h, w = xm.shape[ha : ha + 2]
    (kh, kw), (sh, sw), (ho, wo), (dh, dw) = geo.kernel, geo.stride, geo.out, geo.dilation
    (pt, pb), (pl, pr) = geo.pads
    lead = (slice(None),) * ha
    tail = (slice(None),) * (2 - ha)
    if not (pt or pb or pl or pr):  # every offset of every window is inside the input
        for p in range(kh):
            rows = slice(p * dh, p * dh + sh * (ho - 1) + 1, sh)
            for q in range(kw):
                cols = slice(q * dw, q * dw + sw * (wo - 1) + 1, sw)
                yield p * kw + q, xm[lead + (rows, cols) + tail], None
        return
    cols = [_in_bounds(q * dw, pl, sw, wo, w) for q in range(kw)]
    for p in range(kh):
        i0, i1 = _in_bounds(p * dh, pt, sh, ho, h)
        r = i0 * sh + p * dh - pt
        rows = slice(r, r + sh * (i1 - i0 - 1) + 1, sh)
        for q in range(kw):
            j0, j1 = cols[q]
            if i0 == i1 or j0 == j1:
                continue
            c = j0 * sw + q * dw - pl
            src = xm[lead + (rows, slice(c, c + sw * (j1 - j0 - 1) + 1, sw)) + tail]
            full = i0 == 0 and j0 == 0 and i1 == ho and j1 == wo
            yield p * kw + q, src, None if full else lead + (slice(i0, i1), slice(j0, j1)) + tail


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False, *,
               where="max_pool2d"):
    r"""Max pooling over (kh, kw) windows, as :func:`torch.nn.functional.max_pool2d`.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), floating point
    kernel_size : int or (kh, kw)
    stride : int or (sh, sw), optional
        Defaults to ``kernel_size``.
    padding : int, (ph, pw), 'valid' or 'same'
        Implicit padding with ``-inf`` (never wins a window), at most half the kernel.
    dilation : int or (dh, dw)
        Spacing between the window's elements, as in PyTorch.
    ceil_mode : bool
        Round the output size up (PyTorch's rule), so that windows may hang over the
        bottom/right edge; they pool the elements they hold.
    return_indices : bool
        Also return the flat index, inside each window (row-major, ``p * kw + q``),
        of the element that won; :func:`max_pool2d_backward` needs it.
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    out : ndarray, shape (N, C, H_out, W_out)
    indices : ndarray, same shape (only with ``return_indices``)
        In the smallest unsigned integer type that holds ``kh * kw - 1``
        (uint8 for windows of up to 256 elements, then uint16, uint32).

    Shape
    -----
    ``H_out = floor((H + p_top + p_bottom - dh * (kh - 1) - 1) / sh) + 1`` (ceil with
    ``ceil_mode``, see :func:`pool_geometry`); likewise ``W_out``.

    Notes
    -----
    :math:`Y[n,c,i,j] = \max_{p,q} X_{pad}[n, c, s_h i + d_h p, s_w j + d_w q]`.
    Ties go to the first maximum in row-major window order.

    Examples
    --------
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> max_pool2d(x, 2)[0, 0]
    array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    """
    check_array(x, "x", where)
    check_ndim(x, 4, "x", where, "(N, C, H, W)")
    check_float_dtype(x, "x", where)
    n, c, h, w = x.shape
    geo = pool_geometry((h, w), kernel_size, stride, padding, where, dilation, ceil_mode)
    check_channels(x, where)
    channels_last = is_channels_last(x)  # work, and answer, in the layout x comes in
    # Everything runs on memory-order views (NHWC for channels-last x), where numpy's
    # element-wise loops are fastest.
    xm = x.transpose(0, 2, 3, 1) if channels_last else x
    ho, wo = geo.out
    shape = (n, ho, wo, c) if channels_last else (n, c, ho, wo)
    out = np.empty(shape, dtype=xm.dtype)
    idx = np.empty(shape, dtype=_index_dtype(geo.kernel[0] * geo.kernel[1])) if return_indices else None
    # one run of samples per thread when the batch is large (minidl.functional._engine.blas.map_batch)
    blas.map_batch(lambda n0, n1: _running_max(xm[n0:n1], geo, channels_last, out[n0:n1],
                                               None if idx is None else idx[n0:n1]),
                   n, x.size * blas.ELEMENT_FLOPS)
    if channels_last:
        out = out.transpose(0, 3, 1, 2)
        idx = None if idx is None else idx.transpose(0, 3, 1, 2)
    return (out, idx) if return_indices else out


def _running_max(xm, geo, channels_last, out, idx):
    """Fill ``out`` (and the argmax ``idx`` unless it is None), both in ``xm``'s memory order.

    A running maximum over the kernel offsets, each a strided view of x: the
    peak is the output (+ the argmax and one buffer), never a copy of the
    input per offset. Padding is never read: an offset only updates the
    windows where it falls inside the input.
    """
    with_indices = idx is not None
    if any(p for pair in geo.pads for p in pair):
        out.fill(-np.inf)
        started = True
    else:  # offset (0, 0) covers every window: it starts the running maximum
        started = False
    if with_indices:
        _first_in_bounds(idx, geo, channels_last)
    hit = np.empty(out.shape, dtype=idx.dtype) if with_indices else None
    # The offsets k = p * kw + q come in increasing order, and a window only
    # meets offsets >= its starting index, so "idx <- k where x_k > out" is
    # idx <- max(idx, k * (x_k > out)): branch-free, no masked assignment.
    # Strictly greater: the first maximum keeps ties.
    for k, src, sel in kernel_offsets(xm, geo, channels_last):
        if not started:
            np.copyto(out, src)
            started = True
            continue
        dst = out if sel is None else out[sel]
        if with_indices:
            h_k, i_k = (hit, idx) if sel is None else (hit[sel], idx[sel])
            np.greater(src, dst, out=h_k)
            np.multiply(h_k, k, out=h_k)
            np.maximum(i_k, h_k, out=i_k)
        np.maximum(dst, src, out=dst)  # NaN propagates
    if with_indices and out.size and np.isnan(out.max()):  # max propagates NaN, allocates nothing
        _last_nan_wins(xm, geo, channels_last, idx, hit)


def _first_in_bounds(idx, geo, channels_last):
    """Set each window's entry of the argmax array ``idx`` to its first in-bounds offset
    (padding never wins, even over -inf)."""
    kw, (sh, sw), (ho, wo), (dh, dw) = geo.kernel[1], geo.stride, geo.out, geo.dilation
    (pt, _), (pl, _) = geo.pads
    if pt or pl:  # the first offset p with p * dh >= pt - i * sh: ceil((pt - i * sh) / dh)
        p0 = np.maximum(-((np.arange(ho) * sh - pt) // dh), 0)[:, None]
        q0 = np.maximum(-((np.arange(wo) * sw - pl) // dw), 0)[None, :]
        idx[...] = (p0 * kw + q0)[..., None] if channels_last else p0 * kw + q0
    else:
        idx.fill(0)


def _last_nan_wins(xm, geo, channels_last, idx, hit) -> None:
    """Point ``idx`` of every window holding a NaN at its LAST NaN, in place.

    NaN counts as the maximum; as in PyTorch's CPU kernel (which updates on every
    NaN it meets) the last NaN of a window wins. NaN never compared greater in
    the running maximum, so every NaN offset is larger than ``idx`` there.
    """
    for k, src, sel in kernel_offsets(xm, geo, channels_last):
        h_k, i_k = (hit, idx) if sel is None else (hit[sel], idx[sel])
        np.isnan(src, out=h_k)
        np.multiply(h_k, k, out=h_k)
        np.maximum(i_k, h_k, out=i_k)


def max_pool2d_backward(input_size, grad_output, indices, kernel_size, stride=None, padding=0, dilation=1,
                        ceil_mode=False, *, where="max_pool2d_backward"):
    r"""Gradient of :func:`max_pool2d` with respect to its input.

    Parameters
    ----------
    input_size : tuple (N, C, H, W)
    grad_output : ndarray, shape (N, C, H_out, W_out)
    indices : ndarray of integers, from ``max_pool2d(..., return_indices=True)``
    kernel_size, stride, padding, dilation, ceil_mode : as in the forward call
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray, shape ``input_size``: each window's upstream gradient goes to its
    winning element; overlapping windows add up.

    Shape
    -----
    ``grad_output`` and ``indices`` (N, C, H_out, W_out) -> (N, C, H, W) = ``input_size``.

    Examples
    --------
    >>> x = np.array([[[[1., 2.], [2., 0.]]]])
    >>> y, idx = max_pool2d(x, 2, return_indices=True)
    >>> max_pool2d_backward(x.shape, np.ones_like(y), idx, 2)[0, 0]
    array([[0., 1.],
           [0., 0.]])
    """
    check_array(grad_output, "grad_output", where)
    check_array(indices, "indices", where)
    if indices.dtype.kind not in "ui":
        raise TypeError(
            f"{where}: indices must be integers, as max_pool2d(..., return_indices=True) "
            f"returns them. Received: indices of dtype {indices.dtype}."
        )
    n, c, h, w = (int(v) for v in input_size)
    geo = pool_geometry((h, w), kernel_size, stride, padding, where, dilation, ceil_mode)
    ho, wo = geo.out
    if grad_output.shape != (n, c, ho, wo) or indices.shape != grad_output.shape:
        raise ValueError(
            f"{where}: expected grad_output and indices of shape {(n, c, ho, wo)}, "
            f"got {grad_output.shape} and {indices.shape}."
        )
    (pt, pb), (pl, pr) = geo.pads
    hp, wp = h + pt + pb, w + pl + pr
    g = grad_output
    channels_last = is_channels_last(indices)
    if channels_last and not is_channels_last(g):  # one small copy, so every pass below runs in one layout
        g = np.ascontiguousarray(g.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    dxp = full_nchw((n, c, hp, wp), None, g.dtype, channels_last)
    # one run of samples per thread when the batch is large (minidl.functional._engine.blas.map_batch)
    blas.map_batch(lambda n0, n1: _scatter(dxp[n0:n1], g[n0:n1], indices[n0:n1], geo),
                   n, dxp.size * blas.ELEMENT_FLOPS)
    if pt or pb or pl or pr:
        dxp = dxp[:, :, pt : pt + h, pl : pl + w]
    return dxp


def _scatter(dxp, g, indices, geo) -> None:
    """Fill the padded input gradient ``dxp``: each window's gradient ``g`` goes to its
    winner ``indices``; offset by offset, the masked gradient is written (non-overlapping
    windows) or added (overlapping ones) to the input positions of that offset."""
    (kh, kw), (sh, sw), (ho, wo), (dh, dw) = geo.kernel, geo.stride, geo.out, geo.dilation
    covered = (dh == dw == 1 and (kh, kw) == (sh, sw)  # windows tile the padded input exactly
               and dxp.shape[2:] == (sh * ho, sw * wo))
    if not covered:  # positions no window writes (overlaps, gaps, leftover rows) start at 0
        dxp.fill(0)
    overlap = sh < (kh - 1) * dh + 1 or sw < (kw - 1) * dw + 1  # windows share input positions
    hit = np.empty_like(indices, dtype=bool)  # buffers reused for every offset, in their layout
    part = np.empty_like(g) if overlap else None
    for p in range(kh):
        for q in range(kw):
            r0, c0 = p * dh, q * dw
            view = dxp[:, :, r0 : r0 + sh * (ho - 1) + 1 : sh, c0 : c0 + sw * (wo - 1) + 1 : sw]
            np.equal(indices, p * kw + q, out=hit)
            if overlap:
                view += np.multiply(g, hit, out=part)
            else:
                np.multiply(g, hit, out=view)
