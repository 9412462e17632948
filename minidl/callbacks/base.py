"""The Callback base class (the Trainer's hooks) and the monitor shared by EarlyStopping and ModelCheckpoint."""

from __future__ import annotations

import math


class Callback:
    """Base class: override any hook. ``self.trainer`` is set by ``Trainer.fit``.

    Hooks: ``on_train_begin(logs)``, ``on_epoch_begin(epoch, logs)``,
    ``on_batch_begin(batch, logs)``, ``on_after_backward(batch, logs)``,
    ``on_batch_end(batch, logs)``, ``on_epoch_end(epoch, logs)``,
    ``on_train_end(logs)``. ``on_after_backward`` runs once the batch's
    gradients are in the parameters' ``.grad`` and before the optimizer
    step (and before ``clip_grad_norm``); its ``logs`` hold ``loss`` and
    ``batch_size``. ``epoch`` and
    ``batch`` count from 0; ``logs`` is a dict of the current metrics. Set
    ``self.trainer.stop_training = True`` to stop after the current epoch. A
    callback that adds entries to the epoch logs lists their names in
    ``logged_keys``. Callbacks with ``state_dict()`` / ``load_state_dict()``
    have that state saved in Trainer checkpoints.

    Examples
    --------
    >>> import minidl as mdl
    >>> class PrintLoss(Callback):
    ...     def on_epoch_end(self, epoch, logs=None):
    ...         print(epoch, "loss" in logs)
    >>> model = mdl.Sequential(mdl.layers.Dense(4, 3, rng=0))
    >>> trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(),
    ...                       mdl.optim.SGD(model.parameters(), lr=0.1))
    >>> X, y = np.ones((6, 4), np.float32), np.arange(6) % 3
    >>> _ = trainer.fit(X, y, epochs=2, callbacks=[PrintLoss()], progress=False)
    0 True
    1 True
    """

    trainer = None
    #: Names this callback adds to the epoch logs (declare them so that monitors and
    #: checkpoint paths naming them are accepted before training starts).
    logged_keys: tuple = ()

    def set_trainer(self, trainer) -> None:
        """Attach the Trainer (``Trainer.fit`` calls it before ``on_train_begin``).

        Parameters
        ----------
        trainer : Trainer
            Becomes ``self.trainer``: its ``model``, ``optimizer``, ``history``,
            ``stop_training``.
        """
        self.trainer = trainer

    def on_train_begin(self, logs=None):
        """Called once at the start of ``fit``, before the first epoch (reset state here).

        Parameters
        ----------
        logs : dict, optional
            Empty.
        """

    def on_epoch_begin(self, epoch, logs=None):
        """Called at the start of every epoch.

        Parameters
        ----------
        epoch : int
            Counts from 0 (from the stored epoch when resuming).
        logs : dict, optional
            The previous epoch's logs (empty for the first).
        """

    def on_batch_begin(self, batch, logs=None):
        """Called before every training batch's forward pass.

        Parameters
        ----------
        batch : int
            The batch's index in the epoch, from 0.
        logs : dict, optional
            ``{"batch_size": B}``.
        """

    def on_after_backward(self, batch, logs=None):
        """Called after every training batch's backward pass, before gradient clipping and
        the optimizer step: the parameters' ``.grad`` hold this batch's gradients.

        Parameters
        ----------
        batch : int
            The batch's index in the epoch, from 0.
        logs : dict, optional
            The batch's ``loss`` and ``batch_size``.
        """

    def on_batch_end(self, batch, logs=None):
        """Called after every training batch's optimizer step.

        Parameters
        ----------
        batch : int
            The batch's index in the epoch, from 0.
        logs : dict, optional
            The batch's ``loss``, ``batch_size`` and metrics.
        """

    def on_epoch_end(self, epoch, logs=None):
        """Called at the end of every epoch, after validation; may set ``trainer.stop_training``.

        Parameters
        ----------
        epoch : int
            Counts from 0.
        logs : dict, optional
            The epoch's ``loss``, metrics and ``val_*`` values; entries added here
            (declared in ``logged_keys``) go into the History.
        """

    def on_train_end(self, logs=None):
        """Called once when ``fit`` ends normally (also after early stopping).

        Parameters
        ----------
        logs : dict, optional
            The last epoch's logs.
        """


class MonitorCallback(Callback):
    """Tracks the best value of a logged metric ('min' for losses, 'max' otherwise)."""

    def __init__(self, monitor, mode, min_delta=0.0):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"{type(self).__name__}: mode must be 'auto', 'min' or 'max'. Received: mode={mode!r}")
        if mode == "auto":
            mode = "min" if "loss" in monitor else "max"
        self.monitor, self.mode, self.min_delta = monitor, mode, abs(float(min_delta))
        self.best = math.inf if mode == "min" else -math.inf

    def _check_monitor(self) -> None:
        """Before the first batch: the monitored metric will be logged (Trainer.log_keys)."""
        keys = getattr(self.trainer, "log_keys", None)
        if keys and self.monitor not in keys:
            raise ValueError(
                f"{type(self).__name__}: monitored metric {self.monitor!r} will not be in the logs "
                f"{sorted(keys)}. Pass validation_data to fit() to get 'val_*' metrics, or monitor "
                "one of the listed names."
            )

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
