"""The gradient computations behind :mod:`minidl.functional.conv` (internal).

Every function takes the upstream gradient as ``rows``: ``G`` rearranged to
``(N * Ho * Wo, O)``, the layout that matches the im2col columns; arrays are
channels-last (NHWC); ``cap`` is the column budget
(:data:`minidl.functional.conv.MAX_COLUMN_BYTES`), passed in. With ``groups``
> 1 the channels split into ``groups`` independent blocks: input channels
``[g C/groups, (g + 1) C/groups)`` meet only output channels
``[g O/groups, (g + 1) O/groups)`` and weight rows of that block, so every
product below is a stack of one GEMM per group. The derivation is
``docs/conv_backprop.md``.
"""

from __future__ import annotations

import numpy as np

from . import blas, depthwise, im2col, tiling
from . import padding as padding_modes
from .tiling import Geometry

__all__ = ["input_grad", "weight_grad", "input_grad_nchw", "weight_grad_nchw", "padded_source", "grad_rows"]


def input_grad(rows, weight, input_size, geo, groups, cap, min_ratio):
    """dL/dX_pad, NHWC ``(N, H + pt + pb, W + pl + pr, C)`` when the padding is kept
    (``geo.pads``), for ``input_size`` (N, C, H, W) and ``weight`` (O, C/groups, kh, kw).

    Stride 1 with padding at most the dilated kernel's reach and fewer than
    ``min_ratio`` output channels per input channel: a full correlation of ``G``
    with the rotated kernel (returned already cropped: NHWC ``(N, H, W, C)``).
    Otherwise ``G @ W`` and a scatter-add over the kernel offsets (col2im) into
    the zero-padded input; the caller crops (or folds) the padding. A depthwise
    convolution (one input channel per group) uses the direct kernels of
    :mod:`.depthwise` instead (returned cropped), or col2im
    beyond their ``MAX_MULTIPLIER`` outputs per channel.
    Returns ``(dx_nhwc, cropped)``.

    Parameters
    ----------
    rows : ndarray, shape (N * H_out * W_out, O)
        The upstream gradient, channels last, one row per output pixel.
    weight : ndarray, shape (O, C / groups, kh, kw)
    input_size : tuple (N, C, H, W)
    geo : Geometry
        From :func:`minidl.functional.geometry.geometry` for the forward call.
    groups : int
    cap : int
        The column budget in bytes (``MAX_COLUMN_BYTES``).
    min_ratio : int
        ``FULL_CORRELATION_MIN_RATIO``: from ``O >= min_ratio * C`` on, col2im.

    Returns
    -------
    dx_nhwc : ndarray
        (N, H, W, C) when ``cropped``, else (N, H + pt + pb, W + pl + pr, C).
    cropped : bool
        Whether the padding is already cropped.

    Examples
    --------
    >>> from minidl.functional.geometry import geometry
    >>> from minidl.functional.conv import MAX_COLUMN_BYTES, conv2d_input, conv2d_weight
    >>> geo = geometry((5, 5), (3, 3), 1, 1, 1, "example")  # 3x3 kernel, stride 1, padding 1
    >>> g, w, x = np.ones((2, 4, 5, 5)), np.ones((4, 3, 3, 3)), np.ones((2, 3, 5, 5))
    >>> rows = np.ascontiguousarray(g.transpose(0, 2, 3, 1)).reshape(-1, 4)
    >>> dx, cropped = input_grad(rows, w, (2, 3, 5, 5), geo, 1, MAX_COLUMN_BYTES, 16)
    >>> dx.shape, cropped, np.allclose(dx.transpose(0, 3, 1, 2), conv2d_input((2, 3, 5, 5), w, g, padding=1))
    ((2, 5, 5, 3), True, True)
    """
    (pt, pb), (pl, pr) = geo.pads
    o, c_group, kh, kw = weight.shape
    (dh, dw) = geo.dilation
    if c_group == 1 and groups > 1:  # depthwise
        if depthwise.direct(o // groups, geo.stride):  # direct per-offset kernels, no GEMM
            return depthwise.input_grad(rows, weight, input_size, geo, cap), True
        # many outputs per channel: G_c (pixels x m) @ W_c (m x kh kw) per channel, then col2im
        return _col2im(rows, weight, input_size, geo, groups, cap), False
    if (geo.stride == (1, 1) and max(pt, pb) <= dh * (kh - 1) and max(pl, pr) <= dw * (kw - 1)
            and o < min_ratio * c_group * groups):
        return _full_correlation(rows, weight, input_size, geo, groups, cap), True
    return _col2im(rows, weight, input_size, geo, groups, cap), False


def _col2im(rows, weight, input_size, geo, groups, cap):
    n, c, h, w = input_size
    o, _, kh, kw = weight.shape
    (pt, pb), (pl, pr) = geo.pads
    (sh, sw), (dh, dw), (ho, wo) = geo.stride, geo.dilation, geo.out
    dxp = np.zeros((n, h + pt + pb, w + pl + pr, c), dtype=weight.dtype)  # NHWC
    # channel c = group * (C / groups) + c_in_group: a view with the group axis apart
    dxp_groups = dxp.reshape(dxp.shape[:3] + (groups, c // groups))
    wmat = im2col.weight_matrix(weight, groups)  # (groups, O / groups, kh * kw * C / groups)
    g = rows.reshape(n, ho, wo, o)
    for n0, n1, i0, i1, j0, j1 in tiling.tiles(n, geo.out, kh * kw * c * weight.itemsize, cap):
        dcols = None  # free the previous piece before building the next
        piece = im2col.group_rows(g[n0:n1, i0:i1, j0:j1].reshape(-1, o), groups)
        dcols = blas.matmul(piece, wmat).reshape(groups, n1 - n0, i1 - i0, j1 - j0, kh, kw, -1)
        target = dxp_groups[n0:n1]
        rows_span, cols_span = sh * (i1 - i0 - 1) + 1, sw * (j1 - j0 - 1) + 1
        for p in range(kh):  # col2im: scatter-add each kernel offset's contribution
            r = i0 * sh + p * dh
            for q in range(kw):
                s = j0 * sw + q * dw
                block = target[:, r : r + rows_span : sh, s : s + cols_span : sw]
                block += dcols[:, :, :, :, p, q, :].transpose(1, 2, 3, 0, 4)
    return dxp


def _full_correlation(rows, weight, input_size, geo, groups, cap):
    """Stride 1: dL/dX is a 'valid' correlation of G, padded by ``d * (k - 1) - pad``
    on each side, with the 180-degree rotated, in/out-swapped kernel -- one im2col
    GEMM per piece (and group)."""
    n, c, h, w = input_size
    o, c_group, kh, kw = weight.shape
    (pt, pb), (pl, pr) = geo.pads
    (dh, dw), (ho, wo) = geo.dilation, geo.out
    top, left = dh * (kh - 1) - pt, dw * (kw - 1) - pl
    # G zero-padded to (h + dh * (kh - 1), w + dw * (kw - 1)); the padding is
    # applied band by band as the pieces are built
    gpads = ((top, h + dh * (kh - 1) - top - ho), (left, w + dw * (kw - 1) - left - wo))
    full = Geometry((kh, kw), (1, 1), (dh, dw), gpads, (h, w))
    # rotated kernel per group, (groups, kh * kw * O / groups, C / groups), in the
    # column order of im2col.windows
    rot = weight[:, :, ::-1, ::-1].reshape(groups, o // groups, c_group, kh, kw)
    wrot = np.ascontiguousarray(rot.transpose(0, 3, 4, 1, 2)).reshape(groups, -1, c_group)
    out = np.empty((n, h, w, c), dtype=weight.dtype)
    im2col.correlate(rows.reshape(n, ho, wo, o), gpads, full, wrot, out, cap)
    return out


def weight_grad(rows, x_nhwc, weight_size, geo, groups, cap, columns=None):
    """dL/dW, ``weight_size`` (O, C/groups, kh, kw), from the NHWC input (zero padding
    ``geo.pads``) or from the forward pass's ``columns`` (groups, pixels, K/groups).

    Parameters
    ----------
    rows : ndarray, shape (N * H_out * W_out, O)
        The upstream gradient, channels last, one row per output pixel.
    x_nhwc : ndarray, shape (N, H, W, C)
        The forward input, channels last (unpadded: ``geo.pads`` is added while unfolding).
    weight_size : tuple (O, C / groups, kh, kw)
    geo : Geometry
        From :func:`minidl.functional.geometry.geometry` for the forward call.
    groups : int
    cap : int
        The column budget in bytes (``MAX_COLUMN_BYTES``).
    columns : ndarray, optional
        The forward pass's unfolded input, ``(groups, N * H_out * W_out, K / groups)``.

    Returns
    -------
    ndarray, shape ``weight_size``
        Summed over the batch.

    Examples
    --------
    >>> from minidl.functional.geometry import geometry
    >>> from minidl.functional.conv import MAX_COLUMN_BYTES, conv2d_input, conv2d_weight
    >>> geo = geometry((5, 5), (3, 3), 1, 1, 1, "example")  # 3x3 kernel, stride 1, padding 1
    >>> g, w, x = np.ones((2, 4, 5, 5)), np.ones((4, 3, 3, 3)), np.ones((2, 3, 5, 5))
    >>> rows = np.ascontiguousarray(g.transpose(0, 2, 3, 1)).reshape(-1, 4)
    >>> dw = weight_grad(rows, x.transpose(0, 2, 3, 1), (4, 3, 3, 3), geo, 1, MAX_COLUMN_BYTES)
    >>> dw.shape, np.allclose(dw, conv2d_weight(x, (4, 3, 3, 3), g, padding=1))
    ((4, 3, 3, 3), True)
    """
    n = x_nhwc.shape[0]
    o, c_group, kh, kw = weight_size
    ho, wo = geo.out
    k = c_group * groups * kh * kw
    if c_group == 1 and groups > 1 and depthwise.direct(o // groups, geo.stride):
        return depthwise.weight_grad(rows, x_nhwc, weight_size, geo, cap)  # no columns
    if columns is None:
        columns = im2col.one_piece(x_nhwc, geo.pads, geo, k, cap, groups)
    if columns is not None and groups == 1:  # one GEMM: the usual case
        dw = blas.matmul(rows.T, columns[0])
    elif columns is not None:  # one GEMM per group
        dw = blas.matmul(im2col.group_rows(rows, groups).transpose(0, 2, 1), columns)
    else:  # the columns exceed the cap: accumulate over pieces
        g = rows.reshape(n, ho, wo, o)
        dw = np.zeros((groups, o // groups, k // groups), dtype=x_nhwc.dtype)
        for n0, n1, i0, i1, j0, j1, cols in im2col.pieces(x_nhwc, geo.pads, geo, k, cap, groups):
            piece = im2col.group_rows(g[n0:n1, i0:i1, j0:j1].reshape(-1, o), groups)
            dw += blas.matmul(piece.transpose(0, 2, 1), cols)
            del cols
    return np.ascontiguousarray(dw.reshape(o, kh, kw, c_group).transpose(0, 3, 1, 2))


def padded_source(x, geo, padding_mode):
    """The NHWC source the im2col machinery reads and the zero padding it adds: ``x``
    itself and ``geo.pads`` for 'zeros'; else ``x`` padded in that mode and no more.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    geo : Geometry
    padding_mode : str

    Returns
    -------
    src : ndarray, shape (N, H', W', C)
        A channels-last view of ``x``, or its padded copy.
    pads : ((int, int), (int, int))
        The zero padding still to add.

    Shape
    -----
    ``x`` (N, C, H, W) -> ``src`` (N, H', W', C).

    Examples
    --------
    >>> from minidl.functional.geometry import geometry
    >>> src, pads = padded_source(np.ones((1, 2, 4, 4)), geometry((4, 4), 3, 1, 1, 1, "x"), "reflect")
    >>> src.shape, pads
    ((1, 6, 6, 2), ((0, 0), (0, 0)))
    """
    src = x.transpose(0, 2, 3, 1)
    if padding_mode == "zeros" or not any(a or b for a, b in geo.pads):
        return src, geo.pads
    return padding_modes.pad(src, geo.pads, padding_mode), ((0, 0), (0, 0))


def grad_rows(grad_output: np.ndarray) -> np.ndarray:
    """``(N, O, Ho, Wo) -> (N * Ho * Wo, O)``: the layout that matches the columns.

    Parameters
    ----------
    grad_output : ndarray, shape (N, O, H_out, W_out)

    Returns
    -------
    ndarray, shape (N * H_out * W_out, O), C-contiguous

    Shape
    -----
    (N, O, H_out, W_out) -> (N * H_out * W_out, O).

    Examples
    --------
    >>> grad_rows(np.arange(8.0).reshape(1, 2, 2, 2))
    array([[0., 4.],
           [1., 5.],
           [2., 6.],
           [3., 7.]])
    """
    n, o = grad_output.shape[:2]
    return np.ascontiguousarray(grad_output.transpose(0, 2, 3, 1)).reshape(-1, o)


def input_grad_nchw(rows, weight, input_size, geo, groups, padding_mode, cap, min_ratio):
    """dL/dX (NCHW shape, channels-last memory) from ``rows`` (:func:`grad_rows` of G):
    :func:`input_grad`, its padding cropped, or, for a padding mode other than
    'zeros', folded back onto the input positions it copies.

    Parameters
    ----------
    rows : ndarray, shape (N * H_out * W_out, O)
    weight : ndarray, shape (O, C / groups, kh, kw)
    input_size : tuple (N, C, H, W)
    geo : Geometry
    groups : int
    padding_mode : str
    cap, min_ratio : int
        As in :func:`input_grad`.

    Returns
    -------
    ndarray, shape ``input_size``

    Shape
    -----
    ``rows`` (N * H_out * W_out, O) -> (N, C, H, W) = ``input_size``.

    Examples
    --------
    >>> from minidl.functional.geometry import geometry
    >>> geo = geometry((4, 4), (3, 3), 1, 1, 1, "example")
    >>> dx = input_grad_nchw(np.ones((16, 1)), np.ones((1, 1, 3, 3)), (1, 1, 4, 4), geo, 1, "zeros", 2**22, 16)
    >>> dx[0, 0]
    array([[4., 6., 6., 4.],
           [6., 9., 9., 6.],
           [6., 9., 9., 6.],
           [4., 6., 6., 4.]])
    """
    n, c, h, w = input_size
    (pt, pb), (pl, pr) = geo.pads
    if padding_mode != "zeros" and (pt or pb or pl or pr):
        # the gradient of the padded input, whose padding holds copies of the input:
        # fold their gradient back onto the positions they copy
        padded = (n, c, h + pt + pb, w + pl + pr)
        dxp, _ = input_grad(rows, weight, padded, geo._replace(pads=((0, 0), (0, 0))), groups, cap, min_ratio)
        return padding_modes.pad_adjoint(dxp, geo.pads, padding_mode).transpose(0, 3, 1, 2)
    dx, cropped = input_grad(rows, weight, input_size, geo, groups, cap, min_ratio)
    if not cropped and (pt or pb or pl or pr):
        dx = np.ascontiguousarray(dx[:, pt : pt + h, pl : pl + w, :])
    return dx.transpose(0, 3, 1, 2)


def weight_grad_nchw(rows, x, weight_size, geo, groups, padding_mode, cap, columns=None):
    """dL/dW from ``rows`` (:func:`grad_rows` of G) and the NCHW input ``x`` (padded
    in ``padding_mode``), or the forward pass's ``columns``: :func:`weight_grad`.

    Parameters
    ----------
    rows : ndarray, shape (N * H_out * W_out, O)
    x : ndarray, shape (N, C, H, W)
    weight_size : tuple (O, C / groups, kh, kw)
    geo : Geometry
    groups : int
    padding_mode : str
    cap : int
        The column budget in bytes.
    columns : ndarray, optional
        ``(pixels, K)`` or ``(groups, pixels, K / groups)``.

    Returns
    -------
    ndarray, shape ``weight_size``

    Shape
    -----
    ``rows`` (N * H_out * W_out, O) and ``x`` (N, C, H, W) -> (O, C / groups, kh, kw) = ``weight_size``.

    Examples
    --------
    >>> from minidl.functional.geometry import geometry
    >>> geo = geometry((4, 4), (3, 3), 1, 0, 1, "example")
    >>> weight_grad_nchw(np.ones((4, 1)), np.ones((1, 1, 4, 4)), (1, 1, 3, 3), geo, 1, "zeros", 2**22)[0, 0]
    array([[4., 4., 4.],
           [4., 4., 4.],
           [4., 4., 4.]])
    """
    src, pads = padded_source(x, geo, padding_mode)
    if columns is not None and columns.ndim == 2:
        columns = columns[None]
    return weight_grad(rows, src, weight_size, geo._replace(pads=pads), groups, cap, columns)
