"""Dropout with a given mask: the randomness stays with the caller (the layer's Generator)."""

from __future__ import annotations

import numbers

import numpy as np

from ..validation import check_array, check_float_dtype

__all__ = ["dropout", "dropout_backward", "check_dropout_p"]


def check_dropout_p(p, where) -> float:
    """``p`` as a float in [0, 1] (TypeError for a non-number or a bool, ValueError outside).

    Parameters
    ----------
    p : real number
    where : str
        The caller, named in error messages.

    Returns
    -------
    float

    Examples
    --------
    >>> check_dropout_p(0.5, "Dropout")
    0.5
    """
    if not isinstance(p, numbers.Real) or isinstance(p, (bool, np.bool_)):
        raise TypeError(f"{where}: p must be a real number in [0, 1]. Received: p={p!r}")
    if not 0 <= p <= 1:  # nan fails too
        raise ValueError(f"{where}: dropout probability p has to be between 0 and 1, as in torch. "
                         f"Received: p={p!r}")
    return float(p)


def dropout(input, mask, p, *, where="dropout"):
    r"""Inverted dropout with the given keep-``mask``: ``input * mask / (1 - p)``.

    Parameters
    ----------
    input : ndarray, floating point
    mask : ndarray of bool
        True where the value is kept; of the input's shape, or broadcastable to
        it with the same number of dimensions (``(N, C, 1, 1)`` drops whole
        channels, as :func:`torch.nn.functional.dropout2d`).
    p : float in [0, 1]
        The drop probability the mask was drawn with: kept values are scaled
        by ``1 / (1 - p)`` (so the expectation is the input); ``p = 1`` gives
        zeros, as torch.
    where : str
        Names the caller in error messages.

    Returns
    -------
    ndarray of the input's shape and dtype

    Shape
    -----
    Any: the output has the input's shape.

    Notes
    -----
    ``y = x * m * s`` with ``s = 1 / (1 - p)`` (0 for p = 1), rounded as torch
    does: ``s`` is cast to the input's dtype first, so a kept value is exactly
    ``x * dtype(s)``. The map is linear in ``x`` for a fixed mask, so the
    backward is the same map: :func:`dropout_backward`.

    Examples
    --------
    >>> dropout(np.array([1.0, 2.0, 3.0, 4.0]), np.array([True, False, True, True]), 0.5)
    array([2., 0., 6., 8.])
    """
    check_array(input, "input", where)
    check_float_dtype(input, "input", where)
    check_array(mask, "mask", where)
    if mask.dtype != np.bool_ or mask.ndim != input.ndim or \
            any(m not in (1, n) for m, n in zip(mask.shape, input.shape)):
        raise ValueError(f"{where}: mask must be a bool array of the input's shape {input.shape}, or with "
                         f"size-1 axes broadcastable to it. Received: {mask.dtype} of shape {mask.shape}.")
    p = check_dropout_p(p, where)
    out = input * (0.0 if p == 1 else 1.0 / (1.0 - p))
    out *= mask
    return out


def dropout_backward(grad_output, mask, p, *, where="dropout_backward"):
    r"""The gradient of :func:`dropout` for the same mask: ``grad_output * mask / (1 - p)``.

    Parameters and shapes as :func:`dropout` (``grad_output`` in the place of the input).

    Parameters
    ----------
    grad_output : ndarray
        dL/d(output).
    mask : ndarray of bool
        The forward pass's keep-mask (broadcasts against ``grad_output``).
    p : float in [0, 1]
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray
        dL/dx, ``grad_output``'s shape and dtype.

    Shape
    -----
    ``grad_output``: any; ``mask``: the same or broadcastable ((N, C, 1, 1) for Dropout2D).

    Examples
    --------
    >>> dropout_backward(np.ones(3), np.array([True, False, True]), 0.25)
    array([1.33333333, 0.        , 1.33333333])
    """
    return dropout(grad_output, mask, p, where=where)
