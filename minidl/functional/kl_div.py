r"""Kullback-Leibler divergence, as :func:`torch.nn.functional.kl_div`: log-probabilities in, targets
as probabilities (or log-probabilities with ``log_target=True``).

The element loss is :math:`y (\log y - x)` (:math:`0` where :math:`y = 0`), or
:math:`e^{y}(y - x)` for log targets; ``reduction`` is 'mean' (over every element, PyTorch's
default), 'batchmean' (the sum over the batch size: the divergence's definition), 'sum' or
'none'. See ``docs/derivations/losses.md``.
"""

from __future__ import annotations

import numpy as np

from .loss_args import REDUCTIONS
from .reduction import check_pair, reduce_loss, upstream_scale

__all__ = ["kl_div", "kl_div_backward", "KL_REDUCTIONS"]

#: kl_div's reductions: PyTorch's, with 'batchmean'.
KL_REDUCTIONS = (*REDUCTIONS, "batchmean")


def _check_log_target(log_target, where):
    if not isinstance(log_target, (bool, np.bool_)):
        raise TypeError(f"{where}: log_target must be True or False. Received: log_target={log_target!r}.")
    return bool(log_target)


def kl_div(outputs, targets, reduction="mean", log_target=False, *, check_args=True):
    r"""The reduced :math:`y(\log y - x)`: the divergence of ``outputs`` (log-probabilities) from ``targets``.

    Parameters
    ----------
    outputs : ndarray, floating point
        Log-probabilities, e.g. a :class:`~minidl.layers.LogSoftmax`'s output.
    targets : ndarray, same shape (cast to the outputs' dtype)
        Probabilities, or log-probabilities with ``log_target=True``.
    reduction : {'mean', 'batchmean', 'sum', 'none'}
        'mean' averages over every element (PyTorch's default, not the divergence);
        'batchmean' divides the sum by the first axis's length (the divergence per sample).
    log_target : bool, default False
        Whether ``targets`` are log-probabilities (the loss is then :math:`e^{y}(y - x)`).
    check_args : bool
        False skips the checks (``targets`` must then be of the outputs' dtype and shape).

    Returns
    -------
    float, or ndarray of the outputs' shape and dtype ('none')

    Shape
    -----
    ``outputs`` and ``targets``: one shape, e.g. (N, C); 'none' returns that shape.

    Examples
    --------
    >>> p = np.array([[0.5, 0.5]])
    >>> kl_div(np.log(p), p, "batchmean")
    0.0
    >>> round(kl_div(np.log([[0.25, 0.75]]), p, "batchmean"), 6)  # 0.5 log 2 + 0.5 log(2/3)
    0.143841
    """
    if check_args:
        targets = check_pair(outputs, targets, reduction, "kl_div", KL_REDUCTIONS)
        log_target = _check_log_target(log_target, "kl_div")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if log_target:
            loss = np.exp(targets) * (targets - outputs)
        else:  # torch's xlogy(y, y) - y x: y log y taken as 0 where y == 0 (nan for y < 0, as torch)
            loss = targets * np.log(np.where(targets == 0, 1, targets)) - targets * outputs
    return reduce_loss(loss, reduction)


def kl_div_backward(outputs, targets, reduction="mean", log_target=False, *, grad_output=None, check_args=True):
    r"""dL/doutputs of :func:`kl_div`: :math:`-y` (:math:`-e^{y}` for log targets) times ``r``.

    ``r`` is ``grad_output`` divided as the reduction divides (by the number of elements for
    'mean', the first axis's length for 'batchmean'), or the element-wise upstream gradient
    for 'none' (an array of the outputs' shape and dtype).

    Parameters
    ----------
    outputs, targets, reduction, log_target, check_args
        As in :func:`kl_div`.
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
    >>> kl_div_backward(np.log([[0.25, 0.75]]), np.array([[0.5, 0.5]]), "batchmean")
    array([[-0.5, -0.5]])
    """
    if check_args:
        targets = check_pair(outputs, targets, reduction, "kl_div_backward", KL_REDUCTIONS)
        log_target = _check_log_target(log_target, "kl_div_backward")
    scale = upstream_scale(grad_output, reduction, outputs, "kl_div_backward")
    grad = -np.exp(targets) if log_target else -targets
    grad = grad * scale
    return grad.astype(outputs.dtype, copy=False)
