"""Training metrics: per-batch means that the Trainer weights by batch size."""

from __future__ import annotations

import numpy as np

__all__ = ["accuracy", "resolve_metrics", "METRICS"]


def accuracy(y_true, outputs) -> float:
    """Fraction of rows whose arg-max output is the label (or the arg-max of a probability row)."""
    y_true = np.asarray(y_true)
    if y_true.ndim == 2:  # class-probability targets
        y_true = y_true.argmax(axis=1)
    return float(np.mean(np.argmax(outputs, axis=1) == y_true))


METRICS = {"accuracy": accuracy, "acc": accuracy}


def resolve_metrics(metrics) -> dict:
    """``{name: callable}`` for a list or tuple of metric names and callables."""
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
