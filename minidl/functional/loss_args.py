"""The argument checks of the loss kernels: reductions, label smoothing, class weights, and
:func:`check_cross_entropy_args` (what :mod:`minidl.functional.loss` and :mod:`minidl.losses` run)."""

from __future__ import annotations

import numbers

import numpy as np

from ..validation import check_array, check_float_dtype, check_int

__all__ = ["REDUCTIONS", "check_label_smoothing", "check_reduction", "check_class_weight",
           "check_cross_entropy_args"]

#: ``reduction`` values, PyTorch's.
REDUCTIONS = ("mean", "sum", "none")


def check_label_smoothing(label_smoothing, where: str) -> float:
    """Return ``label_smoothing`` as a float in [0, 1], or raise ValueError (bools refused).

    Parameters
    ----------
    label_smoothing : float
    where : str
        The caller, named in error messages.

    Returns
    -------
    float

    Examples
    --------
    >>> check_label_smoothing(0.1, "SoftmaxCrossEntropy")
    0.1
    """
    if (not isinstance(label_smoothing, numbers.Real) or isinstance(label_smoothing, bool)
            or not 0.0 <= label_smoothing <= 1.0):
        raise ValueError(
            f"{where}: label_smoothing must be a float in [0, 1]. "
            f"Received: label_smoothing={label_smoothing!r}"
        )
    return float(label_smoothing)


def check_reduction(reduction, where: str) -> str:
    """Return ``reduction`` if it is 'mean', 'sum' or 'none' (PyTorch's names), or raise ValueError.

    Parameters
    ----------
    reduction : str
    where : str
        The caller, named in error messages.

    Returns
    -------
    str

    Examples
    --------
    >>> check_reduction("sum", "MSE")
    'sum'
    """
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"{where}: reduction must be 'mean', 'sum' or 'none', as in PyTorch. "
                         f"Received: reduction={reduction!r}")
    return reduction


def check_class_weight(weight, where: str):
    """``weight`` as a 1-D float64 array of finite per-class weights (a copy), or None.

    Parameters
    ----------
    weight : array-like (K,) or None
    where : str
        The caller, named in error messages.

    Returns
    -------
    ndarray (K,) of float64, or None

    Examples
    --------
    >>> check_class_weight([1, 2], "SoftmaxCrossEntropy")
    array([1., 2.])
    """
    if weight is None:
        return None
    if isinstance(weight, (str, bytes, numbers.Number)):
        raise TypeError(
            f"{where}: weight must be a 1-D sequence or array of per-class weights (torch's "
            f"CrossEntropyLoss(weight=...)), or None. Received: weight={weight!r}."
            + (" For label smoothing pass label_smoothing= by keyword." if isinstance(weight, numbers.Real) else "")
        )
    try:
        w = np.array(weight)
    except (ValueError, TypeError, OverflowError) as exc:  # ragged nesting and the like
        raise TypeError(f"{where}: weight must be a 1-D array of per-class weights. Received: weight={weight!r} "
                        f"({exc}).") from None
    if w.dtype.kind not in "iuf" or w.ndim != 1 or w.size == 0:
        raise ValueError(f"{where}: weight must be a non-empty 1-D array of real numbers, one per class. "
                         f"Received: dtype {w.dtype}, shape {w.shape}.")
    w = w.astype(np.float64)
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{where}: weight must be finite. Received: {w.tolist()}.")
    return w


def check_weight_classes(weight, k, where):
    if weight is not None and weight.shape != (k,):
        raise ValueError(f"{where}: expected a weight of shape ({k},), one per class of the logits; "
                         f"got shape {weight.shape}.")


def per_class(values, ndim):
    """Per-class ``values`` (K,) shaped to broadcast along axis 1 of an ``ndim``-D (N, K, d1, ...) array."""
    return values.reshape((-1,) + (1,) * (ndim - 2))


def at_labels(labels):
    """The index of each position's label in an (N, K, d1, ...) array, for labels (N, d1, ...):
    ``(arange(N), labels)`` for rows, with the spatial positions' ranges broadcast after them."""
    positions = np.indices(labels.shape, sparse=True)
    return positions[:1] + (labels,) + positions[1:]


def _check_logits(logits, where):
    check_array(logits, "logits", where)
    if logits.ndim < 2:
        raise ValueError(f"{where}: expected logits with 2 dimensions (N, num_classes) or more (N, num_classes, "
                         f"d1, ...); got {logits.ndim} dimensions with shape {logits.shape}. For a single sample "
                         "add a batch axis: logits[None].")
    check_float_dtype(logits, "logits", where)
    if logits.shape[1] == 0:
        raise ValueError(f"{where}: logits must have at least one class. Received: shape {logits.shape}.")


def check_cross_entropy_args(logits, targets, label_smoothing, where="cross_entropy", *,
                             weight=None, ignore_index=-100, reduction="mean"):
    """Validate; return ``targets`` as an integer (N, d1, ...) or float (N, K, d1, ...) array (not smoothed).

    :func:`cross_entropy` and :func:`cross_entropy_backward` run it unless told
    ``check_args=False`` by a caller that ran it on the same arguments
    (:class:`~minidl.losses.SoftmaxCrossEntropy` checks in forward only).

    Parameters
    ----------
    logits, targets, label_smoothing, weight, ignore_index, reduction
        As in :func:`cross_entropy`.
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray
        ``targets`` as an array (labels (N, d1, ...) or probabilities of the logits' shape).

    Raises
    ------
    TypeError, ValueError
        Wrong types or dtypes, shapes that do not match (the message says the shape expected),
        labels out of range, ``ignore_index`` with probability targets; the message names ``where``.

    Shape
    -----
    ``logits`` (N, K) or (N, K, d1, ...); ``targets`` (N,) or (N, d1, ...) labels, or probabilities
    of the logits' shape.

    Examples
    --------
    >>> check_cross_entropy_args(np.zeros((2, 3)), [0, 2], 0.0)
    array([0, 2])
    >>> check_cross_entropy_args(np.zeros((1, 3, 2)), [[0, 2]], 0.0)  # a label per position
    array([[0, 2]])
    """
    _check_logits(logits, where)
    check_label_smoothing(label_smoothing, where)
    check_reduction(reduction, where)
    ignore_index = check_int(ignore_index, "ignore_index", where)
    k = logits.shape[1]
    if weight is not None:
        check_array(weight, "weight", where)
        check_weight_classes(weight, k, where)
    targets = np.asarray(targets)
    if targets.dtype.kind in "iu":
        shape = logits.shape[:1] + logits.shape[2:]
        if targets.shape != shape:
            per = "row" if logits.ndim == 2 else "position"
            raise ValueError(f"{where}: expected integer labels of shape {shape} (one per {per} of logits "
                             f"{logits.shape}), got shape {targets.shape}.")
        bad = targets[((targets < 0) | (targets >= k)) & (targets != ignore_index)]
        if bad.size:
            raise ValueError(
                f"{where}: labels must be in [0, {k - 1}] for {k} classes (or ignore_index={ignore_index}); "
                f"got {bad.size} out of range, e.g. {int(bad[0])}."
            )
    elif targets.dtype.kind == "f":
        if targets.shape != logits.shape:
            raise ValueError(
                f"{where}: expected probability targets of shape {logits.shape} (same as logits), "
                f"got {targets.shape}. For class indices pass an integer array of shape "
                f"{logits.shape[:1] + logits.shape[2:]}."
            )
        if ignore_index >= 0:
            raise ValueError(f"{where}: ignore_index applies to class-index targets only, as in PyTorch; "
                             f"got probability targets with ignore_index={ignore_index}. Leave it at -100.")
    else:
        raise TypeError(
            f"{where}: targets must be integer class labels or float class probabilities. "
            f"Received: dtype={targets.dtype}."
        )
    return targets
