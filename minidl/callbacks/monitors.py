"""Callbacks that watch a logged value: EarlyStopping and ModelCheckpoint."""

from __future__ import annotations

import math
import os
import string

import numpy as np

from ..optim import all_finite
from ..validation import is_int, nonnegative_int
from .base import MonitorCallback


class EarlyStopping(MonitorCallback):
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


class ModelCheckpoint(MonitorCallback):
    """Save the model (``model.save``) at the end of epochs.

    A model whose weights or buffers hold nan or inf is never written
    (FloatingPointError; an existing file is kept).

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
        bad += [name for name, b in model.named_buffers() if not all_finite(b)]  # BatchNorm's statistics
        if bad:
            raise FloatingPointError(
                f"ModelCheckpoint: after epoch {epoch + 1} the weights or buffers {bad[:5]} hold nan or inf; "
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
