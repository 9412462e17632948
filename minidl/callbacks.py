"""Training callbacks with event-named hooks, as in Keras."""

from __future__ import annotations

import math
import os
import string

import numpy as np

from .optim import ReduceLROnPlateau, all_finite
from .validation import is_int, nonnegative_int, positive_int

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler", "NormHistory"]


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


class _Monitor(Callback):
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

    Examples
    --------
    >>> import minidl as mdl
    >>> model = mdl.Sequential(mdl.layers.Dense(4, 2, rng=0))
    >>> trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(),
    ...                       mdl.optim.SGD(model.parameters(), lr=0.0))  # lr 0: never improves
    >>> X, y = np.ones((4, 4), np.float32), np.array([0, 1, 0, 1])
    >>> stop = EarlyStopping(monitor="loss", patience=2)
    >>> history = trainer.fit(X, y, epochs=10, callbacks=[stop], shuffle=False, progress=False)
    >>> len(history["loss"]), stop.stopped_epoch
    (3, 2)
    """

    def __init__(self, monitor="val_loss", patience=0, restore_best_weights=False, mode="auto", min_delta=0.0):
        super().__init__(monitor, mode, min_delta)
        patience = nonnegative_int(patience, "patience", "EarlyStopping")
        self.patience, self.restore_best_weights = patience, restore_best_weights

    def on_train_begin(self, logs=None):
        self._check_monitor()
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

    def state_dict(self) -> dict:
        """What a resumed run needs to stop (and restore) as an uninterrupted one would:
        the best value and epoch, the epochs waited, and the best weights when kept.

        Returns
        -------
        dict
            ``best``, ``wait``, ``best_epoch``, ``stopped_epoch``, ``best_weights``
            (a model state dict, or None).

        Examples
        --------
        >>> stop = EarlyStopping(patience=3)
        >>> stop.on_train_begin()  # (fit calls it)
        >>> sorted(stop.state_dict())
        ['best', 'best_epoch', 'best_weights', 'stopped_epoch', 'wait']
        """
        return {"best": self.best, "wait": self.wait, "best_epoch": self.best_epoch,
                "stopped_epoch": self.stopped_epoch, "best_weights": self.best_weights}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s values (Trainer checkpoints call it when resuming).

        Parameters
        ----------
        state : dict
            As :meth:`state_dict` returns it.

        Raises
        ------
        ValueError
            ``state`` is not such a dict.

        Examples
        --------
        >>> stop = EarlyStopping(patience=3)
        >>> stop.load_state_dict({"best": 0.5, "wait": 1, "best_epoch": 4, "stopped_epoch": None,
        ...                       "best_weights": None})
        >>> stop.best, stop.wait
        (0.5, 1)
        """
        def int_or_none(v):
            return v is None or (is_int(v) and v >= 0)

        weights = state.get("best_weights") if isinstance(state, dict) else None
        if not (isinstance(state, dict) and isinstance(state.get("best"), (int, float))
                and int_or_none(state.get("wait")) and state.get("wait") is not None
                and int_or_none(state.get("best_epoch")) and int_or_none(state.get("stopped_epoch"))
                and (weights is None or (isinstance(weights, dict) and all(
                    isinstance(k, str) and isinstance(v, np.ndarray) for k, v in weights.items())))):
            raise ValueError("EarlyStopping.load_state_dict: expected the dict of "
                             f"EarlyStopping.state_dict(). Received: {state!r:.200}")
        self.best, self.wait = float(state["best"]), int(state["wait"])
        self.best_epoch, self.stopped_epoch = state["best_epoch"], state["stopped_epoch"]
        self.best_weights = None if weights is None else {k: v.copy() for k, v in weights.items()}


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

    Examples
    --------
    >>> import os, tempfile
    >>> import minidl as mdl
    >>> model = mdl.Sequential(mdl.layers.Dense(4, 2, rng=0))
    >>> trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(),
    ...                       mdl.optim.SGD(model.parameters(), lr=0.1))
    >>> X, y = np.ones((4, 4), np.float32), np.array([0, 1, 0, 1])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     ckpt = ModelCheckpoint(os.path.join(tmp, "model-{epoch:02d}.npz"))
    ...     _ = trainer.fit(X, y, epochs=2, callbacks=[ckpt], progress=False)
    ...     print([os.path.basename(p) for p in ckpt.saved])
    ['model-01.npz', 'model-02.npz']
    """

    def __init__(self, path, monitor="val_loss", save_best_only=False, mode="auto"):
        super().__init__(monitor, mode)
        self.path, self.save_best_only = os.fspath(path), bool(save_best_only)
        if not isinstance(self.path, str):
            raise TypeError(f"ModelCheckpoint: path must be a str or os.PathLike. Received: {path!r}")
        self.saved = []

    def _check_template(self) -> None:
        """Before the first batch: every ``{field}`` of the path is ``epoch`` or a metric that
        will be logged, the template formats, and the folder it names exists."""
        keys = ("epoch", *getattr(self.trainer, "log_keys", ()))
        where = f"ModelCheckpoint({self.path!r})"
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(self.path) if f is not None]
        except ValueError as exc:
            raise ValueError(f"{where}: malformed path template: {exc}. Write literal braces as "
                             "'{{' and '}}'.") from None
        for field in fields:
            if field == "" or field.isdigit() or field not in keys:
                raise ValueError(
                    f"{where}: the path names {{{field}}}, which will not be logged. Use "
                    f"{{epoch}} or one of {sorted(keys[1:])} (e.g. 'ckpt-{{epoch:02d}}.npz'); "
                    "'val_*' metrics need validation_data."
                )
        try:
            example = self.path.format(epoch=1, **dict.fromkeys(keys[1:], 0.5))
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise ValueError(f"{where}: the path template does not format: {exc}.") from None
        folder = os.path.dirname(os.path.abspath(example))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise ValueError(f"{where}: the folder {folder!r} does not exist or is not writable. "
                             "Create it first (os.makedirs(folder, exist_ok=True)).")

    def on_train_begin(self, logs=None):
        self._check_template()
        if self.save_best_only:
            self._check_monitor()
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self.save_best_only:
            value = self._current(logs)
            if not self._improved(value):
                return
        model = self.trainer.model
        bad = [name for name, p in model.named_parameters() if not all_finite(p.data)]
        if bad:
            raise FloatingPointError(
                f"ModelCheckpoint: after epoch {epoch + 1} the weights {bad[:5]} hold nan or inf; "
                "nothing was written (an existing checkpoint is kept)."
            )
        path = self.path.format(epoch=epoch + 1, **logs)
        model.save(path)
        if self.save_best_only:
            self.best = value
        self.saved.append(path)

    def state_dict(self) -> dict:
        """The best monitored value so far (what a resumed run must beat).

        Returns
        -------
        dict
            ``{"best": float}``.

        Examples
        --------
        >>> ModelCheckpoint("model.npz", mode="min").state_dict()
        {'best': inf}
        """
        return {"best": self.best}

    def load_state_dict(self, state: dict) -> None:
        """Restore the best value of :meth:`state_dict`.

        Parameters
        ----------
        state : dict
            ``{"best": float}``.

        Examples
        --------
        >>> ckpt = ModelCheckpoint("model.npz")
        >>> ckpt.load_state_dict({"best": 0.25})
        >>> ckpt.best
        0.25
        """
        self.best = float(state["best"])


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
            _Monitor._check_monitor(self)

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
                self.schedule.step(_Monitor._current(self, logs))

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


class NormHistory(Callback):
    """Record each parameter's gradient and weight L2 norms during training (opt-in).

    After the backward pass of every ``every``-th batch (global batch index
    ``step % every == 0``, counted over the whole run), before clipping and
    the optimizer step, so that each gradient is the batch's own, this stores
    ``np.linalg.norm(p.grad)`` and ``np.linalg.norm(p.data)`` for every named
    parameter. :func:`minidl.plot.norms` draws them.

    Parameters
    ----------
    every : int >= 1, default 1
        Record every ``every``-th batch (1: all of them).

    Attributes
    ----------
    grad_norms, weight_norms : dict of str -> list of float
        Parameter name (``model.named_parameters()``) -> one norm per recorded batch.
    steps : list of int
        The global batch index (from 0, over all epochs of the run) of each record.

    Notes
    -----
    ``fit`` starts a new record (``on_train_begin``); a Trainer checkpoint keeps it, so a
    resumed run continues it. The cost is one pass over the parameters per recorded batch.

    Examples
    --------
    >>> import minidl as mdl
    >>> from minidl import layers, losses
    >>> model = mdl.Sequential(layers.Flatten(), layers.Dense(64, 10, rng=0))
    >>> trainer = mdl.Trainer(model, losses.SoftmaxCrossEntropy(), mdl.optim.SGD(model.parameters(), lr=0.1))
    >>> (X, y), _ = mdl.data.load_digits()
    >>> norms = NormHistory(every=10)
    >>> _ = trainer.fit(X[:320], y[:320], epochs=2, callbacks=[norms], seed=0, progress=False)
    >>> norms.steps, sorted(norms.grad_norms)
    ([0, 10], ['1.bias', '1.weight'])
    """

    def __init__(self, every=1):
        self.every = positive_int(every, "every", "NormHistory")
        self._reset()

    def _reset(self):
        self.grad_norms: dict[str, list[float]] = {}
        self.weight_norms: dict[str, list[float]] = {}
        self.steps: list[int] = []
        self._count = 0  # batches seen in the run

    def on_train_begin(self, logs=None):
        self._reset()

    def on_after_backward(self, batch, logs=None):
        step, self._count = self._count, self._count + 1
        if step % self.every:
            return
        self.steps.append(step)
        for name, p in self.trainer.model.named_parameters():
            grad = 0.0 if p.grad is None else float(np.linalg.norm(p.grad))
            self.grad_norms.setdefault(name, []).append(grad)
            self.weight_norms.setdefault(name, []).append(float(np.linalg.norm(p.data)))

    def state_dict(self) -> dict:
        """The records so far and the batch count (a resumed run continues both).

        Returns
        -------
        dict
            ``grad_norms``, ``weight_norms`` (name -> list), ``steps`` and ``count``:
            plain lists and numbers, as checkpoints store them.

        Examples
        --------
        >>> NormHistory(every=2).state_dict()
        {'grad_norms': {}, 'weight_norms': {}, 'steps': [], 'count': 0}
        """
        return {"grad_norms": {k: list(v) for k, v in self.grad_norms.items()},
                "weight_norms": {k: list(v) for k, v in self.weight_norms.items()},
                "steps": list(self.steps), "count": self._count}

    def load_state_dict(self, state: dict) -> None:
        """Continue the records of :meth:`state_dict` (a resumed checkpoint).

        Parameters
        ----------
        state : dict
            As :meth:`state_dict` returns it; anything else raises ValueError.

        Examples
        --------
        >>> norms = NormHistory()
        >>> norms.load_state_dict({"grad_norms": {"0.weight": [1.5]}, "weight_norms": {"0.weight": [2.0]},
        ...                        "steps": [0], "count": 1})
        >>> norms.steps, norms.grad_norms
        ([0], {'0.weight': [1.5]})
        """

        def series(d):
            return isinstance(d, dict) and all(
                isinstance(k, str) and isinstance(v, list) and len(v) == len(state["steps"])
                and all(isinstance(x, (int, float)) for x in v) for k, v in d.items())

        if not (isinstance(state, dict) and isinstance(state.get("steps"), list)
                and all(is_int(s) and s >= 0 for s in state["steps"]) and is_int(state.get("count"))
                and series(state.get("grad_norms")) and series(state.get("weight_norms"))):
            raise ValueError("NormHistory.load_state_dict: expected the dict of NormHistory.state_dict(). "
                             f"Received: {state!r:.200}")
        self.steps = [int(s) for s in state["steps"]]
        self.grad_norms = {k: [float(x) for x in v] for k, v in state["grad_norms"].items()}
        self.weight_norms = {k: [float(x) for x in v] for k, v in state["weight_norms"].items()}
        self._count = int(state["count"])
