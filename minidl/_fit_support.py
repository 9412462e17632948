"""The Trainer's helpers: the History, the metrics, and the checks made before training."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .layers.base import Layer
from .losses import Loss
from .optim import all_finite

__all__ = ["History"]


class History(Mapping):
    """Per-epoch metrics: ``history["loss"]`` is a list with one value per epoch.

    A read-only mapping; ``.history`` is the underlying dict (as in Keras) and
    ``.epoch`` the list of epoch indices run.
    """

    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def _append(self, epoch, logs):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))

    def _update_last(self, logs):
        """Make the last epoch's entries those of ``logs`` (which callbacks may have changed)."""
        n = len(self.epoch)
        for key, value in logs.items():
            values = self.history.setdefault(key, [])
            if len(values) == n:
                values[-1] = float(value)
            else:
                values.append(float(value))

    def __getitem__(self, key):
        return self.history[key]

    def __iter__(self):
        return iter(self.history)

    def __len__(self):
        return len(self.history)

    def __repr__(self):
        return f"History({self.history!r})"


def _accuracy(y_true, outputs):
    y_true = np.asarray(y_true)
    if y_true.ndim == 2:  # class-probability targets
        y_true = y_true.argmax(axis=1)
    return float(np.mean(np.argmax(outputs, axis=1) == y_true))


_METRICS = {"accuracy": _accuracy, "acc": _accuracy}


def _resolve_metrics(metrics):
    if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)):
        raise TypeError(
            f"Trainer: metrics must be a list or tuple of metric names or callables, e.g. "
            f"metrics=['accuracy']. Received: metrics={metrics!r}"
        )
    resolved = {}
    for m in metrics:
        if isinstance(m, str):
            if m not in _METRICS:
                raise ValueError(f"Trainer: unknown metric {m!r}. Known: {sorted(_METRICS)}, or pass a callable(y_true, outputs).")
            resolved["accuracy" if m == "acc" else m] = _METRICS[m]
        elif callable(m):
            resolved[getattr(m, "__name__", "metric")] = m
        else:
            raise TypeError(f"Trainer: metrics must be names or callables. Received: {m!r}")
    return resolved


def _check_components(model, loss, optimizer):
    """Refuse a model, loss or optimizer of the wrong kind, before any work."""
    def what(obj):
        return f"the class {obj.__name__} (an instance is needed: {obj.__name__}(...))" \
            if isinstance(obj, type) else f"{type(obj).__name__} {obj!r}"[:200]

    if not isinstance(model, Layer):
        raise TypeError(f"Trainer: model must be a minidl Layer (a Sequential, a Graph, ...). "
                        f"Received: {what(model)}.")
    if not isinstance(loss, Loss):
        raise TypeError(
            "Trainer: loss must be a loss instance such as minidl.losses.SoftmaxCrossEntropy() "
            f"(a subclass of minidl.losses.Loss). Received: {what(loss)}."
        )
    if isinstance(optimizer, type) or not all(callable(getattr(optimizer, m, None))
                                               for m in ("step", "zero_grad")):
        raise TypeError(
            "Trainer: optimizer must have step() and zero_grad(), e.g. "
            f"minidl.optim.SGD(model.parameters(), lr=0.05). Received: {what(optimizer)}."
        )


def _check_optimizer_params(model, optimizer):
    """After the kinds are checked: an optimizer of another model would train nothing."""
    params = getattr(optimizer, "params", None)
    if isinstance(params, list) and params:
        mine = {id(p) for p in model.parameters()}
        if not any(id(p) in mine for p in params):
            raise ValueError(
                f"Trainer: none of the optimizer's {len(params)} parameters is a parameter of the "
                "model, so training would change nothing. Build the optimizer on this model: "
                "SGD(model.parameters(), ...) after the model (not on a copy or an earlier build)."
            )


def _check_finite_data(X, where, name):
    if X.dtype.kind in "fc" and not all_finite(X):
        bad = np.flatnonzero(~np.isfinite(X.reshape(len(X), -1)).all(axis=1))
        raise ValueError(
            f"Trainer.{where}: {name} contains nan or inf in {bad.size} sample(s), e.g. sample "
            f"{int(bad[0])}. Clean or drop them (np.isfinite({name}).all(axis=...)) before training."
        )


def _base_seed(seed) -> int:
    """The int that, with the epoch index, seeds each epoch's shuffling."""
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(2**63))
    if seed is None:
        return int(np.random.SeedSequence().entropy % 2**63)
    return int(seed)
