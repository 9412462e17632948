"""2-D convolution (cross-correlation) and its hand-derived backward.

The forward pass unfolds the padded input into columns (im2col, a strided
view copied chunk by chunk) and multiplies by the flattened kernel: one GEMM.
The backward pass is split, as in :mod:`torch.nn.grad`, into

* :func:`conv2d_input`  -- dL/dX, a transposed convolution (GEMM, then a
  scatter-add over the ``kh * kw`` kernel offsets, then the padding cropped);
* :func:`conv2d_weight` -- dL/dW, a correlation of the padded input with the
  upstream gradient (im2col + GEMM);
* :func:`conv2d_bias`   -- dL/db, a sum over batch and pixels.

The derivation is written out in ``docs/conv_backprop.md``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .._validation import (
    check_array,
    check_float_dtype,
    check_ndim,
    check_same_dtype,
    pair,
    positive_pair,
)

__all__ = [
    "conv2d",
    "conv2d_input",
    "conv2d_weight",
    "conv2d_bias",
    "conv2d_output_size",
    "resolve_padding",
    "MAX_COLUMN_BYTES",
]

#: Upper bound, in bytes, for the unfolded input (im2col columns) held at once.
#: Larger batches are processed in chunks of samples.
MAX_COLUMN_BYTES = 256 * 2**20

Padding = tuple[tuple[int, int], tuple[int, int]]


def resolve_padding(padding, input_hw, kernel_size, stride=1, dilation=1, where="conv2d") -> Padding:
    """Turn any accepted ``padding`` into explicit ``((top, bottom), (left, right))``.

    Parameters
    ----------
    padding : int, (ph, pw), ((top, bottom), (left, right)), 'valid' or 'same'
        ``'same'`` follows Keras/TensorFlow for every stride: the output size is
        ``ceil(in / stride)``, the total padding is
        ``max((out - 1) * stride + (k - 1) * dilation + 1 - in, 0)`` and the odd
        extra row/column goes to the bottom/right. For stride 1 this is
        PyTorch's ``padding='same'``.
    input_hw, kernel_size, stride, dilation : int or pair of ints

    Examples
    --------
    >>> resolve_padding('same', (8, 8), 4)
    ((1, 2), (1, 2))
    >>> resolve_padding('same', (8, 8), 3, stride=2)
    ((0, 1), (0, 1))
    """
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0), (0, 0)
        if mode == "same":
            ks = positive_pair(kernel_size, "kernel_size", where)
            st = positive_pair(stride, "stride", where)
            dl = positive_pair(dilation, "dilation", where)
            result = []
            for size, k, s, d in zip(input_hw, ks, st, dl):
                out = -(-size // s)
                total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
                result.append((total // 2, total - total // 2))
            return tuple(result)  # type: ignore[return-value]
        raise ValueError(
            f"{where}: padding must be an int, a pair of ints, 'valid' or 'same'. "
            f"Received: padding={padding!r}"
        )
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(
        isinstance(p, (tuple, list)) for p in padding
    ):
        explicit = tuple(pair(p, "padding", where) for p in padding)
    else:
        ph, pw = pair(padding, "padding", where)
        explicit = ((ph, ph), (pw, pw))
    if min(min(p) for p in explicit) < 0:
        raise ValueError(f"{where}: padding must be >= 0. Received: padding={padding!r}")
    return explicit  # type: ignore[return-value]


def conv2d_output_size(input_hw, kernel_size, stride=1, padding=0, dilation=1, where="conv2d"):
    """Output ``(H_out, W_out)``: ``floor((H + pt + pb - d*(k-1) - 1) / s) + 1``.

    Raises ``ValueError`` when the dilated kernel is larger than the padded input.

    Examples
    --------
    >>> conv2d_output_size((8, 8), 3, stride=2)
    (3, 3)
    """
    return _geometry(tuple(input_hw), kernel_size, stride, padding, dilation, where).out


class _Geometry(NamedTuple):
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: Padding
    out: tuple[int, int]


def _geometry(input_hw, kernel_size, stride, padding, dilation, where) -> _Geometry:
    try:
        # Types are part of the key: 1 == 1.0 == True hash alike, but only 1 is valid.
        key = (tuple(input_hw),) + tuple(
            _typed_key(v) for v in (kernel_size, stride, padding, dilation)
        )
        hit = _GEOMETRY_CACHE.get(key)
    except TypeError:  # unhashable argument (a list): compute without the cache
        key, hit = None, None
    if hit is not None:
        return hit
    geo = _compute_geometry(input_hw, kernel_size, stride, padding, dilation, where)
    if key is not None and len(_GEOMETRY_CACHE) < 4096:
        _GEOMETRY_CACHE[key] = geo
    return geo


_GEOMETRY_CACHE: dict = {}


def _typed_key(v):
    if isinstance(v, tuple):
        return (tuple,) + tuple((type(e), e) for e in v)
    return (type(v), v)


def _compute_geometry(input_hw, kernel_size, stride, padding, dilation, where) -> _Geometry:
    ks = positive_pair(kernel_size, "kernel_size", where)
    st = positive_pair(stride, "stride", where)
    dl = positive_pair(dilation, "dilation", where)
    pads = resolve_padding(padding, input_hw, ks, st, dl, where)
    out = []
    for axis, (size, k, s, d, (pa, pb)) in enumerate(zip(input_hw, ks, st, dl, pads)):
        span = (k - 1) * d + 1
        padded = size + pa + pb
        if span > padded:
            name = "height" if axis == 0 else "width"
            raise ValueError(
                f"{where}: the kernel is larger than the padded input along the {name}: "
                f"kernel {ks} with dilation {dl} spans {span}, padded input {name} is {padded} "
                f"(input {tuple(input_hw)}, padding {pads}). Use a smaller kernel or more padding."
            )
        out.append((padded - span) // s + 1)
    return _Geometry(ks, st, dl, pads, tuple(out))  # type: ignore[arg-type]


def _pad_nhwc(x: np.ndarray, pads: Padding) -> np.ndarray:
    """NCHW ``x`` -> zero-padded, C-contiguous NHWC copy ``(N, H + pt + pb, W + pl + pr, C)``.

    Channels-last makes every receptive field a run of ``kw * C`` contiguous
    values (for dilation 1), so the im2col copy below is fast.
    """
    (pt, pb), (pl, pr) = pads
    n, c, h, w = x.shape
    if pt == pb == pl == pr == 0:
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    xp = np.zeros((n, h + pt + pb, w + pl + pr, c), dtype=x.dtype)
    xp[:, pt : pt + h, pl : pl + w, :] = x.transpose(0, 2, 3, 1)
    return xp


def _windows(xp: np.ndarray, geo: _Geometry) -> np.ndarray:
    """Read-only view ``(N, H_out, W_out, kh, kw, C)`` of every receptive field of NHWC ``xp``."""
    n, _, _, c = xp.shape
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = geo.kernel, geo.stride, geo.dilation, geo.out
    s_n, s_h, s_w, s_c = xp.strides
    return as_strided(
        xp,
        shape=(n, ho, wo, kh, kw, c),
        strides=(s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c),
        writeable=False,
    )


def _weight_matrix(weight: np.ndarray) -> np.ndarray:
    """``(O, C, kh, kw) -> (O, kh * kw * C)``: the column order of :func:`_windows`."""
    return np.ascontiguousarray(weight.transpose(0, 2, 3, 1)).reshape(weight.shape[0], -1)


def _chunk(n: int, per_sample_bytes: int) -> int:
    return max(1, min(n, MAX_COLUMN_BYTES // max(per_sample_bytes, 1)))


def _check_conv_args(x_shape, w_shape, where):
    if len(w_shape) != 4:
        raise ValueError(
            f"{where}: expected weight with 4 dimensions (out_channels, in_channels, kh, kw), "
            f"got shape {tuple(w_shape)}."
        )
    if x_shape[1] != w_shape[1]:
        raise ValueError(
            f"{where}: expected input with {w_shape[1]} channels (weight shape {tuple(w_shape)}), "
            f"got {x_shape[1]} channels in input of shape {tuple(x_shape)}."
        )


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1):
    r"""2-D cross-correlation, as :func:`torch.nn.functional.conv2d` (groups=1).

    Parameters
    ----------
    x : ndarray, shape (N, C_in, H, W)
    weight : ndarray, shape (C_out, C_in, kh, kw), same dtype as ``x``
    bias : ndarray, shape (C_out,), optional
    stride, dilation : int or (h, w), each >= 1
    padding : int, (ph, pw), ((top, bottom), (left, right)), 'valid' or 'same'
        Zero padding; see :func:`resolve_padding` for ``'same'``.

    Returns
    -------
    ndarray, shape (N, C_out, H_out, W_out), dtype of ``x``

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
    where = "conv2d"
    check_array(x, "x", where)
    check_ndim(x, 4, "x", where, "(N, C, H, W)")
    check_array(weight, "weight", where)
    check_float_dtype(weight, "weight", where)
    check_same_dtype(x, weight, "x", "weight", where)
    _check_conv_args(x.shape, weight.shape, where)
    n, c, h, w = x.shape
    o = weight.shape[0]
    geo = _geometry((h, w), weight.shape[2:], stride, padding, dilation, where)
    if bias is not None:
        check_array(bias, "bias", where)
        check_same_dtype(bias, x, "bias", "x", where)
        if bias.shape != (o,):
            raise ValueError(f"{where}: expected bias of shape ({o},), got {bias.shape}.")
    ho, wo = geo.out
    xp = _pad_nhwc(x, geo.pads)
    wmat_t = np.ascontiguousarray(_weight_matrix(weight).T)  # (kh * kw * C, O)
    k = wmat_t.shape[0]
    out = np.empty((n, ho, wo, o), dtype=x.dtype)
    step = _chunk(n, ho * wo * k * x.itemsize)
    for start in range(0, n, step):
        cols = _windows(xp[start : start + step], geo).reshape(-1, k)
        np.matmul(cols, wmat_t, out=out[start : start + step].reshape(-1, o))
    if bias is not None:
        out += bias
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def _grad_rows(grad_output: np.ndarray) -> np.ndarray:
    """``(N, O, Ho, Wo) -> (N * Ho * Wo, O)``: the layout that matches the columns."""
    n, o = grad_output.shape[:2]
    return np.ascontiguousarray(grad_output.transpose(0, 2, 3, 1)).reshape(-1, o)


def _check_grad_output(grad_output, n, o, geo, where):
    check_array(grad_output, "grad_output", where)
    expected = (n, o) + tuple(geo.out)
    if grad_output.shape != expected:
        raise ValueError(
            f"{where}: expected grad_output of shape {expected}, got {grad_output.shape}."
        )


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
    rotated kernel; implemented as ``G @ W`` followed by a scatter-add over
    the ``kh * kw`` kernel offsets. Rows/columns of the input that the floor
    in the output size skipped get zero gradient; the padding is cropped.

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
    _check_conv_args(input_size, weight.shape, where)
    n, c, h, w = input_size
    o, _, kh, kw = weight.shape
    geo = _geometry((h, w), (kh, kw), stride, padding, dilation, where)
    _check_grad_output(grad_output, n, o, geo, where)
    check_same_dtype(grad_output, weight, "grad_output", "weight", where)
    (pt, pb), (pl, pr) = geo.pads
    (sh, sw), (dh, dw), (ho, wo) = geo.stride, geo.dilation, geo.out
    dxp = np.zeros((n, h + pt + pb, w + pl + pr, c), dtype=weight.dtype)  # NHWC
    wmat = _weight_matrix(weight)  # (O, kh * kw * C)
    rows = _grad_rows(grad_output)  # (N * Ho * Wo, O)
    step = _chunk(n, ho * wo * wmat.shape[1] * weight.itemsize)
    for start in range(0, n, step):
        stop = min(start + step, n)
        dcols = (rows[start * ho * wo : stop * ho * wo] @ wmat).reshape(stop - start, ho, wo, kh, kw, c)
        target = dxp[start:stop]
        for p in range(kh):  # col2im: scatter-add each kernel offset's contribution
            for q in range(kw):
                target[:, p * dh : p * dh + sh * (ho - 1) + 1 : sh,
                       q * dw : q * dw + sw * (wo - 1) + 1 : sw, :] += dcols[:, :, :, p, q, :]
    return np.ascontiguousarray(dxp[:, pt : pt + h, pl : pl + w, :].transpose(0, 3, 1, 2))


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
    check_array(x, "x", where)
    check_ndim(x, 4, "x", where, "(N, C, H, W)")
    weight_size = tuple(int(s) for s in weight_size)
    _check_conv_args(x.shape, weight_size, where)
    n, c, h, w = x.shape
    o, _, kh, kw = weight_size
    geo = _geometry((h, w), (kh, kw), stride, padding, dilation, where)
    _check_grad_output(grad_output, n, o, geo, where)
    check_same_dtype(grad_output, x, "grad_output", "x", where)
    ho, wo = geo.out
    xp = _pad_nhwc(x, geo.pads)
    # (O, N * Ho * Wo): rows in the same (n, i, j) order as the columns
    g_t = np.ascontiguousarray(grad_output.transpose(1, 0, 2, 3)).reshape(o, -1)
    k = c * kh * kw
    dw = np.zeros((o, k), dtype=x.dtype)
    step = _chunk(n, ho * wo * k * x.itemsize)
    for start in range(0, n, step):
        stop = min(start + step, n)
        cols = _windows(xp[start:stop], geo).reshape(-1, k)
        dw += g_t[:, start * ho * wo : stop * ho * wo] @ cols
    return np.ascontiguousarray(dw.reshape(o, kh, kw, c).transpose(0, 3, 1, 2))


def conv2d_bias(grad_output):
    r"""Gradient of :func:`conv2d` with respect to its bias: ``sum_{n,i,j} G[n, o, i, j]``.

    Examples
    --------
    >>> conv2d_bias(np.ones((2, 3, 4, 4)))
    array([32., 32., 32.])
    """
    check_array(grad_output, "grad_output", "conv2d_bias")
    check_ndim(grad_output, 4, "grad_output", "conv2d_bias", "(N, C_out, H_out, W_out)")
    return grad_output.sum(axis=(0, 2, 3))

