"""Adaptive average and max pooling: an output size instead of a kernel, as torch's.

Output row ``i`` of ``out_h`` pools the input rows ``[floor(i H / out_h), ceil((i + 1) H / out_h))``
(PyTorch's bins; columns alike): bins may differ in size by one and neighbours may share a row.
A bin of the plane is a product of a row bin and a column bin, so both pools are separable: pool
the column bins of every row, then the row bins of that. Each is a Python loop over the bins of
one axis (``out_w`` then ``out_h`` slice reductions, never ``out_h * out_w``); the work is a pass
over ``x`` and one over the ``(N, C, H, out_w)`` intermediate, times the overlap of the bins
(at most 2 when the output is no larger than the input). Derivation:
``docs/derivations/pooling.md``, section "Adaptive pooling".
"""

from __future__ import annotations

import numpy as np

from ..validation import check_array, check_float_dtype, check_ndim, is_int

__all__ = ["adaptive_avg_pool2d", "adaptive_avg_pool2d_backward", "adaptive_max_pool2d",
           "adaptive_max_pool2d_backward", "adaptive_bins", "adaptive_output_size"]


def adaptive_output_size(output_size, where, input_hw=None):
    """``output_size`` as ``(out_h, out_w)``; a None entry takes the input's size (when ``input_hw`` is given).

    Parameters
    ----------
    output_size : int, or a pair of int or None
    where : str or object
        The caller, named in error messages.
    input_hw : (int, int), optional
        The input's (H, W), which replaces the None entries.

    Returns
    -------
    (int or None, int or None)

    Raises
    ------
    TypeError
        Not an int or a pair of int/None.
    ValueError
        An entry below 1.

    Examples
    --------
    >>> adaptive_output_size(3, "AdaptiveAvgPool2D"), adaptive_output_size((None, 2), "f", (5, 7))
    ((3, 3), (5, 2))
    """
    sizes = (output_size, output_size) if output_size is None or is_int(output_size) else output_size
    if not (isinstance(sizes, (tuple, list)) and len(sizes) == 2 and all(s is None or is_int(s) for s in sizes)):
        raise TypeError(f"{where}: output_size must be an int or a pair (h, w) of ints or None, as in torch. "
                        f"Received: output_size={output_size!r}")
    if any(s is not None and s < 1 for s in sizes):
        raise ValueError(f"{where}: output_size must be >= 1 (None keeps the input's size). "
                         f"Received: output_size={output_size!r}")
    sizes = tuple(None if s is None else int(s) for s in sizes)
    if input_hw is None:
        return sizes
    return tuple(int(n) if s is None else s for s, n in zip(sizes, input_hw))


def adaptive_bins(size, out):
    """The bins of one axis, PyTorch's: ``start = floor(i size / out)``, ``end = ceil((i + 1) size / out)``.

    Parameters
    ----------
    size : int
        The input's length along the axis.
    out : int
        The number of bins.

    Returns
    -------
    list of (int, int)
        ``(start, end)`` of each bin, ``end > start``.

    Examples
    --------
    >>> adaptive_bins(5, 3)
    [(0, 2), (1, 4), (3, 5)]
    """
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def _check_x(x, output_size, where):
    check_array(x, "x", where)
    check_ndim(x, 4, "x", where, "(N, C, H, W)")
    check_float_dtype(x, "x", where)
    if x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"{where}: expected a non-empty H x W plane, as torch. Received: x of shape {x.shape}.")
    return adaptive_output_size(output_size, where, x.shape[2:])


def _check_grad(input_size, grad_output, where):
    check_array(grad_output, "grad_output", where)
    check_float_dtype(grad_output, "grad_output", where)
    n, c, h, w = (int(v) for v in input_size)
    if grad_output.ndim != 4 or grad_output.shape[:2] != (n, c) or 0 in grad_output.shape[2:]:
        raise ValueError(f"{where}: expected grad_output of shape ({n}, {c}, out_h, out_w), "
                         f"got {grad_output.shape}.")
    return n, c, h, w


def adaptive_avg_pool2d(x, output_size, *, where="adaptive_avg_pool2d"):
    r"""The mean of each bin, as :func:`torch.nn.functional.adaptive_avg_pool2d`.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), floating point (dtype kept)
    output_size : int or (out_h, out_w)
        An entry None keeps the input's size.
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray, shape (N, C, out_h, out_w)

    Shape
    -----
    (N, C, H, W) -> (N, C, out_h, out_w).

    Notes
    -----
    :math:`Y[i, j] = \frac{1}{|R_i| |C_j|} \sum_{r \in R_i, c \in C_j} X[r, c]` with the bins
    :math:`R_i, C_j` of :func:`adaptive_bins`; computed as the column means, then their row means.

    Examples
    --------
    >>> adaptive_avg_pool2d(np.arange(5.0).reshape(1, 1, 1, 5), (1, 3))
    array([[[[0.5, 2. , 3.5]]]])
    """
    out_h, out_w = _check_x(x, output_size, where)
    cols = np.stack([x[..., a:b].mean(-1, dtype=x.dtype) for a, b in adaptive_bins(x.shape[3], out_w)], -1)
    return np.stack([cols[:, :, a:b].mean(2, dtype=x.dtype) for a, b in adaptive_bins(x.shape[2], out_h)], 2)


def adaptive_avg_pool2d_backward(input_size, grad_output, *, where="adaptive_avg_pool2d_backward"):
    r"""Gradient of :func:`adaptive_avg_pool2d`: each bin's ``G / |bin|`` added to every element of the bin.

    Parameters
    ----------
    input_size : tuple (N, C, H, W)
    grad_output : ndarray, shape (N, C, out_h, out_w)
        The output size is read from it.
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray, shape ``input_size``, ``grad_output``'s dtype

    Shape
    -----
    (N, C, out_h, out_w) -> (N, C, H, W).

    Notes
    -----
    The adjoint of the forward's two steps, in reverse order: spread each row bin, then each
    column bin; overlapping bins add up.

    Examples
    --------
    >>> adaptive_avg_pool2d_backward((1, 1, 1, 5), np.ones((1, 1, 1, 3)))
    array([[[[0.5       , 0.83333333, 0.33333333, 0.83333333, 0.5       ]]]])
    """
    n, c, h, w = _check_grad(input_size, grad_output, where)
    out_h, out_w = grad_output.shape[2:]
    rows = np.zeros((n, c, h, out_w), grad_output.dtype)
    for i, (a, b) in enumerate(adaptive_bins(h, out_h)):
        rows[:, :, a:b] += grad_output[:, :, i : i + 1] / grad_output.dtype.type(b - a)
    dx = np.zeros((n, c, h, w), grad_output.dtype)
    for j, (a, b) in enumerate(adaptive_bins(w, out_w)):
        dx[..., a:b] += rows[..., j : j + 1] / grad_output.dtype.type(b - a)
    return dx


def adaptive_max_pool2d(x, output_size, return_indices=False, *, where="adaptive_max_pool2d"):
    r"""The maximum of each bin, as :func:`torch.nn.functional.adaptive_max_pool2d`.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), floating point (dtype kept)
    output_size : int or (out_h, out_w)
        An entry None keeps the input's size.
    return_indices : bool, default False
        Also return where each maximum is, as torch: its flat index ``r * W + c`` in the
        H x W plane (int64); :func:`adaptive_max_pool2d_backward` takes it.
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    out : ndarray, shape (N, C, out_h, out_w)
    indices : ndarray of int64, same shape (only with ``return_indices``)

    Shape
    -----
    (N, C, H, W) -> (N, C, out_h, out_w).

    Notes
    -----
    :math:`Y[i, j] = \max_{r \in R_i, c \in C_j} X[r, c]`. Ties go to the first maximum in
    row-major order (torch's CPU rule): the column step keeps each row's first maximum,
    the row step the first row holding the bin's maximum. A NaN counts as the maximum (the
    first NaN of the bin is its index; torch's CPU kernel keeps the last).

    Examples
    --------
    >>> x = np.array([[[[1., 3., 3.], [3., 0., 2.]]]])
    >>> y, idx = adaptive_max_pool2d(x, 1, return_indices=True)
    >>> y[0, 0, 0, 0], idx[0, 0, 0, 0]
    (np.float64(3.0), np.int64(1))
    """
    out_h, out_w = _check_x(x, output_size, where)
    h, w = x.shape[2:]
    col_bins, row_bins = adaptive_bins(w, out_w), adaptive_bins(h, out_h)
    # step 1: per row, the maximum of each column bin and its column (argmax: the first one)
    col_max = np.stack([x[..., a:b].max(-1) for a, b in col_bins], -1)  # (N, C, H, out_w)
    out = np.stack([col_max[:, :, a:b].max(2) for a, b in row_bins], 2)
    if not return_indices:
        return out
    col_arg = np.stack([x[..., a:b].argmax(-1) + a for a, b in col_bins], -1)
    # step 2: per column bin, the first row of each row bin whose maximum is the bin's
    row_arg = np.stack([col_max[:, :, a:b].argmax(2) + a for a, b in row_bins], 2)  # (N, C, out_h, out_w)
    col = np.take_along_axis(col_arg, row_arg, axis=2)
    return out, (row_arg * w + col).astype(np.int64)


def adaptive_max_pool2d_backward(input_size, grad_output, indices, *, where="adaptive_max_pool2d_backward"):
    """Gradient of :func:`adaptive_max_pool2d`: each bin's gradient goes to its maximum; bins sharing it add up.

    Parameters
    ----------
    input_size : tuple (N, C, H, W)
    grad_output : ndarray, shape (N, C, out_h, out_w)
    indices : ndarray of integers, from ``adaptive_max_pool2d(..., return_indices=True)``
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray, shape ``input_size``, ``grad_output``'s dtype

    Shape
    -----
    ``grad_output`` and ``indices`` (N, C, out_h, out_w) -> (N, C, H, W).

    Examples
    --------
    >>> x = np.array([[[[1., 3., 2.]]]])
    >>> y, idx = adaptive_max_pool2d(x, (1, 2), return_indices=True)
    >>> adaptive_max_pool2d_backward(x.shape, np.ones_like(y), idx)
    array([[[[0., 2., 0.]]]])
    """
    n, c, h, w = _check_grad(input_size, grad_output, where)
    check_array(indices, "indices", where)
    if indices.dtype.kind not in "ui" or indices.shape != grad_output.shape:
        raise TypeError(f"{where}: indices must be the integer array adaptive_max_pool2d(..., return_indices=True) "
                        f"returned, of grad_output's shape {grad_output.shape}. Received: indices of dtype "
                        f"{indices.dtype} and shape {indices.shape}.")
    planes = np.arange(n * c).reshape(n, c, 1, 1) * (h * w)  # each (n, c) plane's offset in dx.ravel()
    dx = np.zeros((n, c, h, w), grad_output.dtype)
    np.add.at(dx.reshape(-1), planes + indices, grad_output)  # bins that share their maximum add up
    return dx
