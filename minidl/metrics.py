"""Training metrics: per-batch means that the Trainer weights by batch size."""

from __future__ import annotations

import numpy as np

from .validation import check_int

__all__ = ["accuracy", "confusion_matrix", "resolve_metrics", "METRICS"]


def accuracy(y_true, outputs) -> float:
    """Fraction of rows whose arg-max output is the label (or the arg-max of a probability row).

    Parameters
    ----------
    y_true : array-like
        Integer labels, or class probabilities (the outputs' shape).
    outputs : ndarray
        Scores (logits or probabilities), one row per sample; the classes on axis 1.

    Returns
    -------
    float
        In [0, 1]; over (N, K, d1, ...) outputs, the fraction of positions (pixels).

    Shape
    -----
    - ``y_true``: (N,) labels or (N, K) probabilities; (N, d1, ...) labels or (N, K, d1, ...)
      probabilities for per-position outputs
    - ``outputs``: (N, K) or (N, K, d1, ...)

    Examples
    --------
    >>> accuracy(np.array([0, 1, 1]), np.array([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0]]))
    0.6666666666666666
    >>> accuracy(np.array([[0, 1, 1]]), np.array([[[2.0, 0.0, 5.0], [1.0, 3.0, 1.0]]]))  # per pixel
    0.6666666666666666
    """
    y_true = np.asarray(y_true)
    if y_true.ndim >= 2 and y_true.ndim == np.ndim(outputs):  # class probabilities: the outputs' shape
        y_true = y_true.argmax(axis=1)
    return float(np.mean(np.argmax(outputs, axis=1) == y_true))


def class_labels(y, name: str, where: str) -> np.ndarray:
    """Integer class labels from labels (N,) or per-class scores / one-hot rows (N, K) (arg-max)."""
    y = np.asarray(y)
    if y.ndim == 2:
        y = y.argmax(axis=1)
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.size == 0):
        raise ValueError(f"{where}: {name} must be integer class labels of shape (N,) or class scores of "
                         f"shape (N, K). Received: {name} of shape {y.shape} and dtype {y.dtype}")
    if y.size and y.min() < 0:
        raise ValueError(f"{where}: {name} holds a negative label. Received: min({name})={y.min()}")
    return y.astype(np.int64)


def confusion_matrix(y_true, y_pred, num_classes=None, normalize=None) -> np.ndarray:
    """Count how often each true class is predicted as each class.

    Parameters
    ----------
    y_true, y_pred : array-like
        Integer labels of shape (N,), or scores / probabilities / one-hot rows
        of shape (N, K) (the arg-max of each row is the label, as in
        :func:`accuracy`; so ``trainer.predict(X)`` can be passed as it is).
    num_classes : int >= 1, optional
        The matrix's size; default: the largest label + 1.
    normalize : {None, 'true', 'pred', 'all'}
        As scikit-learn's: divide by the row sums (recall per class), the
        column sums (precision per class) or the total; an empty row or
        column stays 0.

    Returns
    -------
    ndarray of shape (num_classes, num_classes)
        ``cm[i, j]``: the samples of true class ``i`` predicted as ``j``;
        int64 counts, or float64 fractions with ``normalize``.

    Shape
    -----
    ``y_true``, ``y_pred``: (N,) labels or (N, K) scores; result: (num_classes, num_classes).

    Examples
    --------
    >>> confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2])
    array([[1, 0, 0],
           [0, 1, 1],
           [0, 0, 1]])
    >>> confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], normalize="true")[1]
    array([0. , 0.5, 0.5])
    """
    where = "confusion_matrix"
    y_true, y_pred = class_labels(y_true, "y_true", where), class_labels(y_pred, "y_pred", where)
    if len(y_true) != len(y_pred):
        raise ValueError(f"{where}: y_true and y_pred must have one label per sample each. "
                         f"Received: {len(y_true)} and {len(y_pred)} labels")
    if normalize not in (None, "true", "pred", "all"):
        raise ValueError(f"{where}: normalize must be None, 'true', 'pred' or 'all'. Received: normalize={normalize!r}")
    largest = int(max(y_true.max(initial=-1), y_pred.max(initial=-1)))
    if num_classes is None:
        num_classes = largest + 1
    elif check_int(num_classes, "num_classes", where, 1) <= largest:
        raise ValueError(f"{where}: label {largest} does not fit num_classes={num_classes} (labels are "
                         "0 .. num_classes - 1); pass a larger num_classes, or None to infer it")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    if normalize is None:
        return cm
    total = {"true": cm.sum(axis=1, keepdims=True), "pred": cm.sum(axis=0, keepdims=True), "all": cm.sum()}
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(cm / total[normalize])


METRICS = {"accuracy": accuracy, "acc": accuracy}


def resolve_metrics(metrics) -> dict:
    """``{name: callable}`` for a list or tuple of metric names and callables.

    Parameters
    ----------
    metrics : list or tuple
        Names in ``METRICS`` (``'accuracy'``, ``'acc'``) or callables
        ``metric(y_true, outputs) -> float`` (named by their ``__name__``).

    Returns
    -------
    dict of str to callable

    Raises
    ------
    TypeError, ValueError
        Not a list/tuple, an entry neither a name nor callable, an unknown name.

    Examples
    --------
    >>> def top_score(y_true, outputs):
    ...     return float(outputs.max(axis=1).mean())
    >>> list(resolve_metrics(["acc", top_score]))
    ['accuracy', 'top_score']
    """
    if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)):
        raise TypeError(
            f"Trainer: metrics must be a list or tuple of metric names or callables, e.g. "
            f"metrics=['accuracy']. Received: metrics={metrics!r}"
        )
    resolved = {}
    for m in metrics:
        if isinstance(m, str):
            if m not in METRICS:
                raise ValueError(f"Trainer: unknown metric {m!r}. Known: {sorted(METRICS)}, "
                                 "or pass a callable(y_true, outputs).")
            resolved["accuracy" if m == "acc" else m] = METRICS[m]
        elif callable(m):
            resolved[getattr(m, "__name__", "metric")] = m
        else:
            raise TypeError(f"Trainer: metrics must be names or callables. Received: {m!r}")
    return resolved
