"""2-D convolution (cross-correlation) and its hand-derived backward.

The forward pass unfolds the padded input into columns (im2col, a strided
view copied piece by piece, at most ``MAX_COLUMN_BYTES`` at a time, even
within one sample: see :mod:`minidl.functional._engine.im2col`) and multiplies by
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

The lesson: the derivation is ``docs/conv_backprop.md``; the same formulas as plain
loops, which the tests compare this module with, are
:mod:`minidl.functional.conv_reference`. Here each formula is a comment next to the
call that computes it (section numbers refer to the docs page).
"""

from __future__ import annotations

import numpy as np

from ..validation import check_array, check_ndim, check_same_dtype
from . import conv_args
from ._engine import blas, conv_grads, im2col
from .geometry import conv2d_output_size, resolve_padding

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


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, return_columns=False, *,
           padding_mode="zeros", where="conv2d"):
    r"""2-D cross-correlation, as :func:`torch.nn.functional.conv2d`.

    Parameters
    ----------
    x : ndarray, shape (N, C_in, H, W)
    weight : ndarray, shape (C_out, C_in / groups, kh, kw), same dtype as ``x``
    bias : ndarray, shape (C_out,), optional
    stride, dilation : int or (h, w), each >= 1
    padding : int, (ph, pw), ((top, bottom), (left, right)), 'valid' or 'same'
        See :func:`resolve_padding` for ``'same'``.
    groups : int
        Channels split into ``groups`` blocks convolved independently, as
        :class:`torch.nn.Conv2d`'s (``groups = C_in``: depthwise).
    return_columns : bool
        Also return the unfolded input (im2col), ``(N * H_out * W_out,
        kh * kw * C_in)`` for one group, ``(groups, N * H_out * W_out,
        kh * kw * C_in / groups)`` otherwise, for :func:`conv2d_backward` to
        reuse; None when it was built in pieces or is larger than
        ``MAX_CACHED_COLUMN_BYTES``, the padding is not zeros, the batch was
        split over threads (:func:`minidl.functional._engine.blas.map_batch`), or the
        convolution is depthwise with few outputs per channel (at most 8 at
        stride 1, 4 otherwise: ``depthwise.MAX_MULTIPLIER``; computed by
        ``kh * kw`` multiply-adds per output, without columns).
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}
        What the padding holds, as :class:`torch.nn.Conv2d`'s ``padding_mode``
        (which torch's functional conv2d leaves to ``F.pad``).
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
              X_{pad}[n, g(o) \tfrac{C_{in}}{G} + c, s_h i + d_h p, s_w j + d_w q]

    with ``g(o) = floor(o / (C_out / G))`` the group of output channel ``o``
    and ``c`` running over one group's ``C_in / G`` channels.

    Examples
    --------
    >>> x = np.ones((1, 1, 4, 4), np.float32); w = np.ones((2, 1, 3, 3), np.float32)
    >>> conv2d(x, w, padding='same').shape
    (1, 2, 4, 4)
    >>> conv2d(np.ones((1, 4, 5, 5)), np.ones((4, 1, 3, 3)), groups=4).shape  # depthwise
    (1, 4, 3, 3)
    """
    geo, groups, padding_mode = conv_args.check_input_and_weight(x, weight, stride, padding, dilation, groups,
                                                                 padding_mode, where)
    n, o = x.shape[0], weight.shape[0]
    if bias is not None:
        check_array(bias, "bias", where)
        check_same_dtype(bias, x, "bias", "x", where)
        if bias.shape != (o,):
            raise ValueError(f"{where}: expected bias of shape ({o},), got {bias.shape}.")
    src, pads = conv_grads.padded_source(x, geo, padding_mode)  # X_pad (1): x and its zero pads, or x padded (6b)
    geo = geo._replace(pads=pads)
    wmat_t = np.ascontiguousarray(im2col.weight_matrix(weight, groups).transpose(0, 2, 1))
    out = np.empty((n,) + tuple(geo.out) + (o,), dtype=x.dtype)

    def samples(n0, n1):  # out[n0:n1], a C-contiguous block of the NHWC output
        # Y[n, o, i, j] = b[o] + sum_{c,p,q} W[o, c, p, q] * Xpad[n, c, sh*i + dh*p, sw*j + dw*q]  (section 4):
        # im2col puts Xpad's window of pixel (n, i, j) in one row of cols, in (p, q, c) order; the sum
        # over (c, p, q) is the inner dimension of the GEMM cols @ W_mat^T (one per group, section 6b)
        cols = im2col.correlate(src[n0:n1], pads, geo, wmat_t, out[n0:n1], MAX_COLUMN_BYTES)
        if bias is not None:
            blas.add_row_vector(out[n0:n1], bias)  # + b[o]
        return cols if n1 - n0 == n else None  # a run's columns are freed now, not kept to the end

    runs = blas.map_batch(samples, n, 2.0 * out.size * wmat_t.shape[1])
    cols = runs[0] if len(runs) == 1 else None  # split over threads: no whole-batch columns
    out = out.transpose(0, 3, 1, 2)  # NCHW shape, channels-last memory (module docstring)
    if not return_columns:
        return out
    keep = cols is not None and cols.nbytes <= MAX_CACHED_COLUMN_BYTES and padding_mode == "zeros"
    return out, ((cols[0] if groups == 1 else cols) if keep else None)


def conv2d_backward(x, weight, grad_output, stride=1, padding=0, dilation=1, groups=1, bias=True,
                    input_grad=True, columns=None, *, padding_mode="zeros", where="conv2d_backward"):
    r"""All gradients of :func:`conv2d` at once: ``(dx, dweight, dbias)``.

    The same as :func:`conv2d_input`, :func:`conv2d_weight` and
    :func:`conv2d_bias`, sharing the validation, the geometry and the
    rearranged upstream gradient between them; ``dbias`` is None when
    ``bias`` is False, ``dx`` is None when ``input_grad`` is False. Pass the
    ``columns`` returned by ``conv2d(..., return_columns=True)`` for the same
    ``x`` to skip unfolding it again. This is what
    :class:`minidl.layers.Conv2D` calls (passing itself as ``where``, as
    for :func:`conv2d`).

    Parameters
    ----------
    x : ndarray, shape (N, C_in, H, W)
        The forward input.
    weight : ndarray, shape (C_out, C_in / groups, kh, kw), ``x``'s dtype
    grad_output : ndarray, shape (N, C_out, H_out, W_out), ``x``'s dtype
    stride, padding, dilation, groups, padding_mode : as in :func:`conv2d`
    bias : bool, default True
        Compute ``dbias``.
    input_grad : bool, default True
        Compute ``dx`` (the first layer of a model needs none).
    columns : ndarray, optional
        ``conv2d(..., return_columns=True)``'s second result for this ``x``.
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    dx : ndarray, shape (N, C_in, H, W), or None
    dweight : ndarray, shape (C_out, C_in / groups, kh, kw)
        Summed over the batch.
    dbias : ndarray, shape (C_out,), or None

    Shape
    -----
    As :func:`conv2d_input`, :func:`conv2d_weight` and :func:`conv2d_bias`.

    Examples
    --------
    >>> x = np.ones((2, 1, 4, 4)); w = np.ones((1, 1, 3, 3)); g = np.ones((2, 1, 2, 2))
    >>> dx, dw, db = conv2d_backward(x, w, g)
    >>> dx.shape, dw.shape, db
    ((2, 1, 4, 4), (1, 1, 3, 3), array([8.]))
    """
    geo, groups, padding_mode = conv_args.check_input_and_weight(x, weight, stride, padding, dilation, groups,
                                                                 padding_mode, where)
    conv_args.check_grad_output(grad_output, x, "x", x.shape, weight.shape, geo, where)
    if columns is not None:
        n, c = x.shape[:2]
        pixels, k = n * geo.out[0] * geo.out[1], c * weight.shape[2] * weight.shape[3]
        expected = (pixels, k) if groups == 1 else (groups, pixels, k // groups)
        check_array(columns, "columns", where)
        if columns.shape != expected or columns.dtype != x.dtype or padding_mode != "zeros":
            raise ValueError(
                f"{where}: columns must be the {expected} {x.dtype} array that "
                f"conv2d(x, ..., return_columns=True) returned for this x (zero padding); got "
                f"{columns.shape} {columns.dtype}. Pass columns=None to recompute them."
            )
    rows = conv_grads.grad_rows(grad_output)  # G as (N * Ho * Wo, O): row (n, i, j) matches cols' row
    n, c, h, w = x.shape
    pixels = geo.out[0] * geo.out[1]
    flops = 2.0 * rows.size * (c // groups) * weight.shape[2] * weight.shape[3] * (1 + bool(input_grad))
    split = input_grad and blas.batch_runs(n, flops) > 1
    dx = np.empty((n, h, w, c), dtype=x.dtype) if split else None  # NHWC, filled run by run

    def samples(n0, n1):  # the gradients of samples n0:n1 (dx written into its block of dx)
        part = rows[n0 * pixels : n1 * pixels]
        # dL/dXpad[n, c, u, v] = sum_{o,i,j,p,q} G[n, o, i, j] * W[o, c, p, q] * [u = sh*i + dh*p] * [v = sw*j + dw*q],
        # then the padding cropped (5.3): a full correlation of G with the rotated kernel at stride 1,
        # else G_rows @ W_mat scattered back (col2im) over the kh * kw offsets (section 6)
        dx_part = (conv_grads.input_grad_nchw(part, weight, (n1 - n0, c, h, w), geo, groups, padding_mode,
                                              MAX_COLUMN_BYTES, FULL_CORRELATION_MIN_RATIO) if input_grad else None)
        if dx is not None:
            dx[n0:n1] = dx_part.transpose(0, 2, 3, 1)
            dx_part = None  # copied: freed now, not kept (in map_batch's results) to the end
        whole = n0 == 0 and n1 == n
        # dL/dW[o, c, p, q] = sum_{n,i,j} G[n, o, i, j] * Xpad[n, c, sh*i + dh*p, sw*j + dw*q]  (5.2):
        # G_rows^T @ cols, the sum over the batch and the pixels is the GEMM's inner dimension
        return dx_part, conv_grads.weight_grad_nchw(part, x[n0:n1], weight.shape, geo, groups, padding_mode,
                                                    MAX_COLUMN_BYTES, columns if whole else None)

    runs = blas.map_batch(samples, n, flops)
    if len(runs) == 1:
        dx_all, dw = runs[0]
    else:  # per-thread partial sums of dW, added in batch order
        dx_all, dw = (None if dx is None else dx.transpose(0, 3, 1, 2)), runs[0][1]
        for _, dw_part in runs[1:]:
            dw += dw_part  # the rest of the sum over n
    return dx_all, dw, (blas.column_sums(rows) if bias else None)  # dL/db[o] = sum_{n,i,j} G[n, o, i, j]  (5.1)


def conv2d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1, groups=1, *,
                 padding_mode="zeros"):
    r"""Gradient of :func:`conv2d` with respect to its input.

    Parameters
    ----------
    input_size : tuple (N, C_in, H, W)
        Shape of the input, hence of the result. It cannot be recovered from
        ``grad_output`` alone when the stride drops rows or columns.
    weight : ndarray, shape (C_out, C_in / groups, kh, kw)
    grad_output : ndarray, shape (N, C_out, H_out, W_out), dtype of ``weight``
    stride, padding, dilation, groups, padding_mode : as in :func:`conv2d`

    Returns
    -------
    ndarray, shape ``input_size``

    Shape
    -----
    ``grad_output`` (N, C_out, H_out, W_out) and ``weight`` (C_out, C_in / groups, kh, kw)
    -> (N, C_in, H, W) = ``input_size``.

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
    geo, groups, padding_mode = conv_args.conv_geometry(input_size, weight.shape, stride, padding, dilation,
                                             groups, padding_mode, where)
    conv_args.check_grad_output(grad_output, weight, "weight", input_size, weight.shape, geo, where)
    return conv_grads.input_grad_nchw(conv_grads.grad_rows(grad_output), weight, input_size, geo, groups,
                                      padding_mode, MAX_COLUMN_BYTES, FULL_CORRELATION_MIN_RATIO)


def conv2d_weight(x, weight_size, grad_output, stride=1, padding=0, dilation=1, groups=1, *,
                  padding_mode="zeros"):
    r"""Gradient of :func:`conv2d` with respect to its weight.

    Parameters
    ----------
    x : ndarray, shape (N, C_in, H, W)
    weight_size : tuple (C_out, C_in / groups, kh, kw)
    grad_output : ndarray, shape (N, C_out, H_out, W_out), dtype of ``x``
    stride, padding, dilation, groups, padding_mode : as in :func:`conv2d`

    Returns
    -------
    ndarray, shape ``weight_size``; summed (not averaged) over the batch.

    Shape
    -----
    ``x`` (N, C_in, H, W) and ``grad_output`` (N, C_out, H_out, W_out)
    -> (C_out, C_in / groups, kh, kw) = ``weight_size``.

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
    conv_args.check_x(x, where)
    weight_size = tuple(int(s) for s in weight_size)
    geo, groups, padding_mode = conv_args.conv_geometry(x.shape, weight_size, stride, padding, dilation, groups,
                                             padding_mode, where)
    conv_args.check_grad_output(grad_output, x, "x", x.shape, weight_size, geo, where)
    return conv_grads.weight_grad_nchw(conv_grads.grad_rows(grad_output), x, weight_size, geo, groups,
                                       padding_mode, MAX_COLUMN_BYTES)


def conv2d_bias(grad_output):
    r"""Gradient of :func:`conv2d` with respect to its bias: ``sum_{n,i,j} G[n, o, i, j]``.

    Parameters
    ----------
    grad_output : ndarray, shape (N, C_out, H_out, W_out)

    Returns
    -------
    ndarray, shape (C_out,), ``grad_output``'s dtype

    Shape
    -----
    (N, C_out, H_out, W_out) -> (C_out,).

    Examples
    --------
    >>> conv2d_bias(np.ones((2, 3, 4, 4)))
    array([32., 32., 32.])
    """
    check_array(grad_output, "grad_output", "conv2d_bias")
    check_ndim(grad_output, 4, "grad_output", "conv2d_bias", "(N, C_out, H_out, W_out)")
    return blas.column_sums(conv_grads.grad_rows(grad_output))  # the summation order of conv2d_backward

