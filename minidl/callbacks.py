"""Training callbacks with event-named hooks, as in Keras."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler"]


class Callback:
    """Base class: override any hook. ``self.trainer`` is set by ``Trainer.fit``.

    Hooks: ``on_train_begin(logs)``, ``on_epoch_begin(epoch, logs)``,
    ``on_batch_begin(batch, logs)``, ``on_batch_end(batch, logs)``,
    ``on_epoch_end(epoch, logs)``, ``on_train_end(logs)``. ``epoch`` and
    ``batch`` count from 0; ``logs`` is a dict of the current metrics. Set
    ``self.trainer.stop_training = True`` to stop after the current epoch.
    """

    trainer = None

    def set_trainer(self, trainer) -> None:
        self.trainer = trainer

    def on_train_begin(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_batch_begin(self, batch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_end(self, logs=None): ...


class _Monitor(Callback):
    """Tracks the best value of a logged metric ('min' for losses, 'max' otherwise)."""

    def __init__(self, monitor, mode, min_delta=0.0):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"{type(self).__name__}: mode must be 'auto', 'min' or 'max'. Received: mode={mode!r}")
        if mode == "auto":
            mode = "min" if "loss" in monitor else "max"
        self.monitor, self.mode, self.min_delta = monitor, mode, abs(float(min_delta))
        self.best = math.inf if mode == "min" else -math.inf

    def _current(self, logs):
        if self.monitor not in (logs or {}):
            raise ValueError(
                f"{type(self).__name__}: monitored metric {self.monitor!r} is not in the logs "
                f"{sorted(logs or {})}. Pass validation_data to fit() to get 'val_*' metrics, "
                "or monitor one of the listed names."
            )
        return float(logs[self.monitor])

    def _improved(self, value):
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved for ``patience`` epochs.

    Parameters
    ----------
    monitor : str, default 'val_loss'
    patience : int, default 0
    restore_best_weights : bool
        At the end of training, load the weights of the best epoch.
    mode : 'auto' | 'min' | 'max'
    min_delta : float
    """

    def __init__(self, monitor="val_loss", patience=0, restore_best_weights=False, mode="auto", min_delta=0.0):
        super().__init__(monitor, mode, min_delta)
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0. Received: patience={patience!r}")
        self.patience, self.restore_best_weights = patience, restore_best_weights

    def on_train_begin(self, logs=None):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait, self.best_epoch, self.best_weights, self.stopped_epoch = 0, None, None, None

    def on_epoch_end(self, epoch, logs=None):
        value = self._current(logs)
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.trainer.model.state_dict()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                self.trainer.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.trainer.model.load_state_dict(self.best_weights)


class ModelCheckpoint(_Monitor):
    """Save the model (``model.save``) at the end of epochs.

    Parameters
    ----------
    path : str or os.PathLike
        May contain ``{epoch}`` (1-based) and any logged metric, e.g.
        ``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"``.
    monitor : str, default 'val_loss'
    save_best_only : bool
        Only save when ``monitor`` improved on its best value so far.
    mode : 'auto' | 'min' | 'max'
    """

    def __init__(self, path, monitor="val_loss", save_best_only=False, mode="auto"):
        super().__init__(monitor, mode)
        self.path, self.save_best_only = str(path), bool(save_best_only)
        self.saved = []

    def on_train_begin(self, logs=None):
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self.save_best_only:
            value = self._current(logs)
            if not self._improved(value):
                return
            self.best = value
        path = self.path.format(epoch=epoch + 1, **logs)
        self.trainer.model.save(path)
        self.saved.append(path)


class LearningRateScheduler(Callback):
    """Set ``optimizer.lr = schedule(epoch, lr)`` at the start of every epoch.

    ``schedule`` may also be an object with a ``step()`` method (such as
    :class:`minidl.optim.StepLR`), stepped at the end of every epoch.

    Examples
    --------
    >>> halve_every_5 = LearningRateScheduler(lambda epoch, lr: 0.05 * 0.5 ** (epoch // 5))
    """

    def __init__(self, schedule):
        if not callable(schedule) and not hasattr(schedule, "step"):
            raise TypeError("LearningRateScheduler: schedule must be callable(epoch, lr) or have a step() method.")
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        if callable(self.schedule) and not hasattr(self.schedule, "step"):
            lr = float(self.schedule(epoch, self.trainer.optimizer.lr))
            if not np.isfinite(lr) or lr < 0:
                raise ValueError(f"LearningRateScheduler: schedule returned an invalid lr {lr!r} at epoch {epoch + 1}.")
            self.trainer.optimizer.lr = lr

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:  # the lr used in this epoch, before the schedule moves on
            logs["lr"] = self.trainer.optimizer.lr
        if hasattr(self.schedule, "step"):
            self.schedule.step()
