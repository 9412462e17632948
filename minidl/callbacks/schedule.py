"""LearningRateScheduler: an optimizer's learning rate from a schedule, per epoch or per batch."""

from __future__ import annotations

import numpy as np

from ..optim import ReduceLROnPlateau
from .base import Callback, MonitorCallback


class LearningRateScheduler(Callback):
    """Set ``optimizer.lr = schedule(epoch, lr)`` at the start of every epoch, or step a
    scheduler object.

    Parameters
    ----------
    schedule : callable(epoch, lr) -> lr, or a scheduler with ``step()``
        A scheduler (such as :class:`minidl.optim.StepLR`) is stepped at the
        end of every epoch, or of every batch with ``interval="batch"``.
    interval : 'epoch' | 'batch', default 'epoch'
        When a scheduler is stepped: ``"batch"`` for per-batch schedules such
        as :class:`minidl.optim.OneCycleLR` (after each optimizer step, as in
        a torch loop).
    monitor : str, optional
        For schedules whose ``step`` takes a metric
        (:class:`minidl.optim.ReduceLROnPlateau`, which requires it): the
        logged metric passed to ``step`` at the end of every epoch, e.g.
        ``"val_loss"`` (needs ``validation_data``).

    Notes
    -----
    The epoch logs get ``"lr"``: the lr of the epoch's last batch (the first
    parameter group's, when groups differ), before the schedule moves on.

    Examples
    --------
    >>> halve_every_5 = LearningRateScheduler(lambda epoch, lr: 0.05 * 0.5 ** (epoch // 5))
    """

    logged_keys = ("lr",)

    def __init__(self, schedule, interval="epoch", monitor=None):
        where = "LearningRateScheduler"
        stepped = hasattr(schedule, "step")
        if not callable(schedule) and not stepped:
            raise TypeError(f"{where}: schedule must be callable(epoch, lr) or have a step() method.")
        if interval not in ("epoch", "batch"):
            raise ValueError(f"{where}: interval must be 'epoch' or 'batch'. Received: interval={interval!r}")
        if interval == "batch" and not stepped:
            raise ValueError(f"{where}: interval='batch' steps a scheduler object (e.g. "
                             "minidl.optim.OneCycleLR); a callable schedule is applied per epoch.")
        if monitor is not None and (not isinstance(monitor, str) or not stepped or interval != "epoch"):
            raise ValueError(f"{where}: monitor names a logged metric (a str) passed to a scheduler's "
                             f"step() at each epoch end (interval='epoch'). Received: monitor={monitor!r}, "
                             f"interval={interval!r}")
        if monitor is None and isinstance(schedule, ReduceLROnPlateau):
            raise ValueError(f"{where}: ReduceLROnPlateau steps on a metric: pass the metric to "
                             "monitor, e.g. LearningRateScheduler(sched, monitor='val_loss').")
        self.schedule, self.interval, self.monitor = schedule, interval, monitor
        self._batch_lr = None

    def _lr(self):
        opt = self.trainer.optimizer
        groups = getattr(opt, "param_groups", None)
        return groups[0]["lr"] if groups else opt.lr

    def on_train_begin(self, logs=None):
        if self.monitor is not None:
            MonitorCallback._check_monitor(self)

    def on_epoch_begin(self, epoch, logs=None):
        if callable(self.schedule) and not hasattr(self.schedule, "step"):
            lr = float(self.schedule(epoch, self.trainer.optimizer.lr))
            if not np.isfinite(lr) or lr < 0:
                raise ValueError(f"LearningRateScheduler: schedule returned an invalid lr {lr!r} at epoch {epoch + 1}.")
            self.trainer.optimizer.lr = lr

    def on_batch_end(self, batch, logs=None):
        if self.interval == "batch":
            self._batch_lr = self._lr()  # the lr this batch was trained with
            self.schedule.step()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:  # the lr used in this epoch, before the schedule moves on
            logs["lr"] = self._batch_lr if self.interval == "batch" else self._lr()
        if self.interval == "epoch" and hasattr(self.schedule, "step"):
            if self.monitor is None:
                self.schedule.step()
            else:
                self.schedule.step(MonitorCallback._current(self, logs))

    def state_dict(self) -> dict:
        """The schedule's own state, when it has one (e.g. StepLR's epoch count).

        Returns
        -------
        dict
            ``{"schedule": schedule.state_dict()}``, or ``{}`` for a plain function.

        Examples
        --------
        >>> import minidl as mdl
        >>> from minidl.layers import Dense
        >>> opt = mdl.optim.SGD(Dense(2, 2).parameters(), lr=0.1)
        >>> LearningRateScheduler(mdl.optim.StepLR(opt, step_size=2)).state_dict()["schedule"]["last_epoch"]
        0
        """
        inner = getattr(self.schedule, "state_dict", None)
        return {"schedule": inner()} if callable(inner) else {}

    def load_state_dict(self, state: dict) -> None:
        """Restore the schedule's state from :meth:`state_dict`.

        Parameters
        ----------
        state : dict
            As :meth:`state_dict` returns it.

        Examples
        --------
        >>> import minidl as mdl
        >>> from minidl.layers import Dense
        >>> opt = mdl.optim.SGD(Dense(2, 2).parameters(), lr=0.1)
        >>> callback = LearningRateScheduler(mdl.optim.StepLR(opt, step_size=2))
        >>> state = callback.state_dict(); state["schedule"]["last_epoch"] = 3
        >>> callback.load_state_dict(state)
        >>> callback.schedule.last_epoch
        3
        """
        if "schedule" in state and callable(getattr(self.schedule, "load_state_dict", None)):
            self.schedule.load_state_dict(state["schedule"])
