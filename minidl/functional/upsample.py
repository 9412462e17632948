"""2-D resizing of NCHW images, as :func:`torch.nn.functional.interpolate` (modes 'nearest' and 'bilinear').

Both modes are linear maps along each axis, applied separably: output row ``u`` reads input
rows through a row of an interpolation matrix ``A_h`` (``(H_out, H)``), and likewise for the
columns: ``Y = A_h X A_w^T`` for every (n, c). The backward pass is the transpose,
``dL/dX = A_h^T G A_w``: the adjoint scatter-adds every output pixel's gradient back onto the
input pixels it was read from, with the same weights.

* nearest (torch's legacy 'nearest'): ``A_h`` is one-hot, output row ``u`` copies input row
  ``min(floor(u * scale), H - 1)``; forward is an index gather, backward sums runs of equal
  indices (they are sorted) with :func:`numpy.add.reduceat`.
* bilinear: each row of ``A_h`` holds ``1 - lambda`` and ``lambda`` at two neighbouring input
  rows; forward and backward are two matrix products.

``scale`` is torch's: ``1 / scale_factor`` when a scale factor is given, else ``H / H_out``;
for bilinear with ``align_corners=True``, ``(H - 1) / (H_out - 1)``. The coordinates are
computed in the input's precision (float32 for float16 and float32, as torch's ``opmath``),
so that every index and weight is torch's. Derivation: ``docs/derivations/upsample.md``.
"""

from __future__ import annotations

import math

import numpy as np

from ..validation import check_array, check_float_dtype, check_ndim, is_int

__all__ = ["upsample_nearest2d", "upsample_nearest2d_backward", "upsample_bilinear2d",
           "upsample_bilinear2d_backward", "upsample_output_size", "check_resize_args"]


def _scale_pair(scale_factor, where):
    if scale_factor is None:
        return None
    values = tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) else (scale_factor, scale_factor)
    ok = len(values) == 2 and all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                                  and math.isfinite(v) and v > 0 for v in values)
    if not ok:
        raise ValueError(f"{where}: scale_factor must be a positive finite number or a pair of them. "
                         f"Received: scale_factor={scale_factor!r}")
    return tuple(float(v) for v in values)


def _scales(scale_factor, where):
    """The factor along H and W, or (None, None)."""
    return _scale_pair(scale_factor, where) or (None, None)


def check_resize_args(size, scale_factor, where):
    """``(size, scale_factor)`` as pairs (None for the one not given), or the ValueError that says why not.

    Parameters
    ----------
    size : int or (int, int), optional
    scale_factor : float or (float, float), optional
        Exactly one of the two, as :class:`torch.nn.Upsample`.
    where : str
        The caller, named in error messages.

    Returns
    -------
    ((int, int) or None, (float, float) or None)

    Raises
    ------
    ValueError
        Both or neither given, or a size or factor that is not positive.

    Examples
    --------
    >>> check_resize_args(None, 2, "Upsample")
    (None, (2.0, 2.0))
    """
    if (size is None) == (scale_factor is None):
        given = "both" if size is not None else "neither"
        raise ValueError(f"{where}: give exactly one of size and scale_factor (as torch.nn.Upsample); got {given}. "
                         "E.g. scale_factor=2 doubles H and W, size=(16, 16) sets them.")
    if size is None:
        return None, _scale_pair(scale_factor, where)
    values = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
    if len(values) != 2 or not all(is_int(v) and v > 0 for v in values):
        raise ValueError(f"{where}: size must be a positive int or a pair of them (H_out, W_out). "
                         f"Received: size={size!r}")
    return tuple(int(v) for v in values), None


def upsample_output_size(input_hw, size=None, scale_factor=None, where="upsample"):
    """``(H_out, W_out)``: ``size``, or ``floor(H * scale_factor)`` as torch; exactly one of them.

    Parameters
    ----------
    input_hw : (int, int)
    size : int or (int, int), optional
    scale_factor : float or (float, float), optional
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    (int, int)

    Raises
    ------
    ValueError
        Both or neither given, a size or factor that is not positive, an empty output.

    Examples
    --------
    >>> upsample_output_size((5, 4), scale_factor=1.5), upsample_output_size((5, 4), size=(3, 8))
    ((7, 6), (3, 8))
    """
    size, scales = check_resize_args(size, scale_factor, where)
    if size is not None:
        return size
    out = tuple(math.floor(float(h) * s) for h, s in zip(input_hw, scales))
    if min(out) < 1:
        raise ValueError(f"{where}: the output would be empty: floor({tuple(input_hw)} * {scale_factor!r}) = {out}. "
                         "Use a larger scale_factor or give size.")
    return out


def _check_x(x, where, name="x"):
    check_array(x, name, where)
    check_ndim(x, 4, name, where, "(N, C, H, W)")
    check_float_dtype(x, name, where)


def _opmath(dtype):
    """torch's accumulation type for the coordinates: float32 for float16/float32, else float64."""
    return np.float64 if dtype == np.float64 else np.float32


def _nearest_index(n_in, n_out, scale):
    """``min(floor(u * s), n_in - 1)`` for every output index ``u``, in float32 as torch (which copies
    for ``n_out == n_in`` and halves for ``n_out == 2 n_in``, whatever the factor)."""
    u = np.arange(n_out)
    if n_out in (n_in, 2 * n_in):
        return u // (n_out // n_in)
    s = np.float32(1.0 / scale) if scale is not None else np.float32(n_in) / np.float32(n_out)
    return np.minimum(np.floor(u.astype(np.float32) * s).astype(np.int64), n_in - 1)


def _linear_matrix(n_in, n_out, scale, align_corners, dtype):
    """The ``(n_out, n_in)`` bilinear interpolation matrix along one axis (torch's indices and weights)."""
    op = _opmath(dtype)
    if n_out == n_in:  # torch copies an axis whose size is kept, whatever the factor
        return np.eye(n_in, dtype=dtype)
    if align_corners:
        s = op(n_in - 1) / op(n_out - 1) if n_out > 1 else op(0)
        src = np.arange(n_out, dtype=op) * s
    else:
        s = op(1.0 / scale) if scale is not None else op(n_in) / op(n_out)
        src = np.maximum((np.arange(n_out, dtype=op) + op(0.5)) * s - op(0.5), op(0))  # below 0: row 0
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    lam = np.clip(src - i0, 0, 1)
    i1 = i0 + (i0 < n_in - 1)
    a = np.zeros((n_out, n_in), dtype=op)
    rows = np.arange(n_out)
    a[rows, i0] += 1 - lam
    a[rows, i1] += lam  # i1 == i0 at the last row: the weights add up to 1 there
    return a.astype(dtype)


def upsample_nearest2d(x, output_size, scale_factor=None, *, where="upsample_nearest2d"):
    r"""Nearest-neighbour resize, as ``interpolate(x, mode='nearest')`` (torch's legacy rule).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), floating
    output_size : int or (H_out, W_out)
        :func:`upsample_output_size` gives it from a scale factor.
    scale_factor : float or (float, float), optional
        The factor ``output_size`` came from: torch then reads row ``floor(u / scale_factor)``
        rather than ``floor(u * H / H_out)`` (they differ for non-integer factors).
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray, shape (N, C, H_out, W_out), ``x``'s dtype

    Raises
    ------
    TypeError, ValueError
        ``x`` not a 4-D floating array; a size or factor that is not positive.

    Shape
    -----
    (N, C, H, W) -> (N, C, H_out, W_out).

    Notes
    -----
    .. math:: Y[n, c, u, v] = X[n, c, \min(\lfloor u\, s_h \rfloor, H - 1), \min(\lfloor v\, s_w \rfloor, W - 1)]

    with :math:`s_h = 1/\text{scale\_factor}_h` when given, else :math:`H / H_{out}`.

    Examples
    --------
    >>> upsample_nearest2d(np.arange(4.0).reshape(1, 1, 2, 2), 4)[0, 0]
    array([[0., 0., 1., 1.],
           [0., 0., 1., 1.],
           [2., 2., 3., 3.],
           [2., 2., 3., 3.]])
    """
    _check_x(x, where)
    (ho, wo), scales = upsample_output_size(x.shape[2:], output_size, where=where), _scales(scale_factor, where)
    rows = _nearest_index(x.shape[2], ho, scales[0])
    cols = _nearest_index(x.shape[3], wo, scales[1])
    return x[:, :, rows[:, None], cols[None, :]]


def _sum_runs(g, index, n_in, axis):
    """``A^T g`` along ``axis`` for a one-hot ``A`` given by its sorted ``index``: runs summed, unread rows 0."""
    read, starts = np.unique(index, return_index=True)
    shape = list(g.shape)
    shape[axis] = n_in
    out = np.zeros(shape, dtype=g.dtype)
    where = [slice(None)] * g.ndim
    where[axis] = read
    out[tuple(where)] = np.add.reduceat(g, starts, axis=axis)
    return out


def upsample_nearest2d_backward(grad_output, input_size, scale_factor=None, *,
                                where="upsample_nearest2d_backward"):
    r"""Gradient of :func:`upsample_nearest2d`: each output pixel's gradient added onto the pixel it copied.

    Parameters
    ----------
    grad_output : ndarray, shape (N, C, H_out, W_out), floating
    input_size : tuple (N, C, H, W)
        The forward input's shape.
    scale_factor : float or (float, float), optional
        As in the forward call.
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray, shape ``input_size``, ``grad_output``'s dtype

    Raises
    ------
    TypeError, ValueError
        Not a 4-D floating array; ``input_size`` not (N, C, H, W) with ``grad_output``'s N and C.

    Shape
    -----
    (N, C, H_out, W_out) -> ``input_size``.

    Notes
    -----
    .. math:: \frac{\partial L}{\partial X}[n, c, i, j] = \sum_{u: r(u) = i}\ \sum_{v: r'(v) = j} G[n, c, u, v]

    (:math:`A_h^\top G A_w` with one-hot matrices); input rows no output copies get 0.

    Examples
    --------
    >>> upsample_nearest2d_backward(np.ones((1, 1, 4, 4)), (1, 1, 2, 2))[0, 0]
    array([[4., 4.],
           [4., 4.]])
    """
    n, c, h, w = _check_backward(grad_output, input_size, where)
    ho, wo = grad_output.shape[2:]
    scales = _scales(scale_factor, where)
    rows = _sum_runs(grad_output, _nearest_index(h, ho, scales[0]), h, 2)
    return _sum_runs(rows, _nearest_index(w, wo, scales[1]), w, 3)


def _check_backward(grad_output, input_size, where):
    _check_x(grad_output, where, "grad_output")
    input_size = tuple(int(s) for s in input_size)
    if len(input_size) != 4 or input_size[:2] != grad_output.shape[:2] or min(input_size[2:]) < 1:
        raise ValueError(f"{where}: input_size must be (N, C, H, W) with grad_output's N and C "
                         f"{grad_output.shape[:2]} and H, W >= 1. Received: input_size={input_size!r}")
    return input_size


def upsample_bilinear2d(x, output_size, align_corners=False, scale_factor=None, *, where="upsample_bilinear2d"):
    r"""Bilinear resize, as ``interpolate(x, mode='bilinear', align_corners=...)``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), floating
    output_size : int or (H_out, W_out)
    align_corners : bool, default False
        True: the corner pixels of input and output are aligned (``src = u (H - 1) / (H_out - 1)``);
        False: pixel centres are (``src = (u + 0.5) s - 0.5``, clamped at 0).
    scale_factor : float or (float, float), optional
        The factor ``output_size`` came from (torch then uses ``s = 1 / scale_factor``).
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray, shape (N, C, H_out, W_out), ``x``'s dtype

    Raises
    ------
    TypeError, ValueError
        ``x`` not a 4-D floating array; a size or factor that is not positive.

    Shape
    -----
    (N, C, H, W) -> (N, C, H_out, W_out).

    Notes
    -----
    .. math:: Y[n, c] = A_h\, X[n, c]\, A_w^\top, \qquad
              A_h[u, i_0(u)] \mathrel{+}= 1 - \lambda(u),\ A_h[u, i_0(u) + 1] \mathrel{+}= \lambda(u)

    with :math:`i_0 = \lfloor \mathrm{src}(u) \rfloor`, :math:`\lambda = \mathrm{src} - i_0`.

    Examples
    --------
    >>> upsample_bilinear2d(np.array([[[[0.0, 1.0]]]]), (1, 4))[0, 0]
    array([[0.  , 0.25, 0.75, 1.  ]])
    """
    _check_x(x, where)
    (ho, wo), scales = upsample_output_size(x.shape[2:], output_size, where=where), _scales(scale_factor, where)
    ah = _linear_matrix(x.shape[2], ho, scales[0], bool(align_corners), x.dtype)
    aw = _linear_matrix(x.shape[3], wo, scales[1], bool(align_corners), x.dtype)
    return np.matmul(np.matmul(ah, x), aw.T)  # A_h X A_w^T for every (n, c)


def upsample_bilinear2d_backward(grad_output, input_size, align_corners=False, scale_factor=None, *,
                                 where="upsample_bilinear2d_backward"):
    r"""Gradient of :func:`upsample_bilinear2d`: ``A_h^T G A_w``, the interpolation transposed.

    Parameters
    ----------
    grad_output : ndarray, shape (N, C, H_out, W_out), floating
    input_size : tuple (N, C, H, W)
        The forward input's shape.
    align_corners : bool, default False
    scale_factor : float or (float, float), optional
        As in the forward call.
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray, shape ``input_size``, ``grad_output``'s dtype

    Raises
    ------
    TypeError, ValueError
        Not a 4-D floating array; ``input_size`` not (N, C, H, W) with ``grad_output``'s N and C.

    Shape
    -----
    (N, C, H_out, W_out) -> ``input_size``.

    Notes
    -----
    .. math:: \frac{\partial L}{\partial X}[n, c] = A_h^\top\, G[n, c]\, A_w

    every output pixel's gradient scatter-added onto its (up to) four source pixels with its weights.

    Examples
    --------
    >>> upsample_bilinear2d_backward(np.ones((1, 1, 1, 4)), (1, 1, 1, 2))[0, 0]
    array([[2., 2.]])
    """
    n, c, h, w = _check_backward(grad_output, input_size, where)
    ho, wo = grad_output.shape[2:]
    scales = _scales(scale_factor, where)
    ah = _linear_matrix(h, ho, scales[0], bool(align_corners), grad_output.dtype)
    aw = _linear_matrix(w, wo, scales[1], bool(align_corners), grad_output.dtype)
    return np.matmul(np.matmul(ah.T, grad_output), aw)
