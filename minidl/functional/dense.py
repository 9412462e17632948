"""Fully connected (affine) kernels, as :func:`torch.nn.functional.linear`."""

from __future__ import annotations

import math

import numpy as np

from ..validation import check_array
from ._engine import blas

__all__ = ["linear", "linear_input", "linear_weight", "linear_bias", "flatten"]


def linear(x, weight, bias=None):
    r"""``x @ weight.T + bias``.

    Parameters
    ----------
    x : ndarray, shape (N, in_features)
    weight : ndarray, shape (out_features, in_features), ``x``'s dtype
    bias : ndarray, shape (out_features,), optional

    Returns
    -------
    ndarray, shape (N, out_features)

    Shape
    -----
    x: (N, in_features); weight: (out_features, in_features); bias: (out_features,);
    out: (N, out_features).

    Examples
    --------
    >>> linear(np.ones((2, 3)), np.ones((4, 3)), np.zeros(4)).shape
    (2, 4)
    """
    check_array(x, "x", "linear")
    check_array(weight, "weight", "linear")
    if bias is not None:
        check_array(bias, "bias", "linear")
    if x.ndim != 2 or weight.ndim != 2:
        out = blas.matmul(x, weight.T)
        if bias is not None:
            out += bias
        return out
    out = np.empty((x.shape[0], weight.shape[0]), dtype=np.result_type(x, weight))

    def samples(n0, n1):  # rows n0:n1, on one of blas.map_batch's threads
        blas.matmul(x[n0:n1], weight.T, out=out[n0:n1])
        if bias is not None:
            out[n0:n1] += bias

    blas.map_batch(samples, x.shape[0], 2.0 * out.size * x.shape[1])
    return out


def linear_input(grad_output, weight):
    r"""dL/dx = ``grad_output @ weight``, shape (N, in_features).

    Parameters
    ----------
    grad_output : ndarray, shape (N, out_features)
    weight : ndarray, shape (out_features, in_features)

    Returns
    -------
    ndarray, shape (N, in_features)

    Shape
    -----
    (N, out_features) and (out_features, in_features) -> (N, in_features).

    Examples
    --------
    >>> linear_input(np.ones((2, 4)), np.ones((4, 3))).shape
    (2, 3)
    """
    check_array(grad_output, "grad_output", "linear_input")
    check_array(weight, "weight", "linear_input")
    if grad_output.ndim != 2 or weight.ndim != 2:
        return blas.matmul(grad_output, weight)
    out = np.empty((grad_output.shape[0], weight.shape[1]), dtype=np.result_type(grad_output, weight))
    blas.map_batch(lambda n0, n1: blas.matmul(grad_output[n0:n1], weight, out=out[n0:n1]),
                   grad_output.shape[0], 2.0 * out.size * weight.shape[0])
    return out


def linear_weight(x, grad_output):
    r"""dL/dW = ``grad_output.T @ x``, shape (out_features, in_features), summed over the batch.

    Parameters
    ----------
    x : ndarray, shape (N, in_features)
        The forward input.
    grad_output : ndarray, shape (N, out_features)

    Returns
    -------
    ndarray, shape (out_features, in_features)

    Shape
    -----
    (N, in_features) and (N, out_features) -> (out_features, in_features).

    Examples
    --------
    >>> linear_weight(np.ones((5, 3)), np.ones((5, 2)))
    array([[5., 5., 5.],
           [5., 5., 5.]])
    """
    check_array(x, "x", "linear_weight")
    check_array(grad_output, "grad_output", "linear_weight")
    if grad_output.ndim != 2 or x.ndim != 2:
        return blas.matmul(grad_output.T, x)
    parts = blas.map_batch(lambda n0, n1: blas.matmul(grad_output[n0:n1].T, x[n0:n1]), x.shape[0],
                           2.0 * grad_output.size * x.shape[1])
    for part in parts[1:]:  # per-thread partial sums over the batch, added in batch order
        parts[0] += part
    return parts[0]


def linear_bias(grad_output):
    r"""dL/db = ``grad_output.sum(0)``, shape (out_features,).

    Parameters
    ----------
    grad_output : ndarray, shape (N, out_features)

    Returns
    -------
    ndarray, shape (out_features,)

    Shape
    -----
    (N, out_features) -> (out_features,).

    Examples
    --------
    >>> linear_bias(np.ones((4, 2)))
    array([4., 4.])
    """
    check_array(grad_output, "grad_output", "linear_bias")
    return blas.column_sums(grad_output)


def flatten(x, start_dim=1):
    """Merge every axis from ``start_dim`` on, as :func:`torch.flatten` (C-order).

    The merged size is computed, not inferred (``-1``), so an empty batch
    ``(0, C, H, W)`` flattens to ``(0, C * H * W)`` as in PyTorch.

    Parameters
    ----------
    x : ndarray
    start_dim : int, default 1

    Returns
    -------
    ndarray
        A view of ``x`` when its layout allows (``np.reshape``'s rule).

    Shape
    -----
    (N, C, H, W) -> (N, C * H * W) with ``start_dim=1``; generally the axes from ``start_dim`` on merged.

    Examples
    --------
    >>> flatten(np.zeros((2, 3, 4, 4))).shape
    (2, 48)
    >>> flatten(np.zeros((0, 3, 4, 4))).shape
    (0, 48)
    """
    check_array(x, "x", "flatten")
    return x.reshape(x.shape[:start_dim] + (math.prod(x.shape[start_dim:]),))
