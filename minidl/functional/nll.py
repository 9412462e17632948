r"""Negative log-likelihood of class labels, as :func:`torch.nn.functional.nll_loss`.

Its input is log-probabilities (a :class:`~minidl.layers.LogSoftmax`'s output): ``nll_loss(log_softmax(z), y)``
is :func:`~minidl.functional.cross_entropy` ``(z, y)``. The loss only picks entries, so the
backward is a scatter. See ``docs/derivations/losses.md``.
"""

from __future__ import annotations

import numpy as np

from .loss_args import check_cross_entropy_args

__all__ = ["nll_loss", "nll_loss_backward", "check_nll_args"]


def check_nll_args(outputs, targets, weight=None, ignore_index=-100, reduction="mean", where="nll_loss"):
    """Validate; return ``targets`` as an integer (N,) array.

    Parameters
    ----------
    outputs, targets, weight, ignore_index, reduction
        As in :func:`nll_loss`.
    where : str
        The caller, named in error messages.

    Returns
    -------
    ndarray
        ``targets``, integer labels (N,).

    Raises
    ------
    TypeError, ValueError
        Float targets (NLL takes class indices), and what
        :func:`~minidl.functional.loss_args.check_cross_entropy_args` refuses (its messages call
        ``outputs`` the logits).

    Shape
    -----
    ``outputs`` (N, C); ``targets`` (N,).

    Examples
    --------
    >>> check_nll_args(np.zeros((2, 3)), [0, 2])
    array([0, 2])
    """
    kind = np.asarray(targets).dtype.kind if isinstance(targets, (np.ndarray, list, tuple)) else None
    if kind not in ("i", "u"):
        raise TypeError(f"{where}: targets must be integer class labels (N,), as in PyTorch's NLLLoss. Received: "
                        f"{type(targets).__name__} of dtype {np.asarray(targets).dtype}. For class probabilities use "
                        f"KLDivLoss, or SoftmaxCrossEntropy on the logits.")
    return check_cross_entropy_args(outputs, targets, 0.0, where, weight=weight, ignore_index=ignore_index,
                                    reduction=reduction)


def _picked(targets, weight, ignore_index, dtype):
    """(kept rows, their labels with ignored rows sent to 0, the row weights w_y (0 on ignored rows))."""
    kept = targets != ignore_index
    safe = np.where(kept, targets, 0)
    w_y = kept.astype(dtype) if weight is None else np.where(kept, weight.astype(dtype, copy=False)[safe], 0)
    return kept, safe, w_y.astype(dtype, copy=False)


def nll_loss(outputs, targets, weight=None, ignore_index=-100, reduction="mean", *, check_args=True):
    r"""The reduced :math:`-w_{y_n}\,x_{n, y_n}`; 'mean' divides by :math:`\sum_n w_{y_n}` over the kept rows.

    Parameters
    ----------
    outputs : ndarray (N, C), floating point
        Log-probabilities.
    targets : ndarray (N,), integer
        Labels in ``[0, C)``, or ``ignore_index``.
    weight : ndarray (C,) or None
        Per-class weights (cast to the outputs' dtype).
    ignore_index : int, default -100
        Rows with this label contribute nothing and do not count in the mean.
    reduction : {'mean', 'sum', 'none'}
        'mean' divides by the summed weight of the kept rows' classes (their number without
        weights), as PyTorch; nan when every row is ignored, as PyTorch.
    check_args : bool
        False skips :func:`check_nll_args` (``targets`` must then be its result).

    Returns
    -------
    float ('mean', 'sum'), or ndarray (N,) of the outputs' dtype ('none'; 0 on ignored rows)

    Shape
    -----
    ``outputs`` (N, C), ``targets`` (N,); 'none' returns (N,).

    Examples
    --------
    >>> x = np.log(np.array([[0.5, 0.5], [0.25, 0.75]]))
    >>> round(nll_loss(x, np.array([0, 1]), weight=np.array([1.0, 3.0])), 6)  # (log 2 + 3 log(4/3)) / 4
    0.389048
    """
    if check_args:
        targets = check_nll_args(outputs, targets, weight, ignore_index, reduction)
    kept, safe, w_y = _picked(targets, weight, ignore_index, outputs.dtype)
    picked = outputs[np.arange(len(targets)), safe]
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
    the row's upstream gradient ('none'; an (N,) array of the outputs' dtype).

    Parameters
    ----------
    outputs, targets, weight, ignore_index, reduction, check_args
        As in :func:`nll_loss`.
    grad_output : float, or ndarray (N,) for ``reduction='none'``
        The upstream gradient (see above).

    Returns
    -------
    ndarray
        dL/doutputs, (N, C), the outputs' dtype.

    Shape
    -----
    ``outputs`` and the result (N, C); ``targets`` (N,), ``grad_output`` (N,) for 'none'.

    Examples
    --------
    >>> nll_loss_backward(np.zeros((2, 3)), np.array([2, -100]), reduction="sum")
    array([[ 0.,  0., -1.],
           [ 0.,  0.,  0.]])
    """
    if check_args:
        targets = check_nll_args(outputs, targets, weight, ignore_index, reduction, "nll_loss_backward")
    n = len(targets)
    if reduction == "none":
        if not (isinstance(grad_output, np.ndarray) and grad_output.shape == (n,)
                and grad_output.dtype == outputs.dtype):
            raise ValueError(f"nll_loss_backward: reduction='none' gives one loss per row, so grad_output must be an "
                             f"ndarray of shape ({n},) and dtype {outputs.dtype}. Received: "
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
        rows = np.flatnonzero(kept)
        grad[rows, safe[rows]] = -(w_y * scale)[rows] if np.ndim(scale) else -w_y[rows] * scale
    return grad
