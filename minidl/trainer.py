"""The training loop: fit, evaluate, predict."""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Mapping

import numpy as np

from .callbacks import Callback
from .data import iterate_batches, num_batches

__all__ = ["Trainer", "History"]


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


def _limited_blas(method):
    """Run ``method`` with the BLAS thread pool limited to ``self.blas_threads``."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._blas_limit():
            return method(self, *args, **kwargs)

    return wrapper


class Trainer:
    """Trains a model with a loss and an optimizer.

    Parameters
    ----------
    model : Layer (a Sequential, a Graph or any layer)
    loss : a loss layer, e.g. ``minidl.losses.SoftmaxCrossEntropy()``
    optimizer : e.g. ``minidl.optim.SGD(model.parameters(), lr=0.05)``
    metrics : tuple of 'accuracy' or callables ``metric(y_true, outputs) -> float``
        (a per-batch mean; the Trainer weights batches by their size).
    blas_threads : int >= 1 or None, default 1
        Threads the BLAS library (numpy's matmul) may use inside ``fit``,
        ``evaluate`` and ``predict``, set with :mod:`threadpoolctl` and restored
        afterwards. One thread is fastest for the small matrices of small CNNs:
        waking BLAS worker threads for every small GEMM costs more than it saves
        (on the reference CNN, 2 threads make a training step about 1.5x slower).
        Raise it for large layers; None leaves the BLAS settings alone.

    Examples
    --------
    >>> import minidl as mdl
    >>> from minidl import layers, losses
    >>> model = mdl.Sequential(layers.Flatten(), layers.Dense(64, 10, rng=np.random.default_rng(0)))
    >>> trainer = mdl.Trainer(model, losses.SoftmaxCrossEntropy(), mdl.optim.SGD(model.parameters(), lr=0.1))
    >>> (X, y), _ = mdl.data.load_digits()
    >>> history = trainer.fit(X, y, epochs=2, seed=0, progress=False)
    >>> len(history["loss"])
    2
    """

    def __init__(self, model, loss, optimizer, metrics=("accuracy",), blas_threads=1):
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.metrics = _resolve_metrics(metrics)
        if blas_threads is not None and (
            not isinstance(blas_threads, (int, np.integer)) or isinstance(blas_threads, bool) or blas_threads < 1
        ):
            raise ValueError(
                f"Trainer: blas_threads must be an int >= 1 or None (leave BLAS alone). "
                f"Received: blas_threads={blas_threads!r}"
            )
        self.blas_threads = blas_threads
        self.stop_training = False
        self.history = History()

    # --------------------------------------------------------------- helpers
    def _blas_limit(self):
        if self.blas_threads is None:
            return contextlib.nullcontext()
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - installed with scikit-learn
            return contextlib.nullcontext()
        return threadpool_limits(int(self.blas_threads), user_api="blas")

    def _check_xy(self, X, y, where):
        if not isinstance(X, np.ndarray):
            raise TypeError(f"Trainer.{where}: X must be a numpy.ndarray. Received: {type(X).__name__}.")
        if y is not None and len(X) != len(y):
            raise ValueError(
                f"Trainer.{where}: X and y must have the same number of samples; got {len(X)} and {len(y)}."
            )
        if len(X) == 0:
            raise ValueError(f"Trainer.{where}: X is empty.")

    def _train_step(self, xb, yb, epoch, batch):
        outputs = self.model.forward(xb)
        loss = self.loss.forward(outputs, yb)
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"Trainer.fit: the loss is {loss} at epoch {epoch + 1}, batch {batch + 1}; training "
                "stopped before the weights were updated. Lower the learning rate, check the "
                "inputs for nan/inf, or scale them to [0, 1]."
            )
        self.optimizer.zero_grad()
        # backward_params: the gradient with respect to the data is never used
        getattr(self.model, "backward_params", self.model.backward)(self.loss.backward())
        self.optimizer.step()
        return loss, outputs

    # ------------------------------------------------------------------- API
    @_limited_blas
    def fit(self, X, y, epochs, batch_size=32, validation_data=None, shuffle=True, seed=None,
            callbacks=(), progress=True) -> History:
        """Train for ``epochs`` epochs; returns a :class:`History`.

        Parameters
        ----------
        X, y : training inputs and targets
        epochs : int >= 1
        batch_size : int >= 1; the last partial batch is used too
        validation_data : (X_val, y_val), optional; adds ``val_loss`` / ``val_<metric>``
        shuffle : bool
        seed : int, optional
            Seeds the shuffling; the same seeds (this and the layers' ``rng``)
            give the same loss history, exactly, on the same machine and numpy build.
        callbacks : iterable of :class:`~minidl.callbacks.Callback`
        progress : bool
            A tqdm progress bar per epoch with live loss and metrics; False prints nothing.
        """
        self._check_xy(X, y, "fit")
        if not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool) or epochs < 1:
            raise ValueError(f"Trainer.fit: epochs must be an int >= 1. Received: epochs={epochs!r}")
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"Trainer.fit: batch_size must be an int >= 1. Received: batch_size={batch_size!r}")
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError(
                    "Trainer.fit: validation_data must be a pair (X_val, y_val). "
                    f"Received: {type(validation_data).__name__}"
                    + (f" of length {len(validation_data)}" if hasattr(validation_data, "__len__") else "")
                    + "."
                )
            self._check_xy(validation_data[0], validation_data[1], "fit (validation_data)")
        callbacks = list(callbacks)
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"Trainer.fit: callbacks must be Callback instances. Received: {cb!r}")
            cb.set_trainer(self)
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed < 0:
            raise ValueError(f"Trainer.fit: seed must be None, an int >= 0 or a np.random.Generator. Received: seed={seed!r}")
        rng = np.random.default_rng(seed)
        self.stop_training = False
        self.history = History()
        logs: dict = {}
        for cb in callbacks:
            cb.on_train_begin(logs)
        n_batches = num_batches(len(X), batch_size)
        for epoch in range(epochs):
            for cb in callbacks:
                cb.on_epoch_begin(epoch, logs)
            self.model.train()
            bar = _progress_bar(n_batches, f"Epoch {epoch + 1}/{epochs}", progress)
            seen, loss_sum = 0, 0.0
            metric_sums = dict.fromkeys(self.metrics, 0.0)
            batches = iterate_batches(X, y, batch_size, shuffle, rng=rng)
            for b, (xb, yb) in enumerate(batches):
                for cb in callbacks:
                    cb.on_batch_begin(b, {"batch_size": len(xb)})
                loss, outputs = self._train_step(xb, yb, epoch, b)
                k = len(xb)
                seen += k
                loss_sum += loss * k
                batch_logs = {"loss": loss, "batch_size": k}
                for name, fn in self.metrics.items():
                    value = fn(yb, outputs)
                    metric_sums[name] += value * k
                    batch_logs[name] = value
                if bar is not None:
                    bar.set_postfix({"loss": f"{loss_sum / seen:.4f}",
                                     **{m: f"{s / seen:.4f}" for m, s in metric_sums.items()}},
                                    refresh=False)
                    bar.update(1)
                for cb in callbacks:
                    cb.on_batch_end(b, batch_logs)
            logs = {"loss": loss_sum / seen, **{m: s / seen for m, s in metric_sums.items()}}
            if validation_data is not None:
                X_val, y_val = validation_data
                logs.update({f"val_{k}": v for k, v in self.evaluate(X_val, y_val).items()})
            if bar is not None:
                bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()})
                bar.close()
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            self.history._append(epoch, logs)
            if self.stop_training:
                break
        for cb in callbacks:
            cb.on_train_end(logs)
        return self.history

    @_limited_blas
    def evaluate(self, X, y, batch_size=256) -> dict:
        """Loss and metrics over ``(X, y)``, each batch weighted by its size."""
        self._check_xy(X, y, "evaluate")
        was_training = self.model.training
        self.model.eval()
        try:
            loss_sum, sums = 0.0, dict.fromkeys(self.metrics, 0.0)
            for xb, yb in iterate_batches(X, y, batch_size, shuffle=False):
                outputs = self.model.forward(xb)
                loss_sum += self.loss.forward(outputs, yb) * len(xb)
                for name, fn in self.metrics.items():
                    sums[name] += fn(yb, outputs) * len(xb)
        finally:
            self.model.train(was_training)
        n = len(X)
        return {"loss": loss_sum / n, **{m: s / n for m, s in sums.items()}}

    @_limited_blas
    def predict(self, X, batch_size=256) -> np.ndarray:
        """The model's outputs (logits for a classifier), computed in batches."""
        self._check_xy(X, None, "predict")
        was_training = self.model.training
        self.model.eval()
        try:
            outs = [self.model.forward(xb) for xb in iterate_batches(X, None, batch_size, shuffle=False)]
        finally:
            self.model.train(was_training)
        return np.concatenate(outs, axis=0)


def _progress_bar(total, desc, enabled):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=True, dynamic_ncols=True)
