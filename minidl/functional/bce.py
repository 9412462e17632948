r"""Binary cross-entropy, as :func:`torch.nn.functional.binary_cross_entropy` (from probabilities)
and :func:`torch.nn.functional.binary_cross_entropy_with_logits` (from logits, stable).

Element losses, reduced by ``reduction`` ('mean' over every element, 'sum' or 'none'); the
optional ``weight`` (and ``pos_weight``) broadcast against the outputs, as in PyTorch. See
``docs/derivations/losses.md``.
"""

from __future__ import annotations

import numpy as np

from .activation import sigmoid
from .reduction import check_pair, reduce_loss, upstream_scale

__all__ = ["binary_cross_entropy", "binary_cross_entropy_backward", "binary_cross_entropy_with_logits",
           "binary_cross_entropy_with_logits_backward", "check_bce_args"]

#: PyTorch's floor of the logs in binary_cross_entropy, and of x(1 - x) in its backward (a C float there).
LOG_FLOOR, EPSILON = -100.0, float(np.float32(1e-12))


def _check_weight(weight, name, shape, where):
    if weight is None:
        return None
    if not isinstance(weight, np.ndarray) or weight.dtype.kind not in "iuf":
        raise TypeError(f"{where}: {name} must be a real ndarray or None. Received: {type(weight).__name__} "
                        f"{getattr(weight, 'dtype', '')}. Convert it with np.asarray({name}, dtype=np.float32).")
    try:
        broadcast = np.broadcast_shapes(weight.shape, shape)
    except ValueError:
        broadcast = None
    if broadcast != shape:
        raise ValueError(f"{where}: {name} of shape {weight.shape} does not broadcast to the outputs' shape {shape}; "
                         f"give it a shape that does, e.g. ({shape[-1] if shape else 1},) for one per class.")
    return weight


def check_bce_args(outputs, targets, reduction="mean", where="binary_cross_entropy", *, weight=None,
                   pos_weight=None, probabilities=True):
    """Validate; return ``targets`` as an array of ``outputs``' dtype and shape.

    Parameters
    ----------
    outputs, targets, reduction, weight, pos_weight
        As in :func:`binary_cross_entropy_with_logits`.
    where : str
        The caller, named in error messages.
    probabilities : bool
        True: ``outputs`` are probabilities and must lie in [0, 1] (:func:`binary_cross_entropy`).

    Returns
    -------
    ndarray
        ``targets`` in ``outputs``' dtype.

    Raises
    ------
    TypeError, ValueError
        Wrong types, shapes that do not match or broadcast, probabilities outside [0, 1].

    Shape
    -----
    ``outputs`` and ``targets``: one shape, any; ``weight`` and ``pos_weight`` broadcast to it.

    Examples
    --------
    >>> check_bce_args(np.array([0.5], np.float32), np.array([1]))
    array([1.], dtype=float32)
    """
    targets = check_pair(outputs, targets, reduction, where)
    _check_weight(weight, "weight", outputs.shape, where)
    _check_weight(pos_weight, "pos_weight", outputs.shape, where)
    if probabilities:
        with np.errstate(invalid="ignore"):
            outside = ~((outputs >= 0) & (outputs <= 1))
        if outside.any():
            raise ValueError(f"{where}: outputs must be probabilities in [0, 1], as in PyTorch; got "
                             f"{int(outside.sum())} outside, e.g. {float(outputs[outside][0])}. Pass logits to "
                             f"BCEWithLogitsLoss / binary_cross_entropy_with_logits instead (stable), "
                             "or apply a sigmoid.")
    return targets


def binary_cross_entropy(outputs, targets, weight=None, reduction="mean", *, check_args=True):
    r"""The reduced :math:`-w\,[y \log x + (1 - y) \log(1 - x)]`, each log floored at -100 (PyTorch's).

    Parameters
    ----------
    outputs : ndarray, floating point, values in [0, 1]
        Probabilities, e.g. a Sigmoid's output.
    targets : ndarray, same shape (cast to the outputs' dtype), usually in [0, 1]
    weight : ndarray or None
        Rescales each element's loss; broadcasts to the outputs' shape.
    reduction : {'mean', 'sum', 'none'}
        'mean' averages over every element, as PyTorch.
    check_args : bool
        False skips :func:`check_bce_args` (``targets`` must then be its result).

    Returns
    -------
    float ('mean', 'sum') or ndarray of the outputs' shape and dtype ('none')

    Shape
    -----
    ``outputs`` and ``targets``: one shape, any; 'none' returns that shape.

    Examples
    --------
    >>> round(binary_cross_entropy(np.array([0.5, 1.0]), np.array([1.0, 0.0])), 4)  # (log 2 + 100) / 2
    50.3466
    """
    if check_args:
        targets = check_bce_args(outputs, targets, reduction, weight=weight)
    floor = outputs.dtype.type(LOG_FLOOR)
    with np.errstate(divide="ignore"):
        loss = -(targets * np.maximum(np.log(outputs), floor) + (1 - targets) * np.maximum(np.log1p(-outputs), floor))
    if weight is not None:
        loss *= weight.astype(outputs.dtype, copy=False)
    return reduce_loss(loss, reduction)


def binary_cross_entropy_backward(outputs, targets, weight=None, reduction="mean", *, grad_output=None,
                                  check_args=True):
    r"""dL/doutputs of :func:`binary_cross_entropy`: :math:`w\,(x - y) / \max(x(1 - x), 10^{-12})` times ``r``.

    ``r`` is ``grad_output / numel`` ('mean'), ``grad_output`` ('sum'; a scalar, default 1) or the
    element-wise upstream gradient ('none'); the floor is PyTorch's.

    Parameters
    ----------
    outputs, targets, weight, reduction, check_args
        As in :func:`binary_cross_entropy`.
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
    >>> binary_cross_entropy_backward(np.array([0.5, 0.8]), np.array([1.0, 0.0]), reduction="sum")
    array([-2.,  5.])
    """
    if check_args:
        targets = check_bce_args(outputs, targets, reduction, "binary_cross_entropy_backward", weight=weight)
    scale = upstream_scale(grad_output, reduction, outputs, "binary_cross_entropy_backward")
    grad = (outputs - targets) / np.maximum((1 - outputs) * outputs, outputs.dtype.type(EPSILON))
    if weight is not None:
        grad *= weight.astype(outputs.dtype, copy=False)
    grad *= scale
    return grad


def binary_cross_entropy_with_logits(outputs, targets, weight=None, reduction="mean", pos_weight=None, *,
                                     check_args=True):
    r"""Binary cross-entropy of :math:`\sigma(x)`, computed from the logits ``x`` without overflow.

    With :math:`p` = ``pos_weight`` (1 when None) and :math:`l = 1 + (p - 1) y`, the element loss
    :math:`-w\,[p\,y \log\sigma(x) + (1 - y)\log(1 - \sigma(x))]` is computed as
    :math:`w\,[(1 - y)\,x + l\,(\log(1 + e^{-|x|}) + \max(-x, 0))]`, PyTorch's stable form.

    Parameters
    ----------
    outputs : ndarray, floating point
        Logits, any real value.
    targets : ndarray, same shape (cast to the outputs' dtype), usually in [0, 1]
    weight : ndarray or None
        Rescales each element's loss; broadcasts to the outputs' shape.
    reduction : {'mean', 'sum', 'none'}
        'mean' averages over every element, as PyTorch.
    pos_weight : ndarray or None
        The weight of the positive term, e.g. one per class (C,); broadcasts to the outputs' shape.
    check_args : bool
        False skips :func:`check_bce_args` (``targets`` must then be its result).

    Returns
    -------
    float ('mean', 'sum') or ndarray of the outputs' shape and dtype ('none')

    Shape
    -----
    ``outputs`` and ``targets``: one shape, any; 'none' returns that shape.

    Examples
    --------
    >>> binary_cross_entropy_with_logits(np.array([-1000.0, 0.0]), np.array([0.0, 1.0]), reduction="none")
    array([0.        , 0.69314718])
    """
    if check_args:
        targets = check_bce_args(outputs, targets, reduction, "binary_cross_entropy_with_logits", weight=weight,
                                 pos_weight=pos_weight, probabilities=False)
    softplus_neg = np.log1p(np.exp(-np.abs(outputs))) + np.maximum(-outputs, 0)  # log(1 + e^-x), stable
    if pos_weight is not None:
        softplus_neg *= 1 + (pos_weight.astype(outputs.dtype, copy=False) - 1) * targets
    loss = (1 - targets) * outputs + softplus_neg
    if weight is not None:
        loss *= weight.astype(outputs.dtype, copy=False)
    return reduce_loss(loss, reduction)


def binary_cross_entropy_with_logits_backward(outputs, targets, weight=None, reduction="mean", pos_weight=None, *,
                                              grad_output=None, check_args=True):
    r"""dL/doutputs of :func:`binary_cross_entropy_with_logits`: :math:`w\,(l\,\sigma(x) - p\,y)` times ``r``.

    Without ``pos_weight`` (:math:`p = l = 1`) that is the familiar :math:`w\,(\sigma(x) - y)`.

    Parameters
    ----------
    outputs, targets, weight, reduction, pos_weight, check_args
        As in :func:`binary_cross_entropy_with_logits`.
    grad_output : float, or ndarray for ``reduction='none'``
        As in :func:`binary_cross_entropy_backward`.

    Returns
    -------
    ndarray
        dL/doutputs, the outputs' shape and dtype.

    Shape
    -----
    ``outputs``, ``targets`` and the result: one shape (``grad_output`` too for 'none').

    Examples
    --------
    >>> binary_cross_entropy_with_logits_backward(np.array([0.0, 0.0]), np.array([0.0, 1.0]), reduction="sum")
    array([ 0.5, -0.5])
    """
    if check_args:
        targets = check_bce_args(outputs, targets, reduction, "binary_cross_entropy_with_logits_backward",
                                 weight=weight, pos_weight=pos_weight, probabilities=False)
    scale = upstream_scale(grad_output, reduction, outputs, "binary_cross_entropy_with_logits_backward")
    s = sigmoid(outputs)
    if pos_weight is None:
        grad = s - targets
    else:
        p = pos_weight.astype(outputs.dtype, copy=False)
        grad = (1 + (p - 1) * targets) * s - p * targets
    if weight is not None:
        grad = grad * weight.astype(outputs.dtype, copy=False)
    grad *= scale
    return grad
