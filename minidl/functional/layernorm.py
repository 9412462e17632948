r"""Layer normalisation and its backward, as :func:`torch.nn.functional.layer_norm`.

Statistics are per sample, over the trailing ``normalized_shape`` axes (``M`` values per
row once the input is seen as a (B, M) matrix). The row helpers here (statistics in two
passes, the compact backward) serve :mod:`minidl.functional.groupnorm` too, which sees its
input as (N * G, M) rows. float16 is computed in float32 and rounded back, as torch does
on the CPU.
"""

from __future__ import annotations

import numpy as np

from ..validation import check_array, check_float_dtype, is_int

__all__ = ["layer_norm", "layer_norm_backward"]


# ----------------------------------------------------------------- row helpers
def compute_dtype(x):
    """``x`` in the dtype the arithmetic runs in: float32 for float16, else ``x`` itself."""
    return x.astype(np.float32) if x.dtype == np.float16 else x


def normalize_rows(rows, eps):
    """``(x_hat, mean, inv_std, var)`` of a (B, M) matrix, per row (var biased); ``x_hat`` a new array."""
    m = rows.shape[1]
    mean = rows.sum(axis=1, keepdims=True) / max(m, 1)
    x_hat = rows - mean  # centred first (two passes: a large mean costs no accuracy)
    var = np.einsum("bm,bm->b", x_hat, x_hat)[:, None] / max(m, 1)
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat *= inv_std
    return x_hat, mean, inv_std, var


def rows_backward(grad_x_hat, x_hat, inv_std):
    """dL/dx of ``x_hat = (x - mean(x)) * inv_std`` per row, given dL/dx_hat; both arrays are overwritten
    (the result is ``grad_x_hat``'s memory: no temporary of the input's size)."""
    m = max(grad_x_hat.shape[1], 1)
    mean_g = grad_x_hat.sum(axis=1, keepdims=True) / m
    mean_gx = np.einsum("bm,bm->b", grad_x_hat, x_hat)[:, None] / m
    grad_x_hat -= mean_g
    x_hat *= mean_gx
    grad_x_hat -= x_hat
    grad_x_hat *= inv_std
    return grad_x_hat


def check_float(x, name, where):
    check_array(x, name, where)
    check_float_dtype(x, name, where)
    return x


def check_param(v, name, shape, x, where):
    """``v`` (weight, bias) None or an ndarray of ``shape`` and ``x``'s dtype."""
    if v is None:
        return None
    check_array(v, name, where)
    if v.shape != tuple(shape) or v.dtype != x.dtype:
        raise ValueError(f"{where}: {name} must have shape {tuple(shape)} and the input's dtype {x.dtype}. "
                         f"Received: shape {v.shape}, dtype {v.dtype}.")
    return v


def check_eps(eps, where):
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, (int, float, np.floating, np.integer)) \
            or not np.isfinite(eps) or eps < 0:
        raise ValueError(f"{where}: eps must be a finite real number >= 0. Received: eps={eps!r}")
    return float(eps)


def _normalized_shape(normalized_shape, x, where):
    shape = (normalized_shape,) if is_int(normalized_shape) else normalized_shape
    if not isinstance(shape, (tuple, list)) or not shape or not all(is_int(s) and s > 0 for s in shape):
        raise TypeError(f"{where}: normalized_shape must be a positive int or a non-empty tuple of positive "
                        f"ints (the trailing axes to normalise over). Received: {normalized_shape!r}")
    shape = tuple(int(s) for s in shape)
    if x.shape[x.ndim - len(shape):] != shape or x.ndim < len(shape):
        raise ValueError(f"{where}: expected input whose last {len(shape)} dimensions are normalized_shape "
                         f"{shape}, got shape {x.shape}. Set normalized_shape to the input's trailing "
                         f"dimensions, e.g. x.shape[-1].")
    return shape


def _check_grad(grad_output, x, where):
    check_float(grad_output, "grad_output", where)
    if grad_output.shape != x.shape or grad_output.dtype != x.dtype:
        raise ValueError(f"{where}: grad_output must have the input's shape {x.shape} and dtype {x.dtype}. "
                         f"Received: shape {grad_output.shape}, dtype {grad_output.dtype}.")


# ----------------------------------------------------------------- forward
def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5, *, return_stats=False,
               where="layer_norm"):
    r"""Normalise each sample over its trailing axes, as :func:`torch.nn.functional.layer_norm`.

    Parameters
    ----------
    input : ndarray of shape ``(*, *normalized_shape)``, floating point
    normalized_shape : int or tuple of int
        The trailing dimensions normalised over.
    weight, bias : ndarray of shape ``normalized_shape``, or None
        The element-wise affine transform (gamma, beta); None for 1 and 0.
    eps : float >= 0, default 1e-5
        Added to the variance.
    return_stats : bool, default False
        Also return ``(mean, inv_std)`` (what :func:`layer_norm_backward` needs).
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    out : ndarray, the input's shape and dtype
    (out, mean, inv_std) with ``return_stats``; the statistics of shape
    ``input.shape[:-k] + (1,) * k`` (``k = len(normalized_shape)``), in float32 for float16.

    Raises
    ------
    TypeError
        ``input`` not a floating ndarray, or ``normalized_shape`` not positive ints.
    ValueError
        The input's trailing dimensions are not ``normalized_shape``; weight/bias of another shape or dtype.

    Shape
    -----
    ``(*, *normalized_shape)``: the output has the input's shape.

    Notes
    -----
    Over the ``M = prod(normalized_shape)`` values of a sample, with the mean ``mu`` and the biased
    variance ``var`` (computed from ``x - mu``, two passes)::

        x_hat = (x - mu) / sqrt(var + eps),   y = gamma * x_hat + beta

    Examples
    --------
    >>> layer_norm(np.array([[1.0, 3.0], [0.0, 10.0]]), 2, eps=0.0)
    array([[-1.,  1.],
           [-1.,  1.]])
    """
    check_float(input, "input", where)
    shape = _normalized_shape(normalized_shape, input, where)
    weight, bias = (check_param(v, n, shape, input, where) for v, n in ((weight, "weight"), (bias, "bias")))
    eps = check_eps(eps, where)
    stat_shape = input.shape[:input.ndim - len(shape)] + (1,) * len(shape)
    x_hat, mean, inv_std, _ = normalize_rows(compute_dtype(input).reshape(-1, int(np.prod(shape))), eps)
    out = x_hat.reshape(input.shape)
    if weight is not None:
        out *= weight
    if bias is not None:
        out += bias
    out = out.astype(input.dtype, copy=False)
    return (out, mean.reshape(stat_shape), inv_std.reshape(stat_shape)) if return_stats else out


# ----------------------------------------------------------------- backward
def layer_norm_backward(grad_output, input, normalized_shape, mean, inv_std, weight=None, *, input_grad=True,
                        where="layer_norm_backward"):
    r"""Gradients of :func:`layer_norm`: ``(grad_input, grad_weight, grad_bias)``.

    Parameters
    ----------
    grad_output : ndarray, the shape and dtype of ``input``
    input : ndarray, the forward input
    normalized_shape : int or tuple of int
        As in the forward.
    mean, inv_std : ndarray
        The statistics :func:`layer_norm` returned (``return_stats=True``).
    weight : ndarray of shape ``normalized_shape``, or None
    input_grad : bool, default True
        False skips ``grad_input`` (returned as None).
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    grad_input : ndarray of the input's shape and dtype, or None
    grad_weight, grad_bias : ndarray of shape ``normalized_shape``, the input's dtype
        ``sum(dy * x_hat)`` and ``sum(dy)`` over the leading (batch) axes.

    Raises
    ------
    TypeError, ValueError
        Arrays of other shapes or dtypes than the forward's.

    Shape
    -----
    - ``grad_output``, ``input``, ``grad_input``: ``(*, *normalized_shape)``
    - ``mean``, ``inv_std``: ``(*, 1, ..., 1)``; ``weight``, ``grad_weight``, ``grad_bias``: ``normalized_shape``

    Notes
    -----
    With ``dx_hat = gamma * dy`` and means over the ``M`` values of a sample (``mu`` and ``var``
    depend on all of them: ``d mu / dx = 1 / M``, ``d var / dx = 2 (x - mu) / M``)::

        grad_input = inv_std * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat))

    Examples
    --------
    >>> x = np.array([[1.0, 3.0]])
    >>> out, mu, inv_std = layer_norm(x, 2, eps=0.0, return_stats=True)
    >>> layer_norm_backward(np.array([[1.0, 0.0]]), x, 2, mu, inv_std)
    (array([[0., 0.]]), array([-1.,  0.]), array([1., 0.]))
    """
    check_float(input, "input", where)
    _check_grad(grad_output, input, where)
    shape = _normalized_shape(normalized_shape, input, where)
    stat_shape = input.shape[:input.ndim - len(shape)] + (1,) * len(shape)
    for v, name in ((mean, "mean"), (inv_std, "inv_std")):
        check_float(v, name, where)
        if v.shape != stat_shape:
            raise ValueError(f"{where}: {name} must have shape {stat_shape} (what layer_norm returned for this "
                             f"input with return_stats=True). Received: shape {v.shape}.")
    weight = check_param(weight, "weight", shape, input, where)
    m = int(np.prod(shape))
    x_hat = compute_dtype(input) - mean
    x_hat *= inv_std
    dy = compute_dtype(grad_output)
    rows_dy, rows_x_hat = dy.reshape(-1, m), x_hat.reshape(-1, m)
    grad_weight = np.einsum("bm,bm->m", rows_dy, rows_x_hat).reshape(shape).astype(input.dtype, copy=False)
    grad_bias = rows_dy.sum(axis=0).reshape(shape).astype(input.dtype, copy=False)
    if not input_grad:
        return None, grad_weight, grad_bias
    grad_x_hat = dy * weight if weight is not None else dy.copy()
    grad_input = rows_backward(grad_x_hat.reshape(-1, m), rows_x_hat, inv_std.reshape(-1, 1))
    return grad_input.reshape(input.shape).astype(input.dtype, copy=False), grad_weight, grad_bias

