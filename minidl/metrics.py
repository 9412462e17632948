"""Training metrics: per-batch means that the Trainer weights by batch size."""

from __future__ import annotations

import numpy as np

__all__ = ["accuracy", "resolve_metrics", "METRICS"]


def accuracy(y_true, outputs) -> float:
    """Fraction of rows whose arg-max output is the label (or the arg-max of a probability row).

    Parameters
    ----------
    y_true : array-like
        Integer labels, or class-probability rows.
    outputs : ndarray
        Scores (logits or probabilities), one row per sample.

    Returns
    -------
    float
        In [0, 1].

    Shape
    -----
    - ``y_true``: (N,) labels or (N, K) probabilities
    - ``outputs``: (N, K)

    Examples
    --------
    >>> accuracy(np.array([0, 1, 1]), np.array([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0]]))
    0.6666666666666666
    """
    y_true = np.asarray(y_true)
    if y_true.ndim == 2:  # class-probability targets
        y_true = y_true.argmax(axis=1)
    return float(np.mean(np.argmax(outputs, axis=1) == y_true))


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
