r"""Negative log-likelihood of class labels, as :func:`torch.nn.functional.nll_loss`.

Its input is log-probabilities (a :class:`~minidl.layers.LogSoftmax`'s output): ``nll_loss(log_softmax(z), y)``
is :func:`~minidl.functional.cross_entropy` ``(z, y)``. The loss only picks entries, so the
backward is a scatter. See ``docs/derivations/losses.md``.
"""

from __future__ import annotations

import numpy as np

from .loss_args import at_labels, check_cross_entropy_args

__all__ = ["nll_loss", "nll_loss_backward", "check_nll_args"]


def check_nll_args(outputs, targets, weight=None, ignore_index=-100, reduction="mean", where="nll_loss"):
    """Validate; return ``targets`` as an integer (N,) or (N, d1, ...) array.

    Parameters
    ----------
    outputs, targets, weight, ignore_index, reduction
        As in :func:`nll_loss`.
    where : str
        The caller, named in error messages.

    Returns
    -------
    ndarray
        ``targets``, integer labels (N,) or (N, d1, ...).

    Raises
    ------
    TypeError, ValueError
        Float targets (NLL takes class indices), and what
        :func:`~minidl.functional.loss_args.check_cross_entropy_args` refuses (its messages call
        ``outputs`` the logits).

    Shape
    -----
    ``outputs`` (N, C) or (N, C, d1, ...); ``targets`` (N,) or (N, d1, ...).

    Examples
    --------
    >>> check_nll_args(np.zeros((2, 3)), [0, 2])
    array([0, 2])
    """
    kind = np.asarray(targets).dtype.kind if isinstance(targets, (np.ndarray, list, tuple)) else None
    if kind not in ("i", "u"):
        raise TypeError(f"{where}: targets must be integer class labels (N,) or (N, d1, ...), as in PyTorch's "
                        f"NLLLoss. Received: {type(targets).__name__} of dtype {np.asarray(targets).dtype}. For class "
                        f"probabilities use KLDivLoss, or SoftmaxCrossEntropy on the logits.")
    return check_cross_entropy_args(outputs, targets, 0.0, where, weight=weight, ignore_index=ignore_index,
                                    reduction=reduction)


def _picked(targets, weight, ignore_index, dtype):
    """(kept positions, their labels with ignored ones sent to 0, the weights w_y (0 where ignored))."""
    kept = targets != ignore_index
    safe = np.where(kept, targets, 0)
    w_y = kept.astype(dtype) if weight is None else np.where(kept, weight.astype(dtype, copy=False)[safe], 0)
    return kept, safe, w_y.astype(dtype, copy=False)


def nll_loss(outputs, targets, weight=None, ignore_index=-100, reduction="mean", *, check_args=True):
    r"""The reduced :math:`-w_{y_n}\,x_{n, y_n}`; 'mean' divides by :math:`\sum_n w_{y_n}` over the kept rows.

    Parameters
    ----------
    outputs : ndarray (N, C) or (N, C, d1, ...), floating point
        Log-probabilities along axis 1.
    targets : ndarray (N,) or (N, d1, ...), integer
        Labels in ``[0, C)``, or ``ignore_index``, one per position.
    weight : ndarray (C,) or None
        Per-class weights (cast to the outputs' dtype).
    ignore_index : int, default -100
        Positions with this label contribute nothing and do not count in the mean.
    reduction : {'mean', 'sum', 'none'}
        'mean' divides by the summed weight of the kept positions' classes (their number without
        weights), as PyTorch; nan when every row is ignored, as PyTorch.
    check_args : bool
        False skips :func:`check_nll_args` (``targets`` must then be its result).

    Returns
    -------
    float ('mean', 'sum'), or ndarray of the targets' shape and the outputs' dtype ('none'; 0 where ignored)

    Shape
    -----
    ``outputs`` (N, C) or (N, C, d1, ...), ``targets`` (N,) or (N, d1, ...); 'none' returns the targets' shape.

    Examples
    --------
    >>> x = np.log(np.array([[0.5, 0.5], [0.25, 0.75]]))
    >>> round(nll_loss(x, np.array([0, 1]), weight=np.array([1.0, 3.0])), 6)  # (log 2 + 3 log(4/3)) / 4
    0.389048
    """
    if check_args:
        targets = check_nll_args(outputs, targets, weight, ignore_index, reduction)
    kept, safe, w_y = _picked(targets, weight, ignore_index, outputs.dtype)
    picked = outputs[at_labels(safe)]
    with np.errstate(invalid="ignore", divide="ignore"):
        rows = np.where(kept, -w_y * picked, 0).astype(outputs.dtype, copy=False)
        if reduction == "none":
            return rows
        total = rows.sum()
        return float(total / w_y.sum() if reduction == "mean" else total) + 0.0


def nll_loss_backward(outputs, targets, weight=None, ignore_index=-100, reduction="mean", *, grad_output=None,
                      check_args=True):
    r"""dL/doutputs of :func:`nll_loss`: :math:`-w_{y_n} r_n` at :math:`(n, y_n)`, 0 elsewhere and on ignored rows.

    ``r_n`` is ``grad_output / sum(w_y)`` ('mean'), ``grad_output`` ('sum'; a scalar, default 1) or
    the position's upstream gradient ('none'; an array of the targets' shape and the outputs' dtype).

    Parameters
    ----------
    outputs, targets, weight, ignore_index, reduction, check_args
        As in :func:`nll_loss`.
    grad_output : float, or ndarray of the targets' shape for ``reduction='none'``
        The upstream gradient (see above).

    Returns
    -------
    ndarray
        dL/doutputs, the outputs' shape and dtype.

    Shape
    -----
    ``outputs`` and the result (N, C) or (N, C, d1, ...); ``targets`` (N,) or (N, d1, ...), and
    ``grad_output`` too for 'none'.

    Examples
    --------
    >>> nll_loss_backward(np.zeros((2, 3)), np.array([2, -100]), reduction="sum")
    array([[ 0.,  0., -1.],
           [ 0.,  0.,  0.]])
    """
    if check_args:
        targets = check_nll_args(outputs, targets, weight, ignore_index, reduction, "nll_loss_backward")
    shape = outputs.shape[:1] + outputs.shape[2:]
    if reduction == "none":
        if not (isinstance(grad_output, np.ndarray) and grad_output.shape == shape
                and grad_output.dtype == outputs.dtype):
            raise ValueError(f"nll_loss_backward: reduction='none' gives one loss per row (per position), so "
                             f"grad_output must be an ndarray of shape {shape} and dtype {outputs.dtype}. Received: "
                             f"{type(grad_output).__name__} {getattr(grad_output, 'shape', '')} "
                             f"{getattr(grad_output, 'dtype', '')}.")
    elif np.ndim(grad_output):
        raise ValueError(f"nll_loss_backward: grad_output must be a scalar for reduction={reduction!r}. "
                         f"Received: an array of shape {np.shape(grad_output)}.")
    kept, safe, w_y = _picked(targets, weight, ignore_index, outputs.dtype)
    scale = grad_output if reduction == "none" else outputs.dtype.type(1.0 if grad_output is None else grad_output)
    grad = np.zeros_like(outputs)
    with np.errstate(invalid="ignore", divide="ignore"):
        if reduction == "mean":
            scale = scale / w_y.sum()
        grad[at_labels(safe)] = np.where(kept, -w_y * scale, 0)  # one entry per position: no collisions
    return grad
