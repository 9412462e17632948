"""2-D convolution (cross-correlation) and its hand-derived backward.

The forward pass unfolds the padded input into columns (im2col, a strided
view copied piece by piece, at most ``MAX_COLUMN_BYTES`` at a time, even
within one sample: see :mod:`minidl.functional.im2col`) and multiplies by
the flattened kernel: one GEMM per piece.
The backward pass is split, as in :mod:`torch.nn.grad`, into

* :func:`conv2d_input`  -- dL/dX, a transposed convolution (for stride 1 a
  full correlation of the upstream gradient with the rotated kernel, one
  im2col GEMM; otherwise a GEMM, then a scatter-add over the ``kh * kw``
  kernel offsets, then the padding cropped);
* :func:`conv2d_weight` -- dL/dW, a correlation of the padded input with the
  upstream gradient (im2col + GEMM);
* :func:`conv2d_bias`   -- dL/db, a sum over batch and pixels;
* :func:`conv2d_backward` -- all three at once, sharing the work (the layer uses it).

Memory layout: the kernels work channels-last (NHWC) internally, and the
arrays they return (conv2d's output, conv2d_input's dL/dX) have the NCHW
*shape* of PyTorch with channels-last *strides* (``x.transpose(0, 3, 1, 2)``
of a contiguous NHWC array), as PyTorch's ``torch.channels_last`` format.
Element ``[n, c, h, w]`` means the same thing; only the strides differ. The
next layer (ReLU keeps the layout, max pooling and convolution read it
without a copy) then avoids two transposing copies per layer. Call
``np.ascontiguousarray`` if you need C order.

The derivation is written out in ``docs/conv_backprop.md``.
"""

from __future__ import annotations

import numpy as np

from .._validation import (
    check_array,
    check_float_dtype,
    check_ndim,
    check_same_dtype,
)
from . import blas, im2col
from .geometry import (
    check_conv_args,
    Geometry,
    geometry,
    conv2d_output_size,
    resolve_padding,
)

__all__ = [
    "conv2d",
    "conv2d_input",
    "conv2d_weight",
    "conv2d_bias",
    "conv2d_backward",
    "conv2d_output_size",
    "resolve_padding",
    "MAX_COLUMN_BYTES",
    "MAX_CACHED_COLUMN_BYTES",
]

#: Upper bound, in bytes, for the unfolded input (im2col columns) held at once,
#: in the forward pass and in both backward paths: the work is done piece by
#: piece, each piece one GEMM -- whole samples at a time, or, for a single
#: sample whose columns exceed it, bands of output rows (or runs of one row's
#: columns). It is small on purpose: a piece that stays in the CPU's cache is
#: unfolded, multiplied and folded back much faster than one large unfolding
#: that streams through main memory and is freshly mapped (page faults) at
#: every call -- with 4 MiB instead of 256 MiB, a training step of the
#: MNIST-shaped CNN went from 80 to 55 ms on one core, dL/dX of a 32 -> 64
#: channel 5x5 layer from 25 to 14 ms (docs/performance.md). It is read at
#: every call; raise it to trade memory for fewer, larger GEMMs.
MAX_COLUMN_BYTES = 4 * 2**20


#: Stride-1 dL/dX takes the full-correlation path (unfold ``G``: ``kh * kw * C_out``
#: values per input pixel, one GEMM per piece) unless ``C_out >= 16 * C_in``:
#: then the GEMM + col2im path (``kh * kw * C_in`` values per output pixel, then
#: ``kh * kw`` strided adds) moves several times less memory -- measured at
#: batch 64 on one core: 1 -> 32 channels 5x5, 2.5 ms against 5.4 ms; for
#: 3 -> 32 channels 3x3 the full correlation is already faster (6.6 against 7.8 ms).
FULL_CORRELATION_MIN_RATIO = 16


#: Largest unfolded input that ``conv2d(..., return_columns=True)`` hands back
#: for reuse in backward (a layer keeps it until its backward runs).
MAX_CACHED_COLUMN_BYTES = 32 * 2**20


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, return_columns=False, *,
           where="conv2d"):
    r"""2-D cross-correlation, as :func:`torch.nn.functional.conv2d` (groups=1).

    Parameters
    ----------
    x : ndarray, shape (N, C_in, H, W)
    weight : ndarray, shape (C_out, C_in, kh, kw), same dtype as ``x``
    bias : ndarray, shape (C_out,), optional
    stride, dilation : int or (h, w), each >= 1
    padding : int, (ph, pw), ((top, bottom), (left, right)), 'valid' or 'same'
        Zero padding; see :func:`resolve_padding` for ``'same'``.
    return_columns : bool
        Also return the unfolded input (im2col), ``(N * H_out * W_out,
        kh * kw * C_in)``, for :func:`conv2d_backward` to reuse; None when it
        was built in chunks or is larger than ``MAX_CACHED_COLUMN_BYTES``.
    where : str, optional
        Who is calling, for error messages (:class:`~minidl.layers.Conv2D`
        passes itself: any object whose ``str()`` names the caller; it is
        formatted only when an error is raised).

    Returns
    -------
    ndarray, shape (N, C_out, H_out, W_out), dtype of ``x``
        (and the columns, with ``return_columns``)

    Shape
    -----
    ``H_out = floor((H + p_top + p_bottom - dilation[0] * (kh - 1) - 1) / stride[0]) + 1``
    and likewise for ``W_out``.

    Notes
    -----
    .. math:: Y[n, o, i, j] = b[o] + \sum_{c, p, q} W[o, c, p, q]\,
              X_{pad}[n, c, s_h i + d_h p, s_w j + d_w q]

    Examples
    --------
    >>> x = np.ones((1, 1, 4, 4), np.float32); w = np.ones((2, 1, 3, 3), np.float32)
    >>> conv2d(x, w, padding='same').shape
    (1, 2, 4, 4)
    """
    geo = _check_input_and_weight(x, weight, stride, padding, dilation, where)
    n, c, h, w = x.shape
    o = weight.shape[0]
    if bias is not None:
        check_array(bias, "bias", where)
        check_same_dtype(bias, x, "bias", "x", where)
        if bias.shape != (o,):
            raise ValueError(f"{where}: expected bias of shape ({o},), got {bias.shape}.")
    ho, wo = geo.out
    wmat_t = np.ascontiguousarray(im2col.weight_matrix(weight).T)  # (kh * kw * C, O)
    out = np.empty((n, ho, wo, o), dtype=x.dtype)
    cols = im2col.correlate(x.transpose(0, 2, 3, 1), geo.pads, geo, wmat_t, out, MAX_COLUMN_BYTES)
    if bias is not None:
        out += bias
    out = out.transpose(0, 3, 1, 2)  # NCHW shape, channels-last memory (module docstring)
    if not return_columns:
        return out
    keep = cols is not None and cols.nbytes <= MAX_CACHED_COLUMN_BYTES
    return out, (cols if keep else None)


def _grad_rows(grad_output: np.ndarray) -> np.ndarray:
    """``(N, O, Ho, Wo) -> (N * Ho * Wo, O)``: the layout that matches the columns."""
    n, o = grad_output.shape[:2]
    return np.ascontiguousarray(grad_output.transpose(0, 2, 3, 1)).reshape(-1, o)


def _check_x(x, where):
    check_array(x, "x", where)
    check_ndim(x, 4, "x", where, "(N, C, H, W)")


def _check_input_and_weight(x, weight, stride, padding, dilation, where):
    """The checks of conv2d and conv2d_backward on ``x`` and ``weight``; returns the geometry."""
    _check_x(x, where)
    check_array(weight, "weight", where)
    check_float_dtype(weight, "weight", where)
    check_same_dtype(x, weight, "x", "weight", where)
    return _geometry_of(x.shape, weight.shape, stride, padding, dilation, where)


def _geometry_of(x_shape, w_shape, stride, padding, dilation, where):
    check_conv_args(x_shape, w_shape, where)
    return geometry(tuple(x_shape[2:]), tuple(w_shape[2:]), stride, padding, dilation, where)


def _check_grad_output(grad_output, like, like_name, x_shape, w_shape, geo, where):
    """grad_output: an array of the forward output's shape and ``like``'s dtype."""
    check_array(grad_output, "grad_output", where)
    expected = (x_shape[0], w_shape[0]) + tuple(geo.out)
    if grad_output.shape != expected:
        raise ValueError(
            f"{where}: expected grad_output of shape {expected}, got {grad_output.shape}."
        )
    check_same_dtype(grad_output, like, "grad_output", like_name, where)


def _input_grad(rows, weight, input_size, geo):
    """dL/dX from ``rows = G`` as ``(N * Ho * Wo, O)``; see :func:`conv2d_input`."""
    (pt, pb), (pl, pr) = geo.pads
    o, c, kh, kw = weight.shape
    (dh, dw) = geo.dilation
    if (geo.stride == (1, 1) and max(pt, pb) <= dh * (kh - 1) and max(pl, pr) <= dw * (kw - 1)
            and o < FULL_CORRELATION_MIN_RATIO * c):
        return _input_grad_full_correlation(rows, weight, input_size, geo)
    n, _, h, w = input_size
    (sh, sw), (ho, wo) = geo.stride, geo.out
    dxp = np.zeros((n, h + pt + pb, w + pl + pr, c), dtype=weight.dtype)  # NHWC
    wmat = im2col.weight_matrix(weight)  # (O, kh * kw * C)
    g = rows.reshape(n, ho, wo, o)
    for n0, n1, i0, i1, j0, j1 in im2col.tiles(n, geo.out, wmat.shape[1] * weight.itemsize,
                                                  MAX_COLUMN_BYTES):
        dcols = None  # free the previous piece before building the next
        dcols = blas.matmul(g[n0:n1, i0:i1, j0:j1].reshape(-1, o), wmat).reshape(
            n1 - n0, i1 - i0, j1 - j0, kh, kw, c)
        target = dxp[n0:n1]
        rows_span, cols_span = sh * (i1 - i0 - 1) + 1, sw * (j1 - j0 - 1) + 1
        for p in range(kh):  # col2im: scatter-add each kernel offset's contribution
            r = i0 * sh + p * dh
            for q in range(kw):
                s = j0 * sw + q * dw
                target[:, r : r + rows_span : sh, s : s + cols_span : sw, :] += dcols[:, :, :, p, q, :]
    dcols = None
    if pt or pb or pl or pr:
        dxp = np.ascontiguousarray(dxp[:, pt : pt + h, pl : pl + w, :])
    return dxp.transpose(0, 3, 1, 2)


def _input_grad_full_correlation(rows, weight, input_size, geo):
    """Stride 1: dL/dX is a 'valid' correlation of G, padded by ``d * (k - 1) - pad``
    on each side, with the 180-degree rotated, in/out-swapped kernel -- one im2col GEMM."""
    n, _, h, w = input_size
    o, c, kh, kw = weight.shape
    (pt, pb), (pl, pr) = geo.pads
    (dh, dw), (ho, wo) = geo.dilation, geo.out
    top, left = dh * (kh - 1) - pt, dw * (kw - 1) - pl
    # G zero-padded to (h + dh * (kh - 1), w + dw * (kw - 1)); the padding is
    # applied band by band as the pieces are built
    gpads = ((top, h + dh * (kh - 1) - top - ho), (left, w + dw * (kw - 1) - left - wo))
    full = Geometry((kh, kw), (1, 1), (dh, dw), gpads, (h, w))
    # rotated kernel as a (kh * kw * O, C) matrix in the column order of im2col.windows
    wrot = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(2, 3, 0, 1)).reshape(-1, c)
    out = np.empty((n, h, w, c), dtype=weight.dtype)
    im2col.correlate(rows.reshape(n, ho, wo, o), gpads, full, wrot, out, MAX_COLUMN_BYTES)
    return out.transpose(0, 3, 1, 2)


def _weight_grad(rows, x, weight_size, geo, columns=None):
    """dL/dW from ``rows = G`` as ``(N * Ho * Wo, O)``; see :func:`conv2d_weight`."""
    n = x.shape[0]
    o, c, kh, kw = weight_size
    ho, wo = geo.out
    k = c * kh * kw
    src = x.transpose(0, 2, 3, 1)
    if columns is None:  # else the forward pass's im2col, reused
        columns = im2col.one_piece(src, geo.pads, geo, k, MAX_COLUMN_BYTES)
    if columns is not None:  # one GEMM: the usual case
        dw = blas.matmul(rows.T, columns)
    else:  # the columns exceed the cap: accumulate over pieces
        g = rows.reshape(n, ho, wo, o)
        dw = np.zeros((o, k), dtype=x.dtype)
        for n0, n1, i0, i1, j0, j1, cols in im2col.pieces(src, geo.pads, geo, k, MAX_COLUMN_BYTES):
            dw += blas.matmul(g[n0:n1, i0:i1, j0:j1].reshape(-1, o).T, cols)
            del cols
    return np.ascontiguousarray(dw.reshape(o, kh, kw, c).transpose(0, 3, 1, 2))


def conv2d_backward(x, weight, grad_output, stride=1, padding=0, dilation=1, bias=True,
                    input_grad=True, columns=None, *, where="conv2d_backward"):
    r"""All gradients of :func:`conv2d` at once: ``(dx, dweight, dbias)``.

    The same as :func:`conv2d_input`, :func:`conv2d_weight` and
    :func:`conv2d_bias`, sharing the validation, the geometry and the
    rearranged upstream gradient between them; ``dbias`` is None when
    ``bias`` is False, ``dx`` is None when ``input_grad`` is False. Pass the
    ``columns`` returned by ``conv2d(..., return_columns=True)`` for the same
    ``x`` to skip unfolding it again. This is what
    :class:`minidl.layers.Conv2D` calls (passing itself as ``where``, as
    for :func:`conv2d`).

    Examples
    --------
    >>> x = np.ones((2, 1, 4, 4)); w = np.ones((1, 1, 3, 3)); g = np.ones((2, 1, 2, 2))
    >>> dx, dw, db = conv2d_backward(x, w, g)
    >>> dx.shape, dw.shape, db
    ((2, 1, 4, 4), (1, 1, 3, 3), array([8.]))
    """
    geo = _check_input_and_weight(x, weight, stride, padding, dilation, where)
    _check_grad_output(grad_output, x, "x", x.shape, weight.shape, geo, where)
    n, c = x.shape[:2]
    if columns is not None:
        k = c * weight.shape[2] * weight.shape[3]
        expected = (n * geo.out[0] * geo.out[1], k)
        check_array(columns, "columns", where)
        if columns.shape != expected or columns.dtype != x.dtype:
            raise ValueError(
                f"{where}: columns must be the ({expected[0]}, {expected[1]}) {x.dtype} matrix that "
                f"conv2d(x, ..., return_columns=True) returned for this x; got {columns.shape} "
                f"{columns.dtype}. Pass columns=None to recompute them."
            )
    rows = _grad_rows(grad_output)
    dx = _input_grad(rows, weight, x.shape, geo) if input_grad else None
    dw = _weight_grad(rows, x, weight.shape, geo, columns)
    return dx, dw, (blas.column_sums(rows) if bias else None)


def conv2d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1):
    r"""Gradient of :func:`conv2d` with respect to its input.

    Parameters
    ----------
    input_size : tuple (N, C_in, H, W)
        Shape of the input, hence of the result. It cannot be recovered from
        ``grad_output`` alone when the stride drops rows or columns.
    weight : ndarray, shape (C_out, C_in, kh, kw)
    grad_output : ndarray, shape (N, C_out, H_out, W_out), dtype of ``weight``
    stride, padding, dilation : as in :func:`conv2d`

    Returns
    -------
    ndarray, shape ``input_size``

    Notes
    -----
    .. math:: \frac{\partial L}{\partial X_{pad}}[n, c, u, v] = \sum_{o, i, j, p, q}
              G[n, o, i, j]\, W[o, c, p, q]\,[u = s_h i + d_h p]\,[v = s_w j + d_w q]

    i.e. a full convolution of the stride-dilated ``G`` with the 180-degree
    rotated kernel. With stride 1 (and padding at most the dilated kernel
    span, and fewer than ``FULL_CORRELATION_MIN_RATIO = 16`` output
    channels per input channel) it is computed
    literally that way: ``G`` zero-padded by
    ``d * (k - 1) - pad`` on each side, unfolded (im2col) and multiplied by
    the rotated kernel -- one GEMM. Otherwise as ``G @ W`` followed by a
    scatter-add (col2im) over the ``kh * kw`` kernel offsets. Rows/columns of
    the input that the floor in the output size skipped get zero gradient;
    the padding is cropped.

    Examples
    --------
    >>> w = np.ones((1, 1, 3, 3)); g = np.ones((1, 1, 3, 3))
    >>> conv2d_input((1, 1, 8, 8), w, g, stride=2).shape
    (1, 1, 8, 8)
    """
    where = "conv2d_input"
    input_size = tuple(int(s) for s in input_size)
    if len(input_size) != 4:
        raise ValueError(f"{where}: input_size must be (N, C, H, W). Received: {input_size!r}")
    check_array(weight, "weight", where)
    geo = _geometry_of(input_size, weight.shape, stride, padding, dilation, where)
    _check_grad_output(grad_output, weight, "weight", input_size, weight.shape, geo, where)
    return _input_grad(_grad_rows(grad_output), weight, input_size, geo)


def conv2d_weight(x, weight_size, grad_output, stride=1, padding=0, dilation=1):
    r"""Gradient of :func:`conv2d` with respect to its weight.

    Parameters
    ----------
    x : ndarray, shape (N, C_in, H, W)
    weight_size : tuple (C_out, C_in, kh, kw)
    grad_output : ndarray, shape (N, C_out, H_out, W_out), dtype of ``x``
    stride, padding, dilation : as in :func:`conv2d`

    Returns
    -------
    ndarray, shape ``weight_size``; summed (not averaged) over the batch.

    Notes
    -----
    .. math:: \frac{\partial L}{\partial W}[o, c, p, q] = \sum_{n, i, j}
              G[n, o, i, j]\, X_{pad}[n, c, s_h i + d_h p, s_w j + d_w q]

    a correlation of the padded input with the (stride-dilated) upstream
    gradient, computed as ``G^T @ im2col(X)``.

    Examples
    --------
    >>> x = np.ones((2, 1, 4, 4)); g = np.ones((2, 1, 2, 2))
    >>> conv2d_weight(x, (1, 1, 3, 3), g)[0, 0]
    array([[8., 8., 8.],
           [8., 8., 8.],
           [8., 8., 8.]])
    """
    where = "conv2d_weight"
    _check_x(x, where)
    weight_size = tuple(int(s) for s in weight_size)
    geo = _geometry_of(x.shape, weight_size, stride, padding, dilation, where)
    _check_grad_output(grad_output, x, "x", x.shape, weight_size, geo, where)
    return _weight_grad(_grad_rows(grad_output), x, weight_size, geo)


def conv2d_bias(grad_output):
    r"""Gradient of :func:`conv2d` with respect to its bias: ``sum_{n,i,j} G[n, o, i, j]``.

    Examples
    --------
    >>> conv2d_bias(np.ones((2, 3, 4, 4)))
    array([32., 32., 32.])
    """
    check_array(grad_output, "grad_output", "conv2d_bias")
    check_ndim(grad_output, 4, "grad_output", "conv2d_bias", "(N, C_out, H_out, W_out)")
    return blas.column_sums(_grad_rows(grad_output))  # the summation order of conv2d_backward

