"""Gradient clipping, like :func:`torch.nn.utils.clip_grad_norm_`."""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..layers.base import Layer
from ..parameter import Parameter
from .optimizer import real_number

__all__ = ["clip_grad_norm"]


def clip_grad_norm(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False) -> float:
    r"""Scale gradients in place so that their total norm is at most ``max_norm``.

    :func:`torch.nn.utils.clip_grad_norm_`'s semantics: the total norm is the
    ``norm_type``-norm of the per-parameter gradient norms (``inf`` for the
    largest absolute value); every gradient is multiplied by
    ``min(1, max_norm / (total_norm + 1e-6))``.

    Parameters
    ----------
    parameters : iterable of Parameter, or a Layer
    max_norm : float > 0
    norm_type : float >= 1 or ``inf``, default 2
    error_if_nonfinite : bool
        Raise RuntimeError when the total norm is nan or inf (torch's flag);
        otherwise the gradients are scaled by a nan coefficient, as torch does.

    Returns
    -------
    float
        The total norm of the gradients before clipping.

    Examples
    --------
    >>> p = Parameter(np.zeros(2)); p.grad[:] = [3.0, 4.0]
    >>> clip_grad_norm([p], max_norm=1.0)
    5.0
    >>> p.grad.round(6)
    array([0.6, 0.8])
    """
    where = "clip_grad_norm"
    if isinstance(parameters, Layer):
        parameters = parameters.parameters()
    elif isinstance(parameters, Parameter):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    max_norm = real_number(max_norm, "max_norm", where)
    if not isinstance(norm_type, numbers.Real) or isinstance(norm_type, bool) or not (
            norm_type >= 1 or norm_type == math.inf):
        raise ValueError(f"{where}: norm_type must be a number >= 1 or inf. Received: norm_type={norm_type!r}")
    if not grads:
        return 0.0
    norm_type = float(norm_type)
    with np.errstate(over="ignore", invalid="ignore"):
        if norm_type == math.inf:
            norms = [np.abs(g).max() if g.size else g.dtype.type(0) for g in grads]
            total = max(norms)
        else:
            norms = [np.sum(np.abs(g) ** norm_type) ** (1.0 / norm_type) for g in grads]
            total = np.sum(np.abs(np.array(norms)) ** norm_type) ** (1.0 / norm_type)
    total = float(total)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"{where}: the total norm of order {norm_type} of the gradients is {total}, so they "
            "cannot be clipped. Set error_if_nonfinite=False to scale them anyway."
        )
    for g in grads:  # torch: clamp(max_norm / (total + 1e-6), max=1), in the gradients' dtype
        dt = g.dtype.type
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            coef = dt(max_norm) / (dt(total) + dt(1e-6))
        g *= coef if np.isnan(coef) or coef < 1 else dt(1.0)
    return total
