r"""L1, smooth L1 and Huber losses, as :func:`torch.nn.functional.l1_loss`, ``smooth_l1_loss``, ``huber_loss``.

Each is a loss of the difference :math:`d = x - y`, element by element, reduced by
``reduction`` ('mean' over every element, as PyTorch, 'sum' or 'none'); each backward is
the derivative of the element loss times the upstream gradient (divided by the number of
elements for 'mean'). See ``docs/derivations/losses.md``.
"""

from __future__ import annotations

import numbers

import numpy as np

from .reduction import check_pair, reduce_loss, upstream_scale

__all__ = ["l1_loss", "l1_loss_backward", "smooth_l1_loss", "smooth_l1_loss_backward",
           "huber_loss", "huber_loss_backward", "check_threshold"]


def check_threshold(value, name, where, *, zero_ok):
    """``value`` as a finite float, ``>= 0`` (``zero_ok``) or ``> 0``, or a clear ValueError.

    Parameters
    ----------
    value : float
        SmoothL1Loss's ``beta`` (zero allowed: the L1 loss) or HuberLoss's ``delta``.
    name, where : str
        The argument and the caller, named in error messages.
    zero_ok : bool
        Whether 0 is allowed.

    Returns
    -------
    float

    Examples
    --------
    >>> check_threshold(1, "beta", "SmoothL1Loss", zero_ok=True)
    1.0
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and np.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero_ok):
        bound = ">= 0" if zero_ok else "> 0"
        raise ValueError(f"{where}: {name} must be a finite real number {bound}, as in PyTorch. "
                         f"Received: {name}={value!r}.")
    return float(value)


def l1_loss(outputs, targets, reduction="mean", *, check_args=True):
    r"""Mean absolute error: the reduced :math:`|x - y|`.

    Parameters
    ----------
    outputs : ndarray, floating point, any shape
    targets : ndarray, same shape (cast to the outputs' dtype)
    reduction : {'mean', 'sum', 'none'}
        'mean' averages over every element, as PyTorch.
    check_args : bool
        False skips the checks (``targets`` must then be of the outputs' dtype and shape).

    Returns
    -------
    float ('mean', 'sum') or ndarray of the outputs' shape and dtype ('none')

    Shape
    -----
    ``outputs`` and ``targets``: one shape, any; 'none' returns that shape.

    Examples
    --------
    >>> l1_loss(np.array([1.0, -3.0]), np.zeros(2))
    2.0
    """
    if check_args:
        targets = check_pair(outputs, targets, reduction, "l1_loss")
    return reduce_loss(np.abs(outputs - targets), reduction)


def l1_loss_backward(outputs, targets, reduction="mean", *, grad_output=None, check_args=True):
    r"""dL/doutputs of :func:`l1_loss`: :math:`\mathrm{sign}(x - y)` (0 where ``x == y``, as PyTorch) times ``r``.

    ``r`` is ``grad_output / numel`` ('mean'), ``grad_output`` ('sum'; a scalar, default 1)
    or the element-wise upstream gradient ('none'; an array of the outputs' shape and dtype).

    Parameters
    ----------
    outputs, targets, reduction, check_args
        As in :func:`l1_loss`.
    grad_output : float, or ndarray for ``reduction='none'``
        The upstream gradient (see above).

    Returns
    -------
    ndarray
        dL/doutputs, the outputs' shape and dtype.

    Shape
    -----
    ``outputs``, ``targets`` and the result: one shape (``grad_output`` too for 'none').

    Examples
    --------
    >>> l1_loss_backward(np.array([1.0, -3.0, 0.0]), np.zeros(3), "sum")
    array([ 1., -1.,  0.])
    """
    if check_args:
        targets = check_pair(outputs, targets, reduction, "l1_loss_backward")
    scale = upstream_scale(grad_output, reduction, outputs, "l1_loss_backward")
    grad = np.sign(outputs - targets)
    grad *= scale
    return grad


def smooth_l1_loss(outputs, targets, reduction="mean", beta=1.0, *, check_args=True):
    r"""Smooth L1: :math:`\tfrac12 d^2/\beta` where :math:`|d| < \beta`, else :math:`|d| - \tfrac12\beta`.

    Parameters
    ----------
    outputs, targets, reduction, check_args
        As in :func:`l1_loss`.
    beta : float, default 1.0
        Where the square turns into the absolute value (``>= 0``; 0 gives :func:`l1_loss`).

    Returns
    -------
    float ('mean', 'sum') or ndarray of the outputs' shape and dtype ('none')

    Shape
    -----
    ``outputs`` and ``targets``: one shape, any; 'none' returns that shape.

    Examples
    --------
    >>> smooth_l1_loss(np.array([0.5, 3.0]), np.zeros(2), "none")
    array([0.125, 2.5  ])
    """
    if check_args:
        targets = check_pair(outputs, targets, reduction, "smooth_l1_loss")
        beta = check_threshold(beta, "beta", "smooth_l1_loss", zero_ok=True)
    d = np.abs(outputs - targets)
    if beta == 0:
        return reduce_loss(d, reduction)
    inner = d < beta
    loss = np.where(inner, 0.5 * d * d / outputs.dtype.type(beta), d - outputs.dtype.type(0.5 * beta))
    return reduce_loss(loss.astype(outputs.dtype, copy=False), reduction)


def smooth_l1_loss_backward(outputs, targets, reduction="mean", beta=1.0, *, grad_output=None, check_args=True):
    r"""dL/doutputs of :func:`smooth_l1_loss`: :math:`d/\beta` where :math:`|d| < \beta`, else :math:`\mathrm{sign}(d)`.

    Parameters
    ----------
    outputs, targets, reduction, beta, check_args
        As in :func:`smooth_l1_loss`.
    grad_output : float, or ndarray for ``reduction='none'``
        As in :func:`l1_loss_backward`.

    Returns
    -------
    ndarray
        dL/doutputs, the outputs' shape and dtype.

    Shape
    -----
    ``outputs``, ``targets`` and the result: one shape (``grad_output`` too for 'none').

    Examples
    --------
    >>> smooth_l1_loss_backward(np.array([0.5, -3.0]), np.zeros(2), "sum")
    array([ 0.5, -1. ])
    """
    if check_args:
        targets = check_pair(outputs, targets, reduction, "smooth_l1_loss_backward")
        beta = check_threshold(beta, "beta", "smooth_l1_loss_backward", zero_ok=True)
    scale = upstream_scale(grad_output, reduction, outputs, "smooth_l1_loss_backward")
    d = outputs - targets
    grad = np.sign(d) if beta == 0 else np.clip(d / outputs.dtype.type(beta), -1, 1)
    grad *= scale
    return grad


def huber_loss(outputs, targets, reduction="mean", delta=1.0, *, check_args=True):
    r"""Huber: :math:`\tfrac12 d^2` where :math:`|d| \le \delta`, else :math:`\delta (|d| - \tfrac12\delta)`.

    ``huber_loss(x, y, delta=b)`` is ``b * smooth_l1_loss(x, y, beta=b)``, as in PyTorch.

    Parameters
    ----------
    outputs, targets, reduction, check_args
        As in :func:`l1_loss`.
    delta : float, default 1.0
        Where the square turns into the absolute value (``> 0``).

    Returns
    -------
    float ('mean', 'sum') or ndarray of the outputs' shape and dtype ('none')

    Shape
    -----
    ``outputs`` and ``targets``: one shape, any; 'none' returns that shape.

    Examples
    --------
    >>> huber_loss(np.array([0.5, 3.0]), np.zeros(2), "none", delta=2.0)
    array([0.125, 4.   ])
    """
    if check_args:
        targets = check_pair(outputs, targets, reduction, "huber_loss")
        delta = check_threshold(delta, "delta", "huber_loss", zero_ok=False)
    d = np.abs(outputs - targets)
    t = outputs.dtype.type(delta)
    loss = np.where(d <= t, 0.5 * d * d, t * (d - 0.5 * t))
    return reduce_loss(loss.astype(outputs.dtype, copy=False), reduction)


def huber_loss_backward(outputs, targets, reduction="mean", delta=1.0, *, grad_output=None, check_args=True):
    r"""dL/doutputs of :func:`huber_loss`: :math:`d` clipped to :math:`[-\delta, \delta]`.

    Parameters
    ----------
    outputs, targets, reduction, delta, check_args
        As in :func:`huber_loss`.
    grad_output : float, or ndarray for ``reduction='none'``
        As in :func:`l1_loss_backward`.

    Returns
    -------
    ndarray
        dL/doutputs, the outputs' shape and dtype.

    Shape
    -----
    ``outputs``, ``targets`` and the result: one shape (``grad_output`` too for 'none').

    Examples
    --------
    >>> huber_loss_backward(np.array([0.5, -3.0]), np.zeros(2), "sum", delta=2.0)
    array([ 0.5, -2. ])
    """
    if check_args:
        targets = check_pair(outputs, targets, reduction, "huber_loss_backward")
        delta = check_threshold(delta, "delta", "huber_loss_backward", zero_ok=False)
    scale = upstream_scale(grad_output, reduction, outputs, "huber_loss_backward")
    t = outputs.dtype.type(delta)
    grad = np.clip(outputs - targets, -t, t)
    grad *= scale
    return grad
