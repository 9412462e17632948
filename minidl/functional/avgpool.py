"""2-D average pooling and global average pooling, with their backward passes.

Average pooling runs on strided views of the input (one per kernel offset), in the
input's memory layout (NCHW, or the channels-last strides Conv2D returns): the
peak is the output plus the divisor, never a copy of the input.
"""

from __future__ import annotations

import numpy as np

from ..validation import check_array, check_float_dtype, check_ndim, is_int, pair
from .pool import check_channels, full_nchw, is_channels_last, kernel_offsets, pool_geometry

__all__ = ["avg_pool2d", "avg_pool2d_backward", "global_avg_pool2d", "global_avg_pool2d_backward",
           "check_avg_padding", "check_divisor_override", "window_divisors"]


def check_avg_padding(padding, where):
    """``padding`` as a ``(ph, pw)`` pair of ints >= 0 (AvgPool takes symmetric padding, as torch).

    Parameters
    ----------
    padding : int or (ph, pw)
        Each >= 0.
    where : str
        The caller, named in error messages.

    Returns
    -------
    (int, int)

    Raises
    ------
    TypeError, ValueError
        Not an int or a pair of ints (a str such as 'same' included), or negative.

    Examples
    --------
    >>> check_avg_padding(1, "AvgPool2D")
    (1, 1)
    """
    if isinstance(padding, str):
        raise TypeError(f"{where}: padding must be an int or a pair of ints (ph, pw), as in torch.nn.AvgPool2d. "
                        f"Received: padding={padding!r}")
    ph, pw = pair(padding, "padding", where)
    if min(ph, pw) < 0:
        raise ValueError(f"{where}: padding must be >= 0. Received: padding={padding!r}")
    return ph, pw


def check_divisor_override(divisor_override, where):
    """``divisor_override`` as torch takes it: None, or a nonzero int.

    Parameters
    ----------
    divisor_override : int or None
    where : str or object
        The caller, named in error messages.

    Returns
    -------
    int or None

    Raises
    ------
    TypeError
        Not None or an int (a float, a bool).
    ValueError
        Zero (torch: "divisor must be not zero").

    Examples
    --------
    >>> check_divisor_override(4, "AvgPool2D"), check_divisor_override(None, "AvgPool2D")
    (4, None)
    """
    if divisor_override is None:
        return None
    if not is_int(divisor_override):
        raise TypeError(f"{where}: divisor_override must be None or an int, as in torch.nn.AvgPool2d. "
                        f"Received: divisor_override={divisor_override!r}")
    if divisor_override == 0:
        raise ValueError(f"{where}: divisor_override must not be zero (None: each window's own divisor). "
                         f"Received: divisor_override=0")
    return int(divisor_override)


def _divisor(size, k, s, pad, n_out, count_include_pad):
    """Per output position along one axis: the window length that divides, PyTorch's rule."""
    start = np.arange(n_out) * s - pad
    end = np.minimum(start + k, size + pad)  # windows hanging past the padding (ceil_mode) are cut
    if count_include_pad:
        return end - start
    return np.minimum(end, size) - np.maximum(start, 0)


def window_divisors(input_hw, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """PyTorch's divisor of every window of :func:`avg_pool2d` (no ``divisor_override``), float64.

    Parameters
    ----------
    input_hw : (int, int)
    kernel_size, stride, padding, ceil_mode, count_include_pad : as in :func:`avg_pool2d`

    Returns
    -------
    ndarray, shape (H_out, W_out)

    Shape
    -----
    (H_out, W_out) of the pooled output.

    Examples
    --------
    >>> window_divisors((3, 3), 2, padding=1, count_include_pad=False)
    array([[1., 2.],
           [2., 4.]])
    """
    pads = check_avg_padding(padding, "window_divisors")
    geo = pool_geometry(tuple(input_hw), kernel_size, stride, pads, "window_divisors", 1, ceil_mode)
    return _divisors(tuple(input_hw), geo, pads, count_include_pad, False, np.float64)


def _divisors(input_hw, geo, pads, count_include_pad, channels_last, dtype, divisor_override=None):
    if divisor_override is not None:  # torch: every window divided by it
        return np.asarray(divisor_override, dtype=dtype)
    (kh, kw), (sh, sw), (ho, wo) = geo.kernel, geo.stride, geo.out
    rows = _divisor(input_hw[0], kh, sh, pads[0], ho, count_include_pad)
    cols = _divisor(input_hw[1], kw, sw, pads[1], wo, count_include_pad)
    d = np.outer(rows, cols).astype(dtype)
    return d[:, :, None] if channels_last else d


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, where="avg_pool2d"):
    r"""Average pooling over (kh, kw) windows, as :func:`torch.nn.functional.avg_pool2d`.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), floating point (dtype kept)
    kernel_size : int or (kh, kw)
    stride : int or (sh, sw), optional; defaults to ``kernel_size``
    padding : int or (ph, pw)
        Zero padding on both sides, at most half the kernel.
    ceil_mode : bool
        Round the output size up; the windows that hang over the bottom/right edge
        average what they hold (see Notes).
    count_include_pad : bool
        Whether the zero padding counts in the divisor.
    divisor_override : int, optional
        Divide every window's sum by it instead (torch's; nonzero).
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray, shape (N, C, H_out, W_out), in ``x``'s memory layout

    Shape
    -----
    ``H_out = floor((H + 2 ph - kh) / sh) + 1`` (ceil with ``ceil_mode``, less one if
    the last window would start in the right padding); likewise ``W_out``.

    Notes
    -----
    :math:`Y[n,c,i,j] = \frac{1}{D_{ij}} \sum_{p,q} X_{pad}[n, c, s_h i + p, s_w j + q]`,
    PyTorch's divisor :math:`D_{ij} = D^h_i D^w_j`: along each axis the window
    ``[i s - p, i s - p + k)`` clipped to ``H + p`` (the padded extent) with
    ``count_include_pad``, else clipped to the input ``[0, H)``; ``divisor_override``
    replaces every :math:`D_{ij}`.

    Examples
    --------
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> avg_pool2d(x, 2)[0, 0]
    array([[ 2.5,  4.5],
           [10.5, 12.5]], dtype=float32)
    >>> avg_pool2d(np.ones((1, 1, 3, 3)), 2, padding=1, count_include_pad=False)[0, 0]
    array([[1., 1.],
           [1., 1.]])
    """
    check_array(x, "x", where)
    check_ndim(x, 4, "x", where, "(N, C, H, W)")
    check_float_dtype(x, "x", where)
    n, c, h, w = x.shape
    pads = check_avg_padding(padding, where)
    divisor_override = check_divisor_override(divisor_override, where)
    geo = pool_geometry((h, w), kernel_size, stride, pads, where, 1, ceil_mode)
    check_channels(x, where)
    channels_last = is_channels_last(x)
    xm = x.transpose(0, 2, 3, 1) if channels_last else x
    ho, wo = geo.out
    out = np.zeros((n, ho, wo, c) if channels_last else (n, c, ho, wo), dtype=x.dtype)
    for _, src, sel in kernel_offsets(xm, geo, channels_last):
        dst = out if sel is None else out[sel]
        dst += src
    out /= _divisors((h, w), geo, pads, count_include_pad, channels_last, x.dtype, divisor_override)
    return out.transpose(0, 3, 1, 2) if channels_last else out


def avg_pool2d_backward(input_size, grad_output, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None, *, where="avg_pool2d_backward"):
    r"""Gradient of :func:`avg_pool2d` with respect to its input.

    Parameters
    ----------
    input_size : tuple (N, C, H, W)
    grad_output : ndarray, shape (N, C, H_out, W_out)
    kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override : as in the forward call
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray, shape ``input_size``, in ``grad_output``'s memory layout (channels-last
    strides for a channels-last gradient).

    Shape
    -----
    ``grad_output`` (N, C, H_out, W_out) -> dL/dx (N, C, H, W) = ``input_size``.

    Notes
    -----
    The adjoint of the forward: each window's ``G[i, j] / D[i, j]`` is added to
    every input element of the window (padding positions are dropped):
    :math:`dX[s_h i + p - p_h, s_w j + q - p_w] \mathrel{+}= G_{ij} / D_{ij}`.

    Examples
    --------
    >>> avg_pool2d_backward((1, 1, 2, 2), np.ones((1, 1, 1, 1)), 2)[0, 0]
    array([[0.25, 0.25],
           [0.25, 0.25]])
    """
    check_array(grad_output, "grad_output", where)
    check_float_dtype(grad_output, "grad_output", where)
    n, c, h, w = (int(v) for v in input_size)
    pads = check_avg_padding(padding, where)
    divisor_override = check_divisor_override(divisor_override, where)
    geo = pool_geometry((h, w), kernel_size, stride, pads, where, 1, ceil_mode)
    ho, wo = geo.out
    if grad_output.shape != (n, c, ho, wo):
        raise ValueError(f"{where}: expected grad_output of shape {(n, c, ho, wo)}, got {grad_output.shape}.")
    channels_last = is_channels_last(grad_output)
    gm = grad_output.transpose(0, 2, 3, 1) if channels_last else grad_output
    scaled = gm / _divisors((h, w), geo, pads, count_include_pad, channels_last, grad_output.dtype, divisor_override)
    dx = full_nchw((n, c, h, w), 0, grad_output.dtype, channels_last)
    dxm = dx.transpose(0, 2, 3, 1) if channels_last else dx
    for _, dst, sel in kernel_offsets(dxm, geo, channels_last):
        dst += scaled if sel is None else scaled[sel]
    return dx


def global_avg_pool2d(x, *, where="global_avg_pool2d"):
    r"""The mean over each channel's H x W plane, as :func:`torch.nn.functional.adaptive_avg_pool2d` (output 1).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), floating point (dtype kept)
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray, shape (N, C, 1, 1)

    Shape
    -----
    (N, C, H, W) -> (N, C, 1, 1).

    Notes
    -----
    :math:`Y[n, c] = \frac{1}{HW}\sum_{h,w} X[n, c, h, w]`; backward spreads
    :math:`G[n, c] / (HW)` over the plane.

    Examples
    --------
    >>> global_avg_pool2d(np.arange(8.0).reshape(1, 2, 2, 2))[:, :, 0, 0]
    array([[1.5, 5.5]])
    """
    check_array(x, "x", where)
    check_ndim(x, 4, "x", where, "(N, C, H, W)")
    check_float_dtype(x, "x", where)
    if x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"{where}: expected a non-empty H x W plane. Received: x of shape {x.shape}.")
    return x.mean(axis=(2, 3), keepdims=True, dtype=x.dtype)


def global_avg_pool2d_backward(input_size, grad_output, *, where="global_avg_pool2d_backward"):
    """Gradient of :func:`global_avg_pool2d`: ``G / (H * W)`` in every position of the plane.

    Parameters
    ----------
    input_size : tuple (N, C, H, W)
        The forward input's shape.
    grad_output : ndarray, shape (N, C, 1, 1)
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray, shape ``input_size``, ``grad_output``'s dtype

    Shape
    -----
    (N, C, 1, 1) -> (N, C, H, W).

    Examples
    --------
    >>> global_avg_pool2d_backward((1, 1, 2, 2), np.ones((1, 1, 1, 1)))[0, 0]
    array([[0.25, 0.25],
           [0.25, 0.25]])
    """
    check_array(grad_output, "grad_output", where)
    check_float_dtype(grad_output, "grad_output", where)
    n, c, h, w = (int(v) for v in input_size)
    if grad_output.shape != (n, c, 1, 1):
        raise ValueError(f"{where}: expected grad_output of shape {(n, c, 1, 1)}, got {grad_output.shape}.")
    dx = np.empty((n, c, h, w), dtype=grad_output.dtype)
    np.divide(grad_output, h * w, out=dx)  # broadcast over the plane
    return dx
