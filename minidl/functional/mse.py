"""Mean squared error, as :func:`torch.nn.functional.mse_loss`."""

from __future__ import annotations

import numpy as np

from ..validation import check_array, check_float_dtype
from .loss_args import check_reduction

__all__ = ["mse_loss", "mse_loss_backward", "check_mse_args"]


def check_mse_args(outputs, targets, reduction="mean", where="mse_loss"):
    """Validate; return ``targets`` as an array of ``outputs``' dtype (a real array of the same shape).

    Parameters
    ----------
    outputs : ndarray, floating point
    targets : ndarray
        Real, of ``outputs``' shape.
    reduction : {'mean', 'sum', 'none'}
    where : str
        The caller, named in error messages.

    Returns
    -------
    ndarray
        ``targets`` in ``outputs``' dtype.

    Shape
    -----
    ``outputs`` and ``targets``: one shape, any.

    Examples
    --------
    >>> check_mse_args(np.zeros(2, np.float32), np.array([1, 2]))
    array([1., 2.], dtype=float32)
    """
    check_array(outputs, "outputs", where)
    check_float_dtype(outputs, "outputs", where)
    check_reduction(reduction, where)
    return targets_like(outputs, targets, where)


def targets_like(outputs, targets, where):
    """``targets`` checked (a real array of ``outputs``' shape) and cast to ``outputs``' dtype;
    the element-wise losses share it (:mod:`minidl.functional.reduction`)."""
    targets = check_array(targets, "targets", where)
    if targets.dtype.kind not in "iuf":
        raise TypeError(f"{where}: targets must be a real (float or integer) array. Received: dtype={targets.dtype}.")
    if targets.shape != outputs.shape:
        raise ValueError(
            f"{where}: expected targets of the outputs' shape {outputs.shape}, got {targets.shape}. "
            "(PyTorch broadcasts here with a warning, which is almost always a bug: reshape the "
            "targets, e.g. y.reshape(-1, 1) for a single output.)"
        )
    return targets.astype(outputs.dtype, copy=False)


def mse_loss(outputs, targets, reduction="mean", *, check_args=True):
    r"""``mean((outputs - targets) ** 2)`` (or the sum, or the element-wise squares).

    Parameters
    ----------
    outputs : ndarray, floating point, any shape
    targets : ndarray, same shape (cast to the outputs' dtype)
    reduction : {'mean', 'sum', 'none'}
        'mean' averages over every element (not just the batch), as PyTorch.
    check_args : bool
        False skips :func:`check_mse_args` (``targets`` must then be its result).

    Returns
    -------
    float ('mean', 'sum') or ndarray of the outputs' shape and dtype ('none')

    Shape
    -----
    ``outputs`` and ``targets``: one shape, any; 'none' returns that shape.

    Examples
    --------
    >>> mse_loss(np.array([[1.0, 2.0]]), np.array([[0.0, 0.0]]))
    2.5
    """
    if check_args:
        targets = check_mse_args(outputs, targets, reduction)
    d = outputs - targets
    d *= d
    if reduction == "none":
        return d
    with np.errstate(invalid="ignore", divide="ignore"):
        total = d.sum()
        return float(total / d.size if reduction == "mean" else total) + 0.0


def mse_loss_backward(outputs, targets, reduction="mean", *, grad_output=None, check_args=True):
    r"""dL/doutputs of :func:`mse_loss`: ``2 (outputs - targets) * r``.

    ``r`` is ``grad_output / numel`` ('mean'), ``grad_output`` ('sum'; a scalar,
    default 1) or the element-wise upstream gradient ('none'; an array of the
    outputs' shape and dtype, required).

    Parameters
    ----------
    outputs, targets, reduction, check_args
        As in :func:`mse_loss`.
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
    >>> mse_loss_backward(np.array([[1.0, 2.0]]), np.array([[0.0, 0.0]]))
    array([[1., 2.]])
    """
    if check_args:
        targets = check_mse_args(outputs, targets, reduction, "mse_loss_backward")
    grad = outputs - targets
    if reduction == "none":
        if not (isinstance(grad_output, np.ndarray) and grad_output.shape == outputs.shape
                and grad_output.dtype == outputs.dtype):
            raise ValueError(f"mse_loss_backward: reduction='none' needs grad_output as an ndarray of shape "
                             f"{outputs.shape} and dtype {outputs.dtype}. Received: {type(grad_output).__name__}.")
        grad *= 2
        grad *= grad_output
        return grad
    scale = 1.0 if grad_output is None else float(grad_output)
    if reduction == "mean":
        scale = scale / outputs.size if outputs.size else float("nan")
    grad *= outputs.dtype.type(2 * scale)
    return grad
