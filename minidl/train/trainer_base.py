"""The Trainer's methods outside the fit loop: evaluate, predict, and resumable checkpoints
(:class:`~minidl.Trainer` inherits them from :class:`TrainerBase`; the loop is in :mod:`minidl.train.trainer`)."""

from __future__ import annotations

import contextlib
import functools

import numpy as np

from ..data import iterate_batches
from ..functional._engine import blas
from . import checkpoint as _checkpoint
from .fit_checks import check_xy
from .fit_state import EpochPosition
from .history import History


def _blas_context(blas_threads):
    """The context a Trainer runs in for ``blas_threads``: None leaves BLAS alone, "auto"
    is :func:`minidl.functional._engine.blas.auto_threads`, an int
    :func:`~minidl.functional._engine.blas.limit_threads`."""
    if blas_threads is None:
        return contextlib.nullcontext()
    if isinstance(blas_threads, str):  # "auto": one-thread BLAS, large batches split over the cores
        return blas.auto_threads()
    return blas.limit_threads(int(blas_threads))


def limited_blas(method):
    """Run ``method`` with the BLAS thread pool limited to ``self.blas_threads``."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with _blas_context(self.blas_threads):
            return method(self, *args, **kwargs)

    return wrapper


class TrainerBase:
    """Evaluation, prediction and checkpoints of :class:`~minidl.Trainer` (which sets ``model``,
    ``loss``, ``optimizer``, ``metrics``, the History and the run state these methods use)."""

    # ------------------------------------------------------ evaluate, predict
    @limited_blas
    def evaluate(self, X, y, batch_size=256) -> dict:
        """Loss and metrics over ``(X, y)``, each batch weighted by its size.

        Runs in eval mode (no backward caches, Dropout off, BatchNorm's running
        statistics), then restores the model's mode.

        Parameters
        ----------
        X, y : ndarray
            Inputs and targets, as for :meth:`fit`.
        batch_size : int >= 1, default 256
            Only memory depends on it.

        Returns
        -------
        dict of str to float
            ``loss`` (a mean per sample) and each metric.

        Shape
        -----
        As for :meth:`fit`: ``X`` (N, ...), ``y`` (N,) or the loss's targets.

        Examples
        --------
        >>> import minidl as mdl
        >>> model = mdl.Sequential(mdl.layers.Dense(4, 3, rng=0))
        >>> trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(),
        ...                       mdl.optim.SGD(model.parameters(), lr=0.1))
        >>> X = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
        >>> y = np.arange(30) % 3
        >>> sorted(trainer.evaluate(X, y))
        ['accuracy', 'loss']
        """
        check_xy(X, y, "evaluate")
        was_training = self.model.training
        self.model.eval()
        try:
            loss_sum, sums = 0.0, dict.fromkeys(self.metrics, 0.0)
            for xb, yb in iterate_batches(X, y, batch_size, shuffle=False):
                outputs = self.model.forward(xb)
                loss_sum += self._per_sample(self.loss.forward(outputs, yb), len(xb)) * len(xb)
                for name, fn in self.metrics.items():
                    sums[name] += fn(yb, outputs) * len(xb)
        finally:
            self.model.train(was_training)
        n = len(X)
        return {"loss": loss_sum / n, **{m: s / n for m, s in sums.items()}}

    @limited_blas
    def predict(self, X, batch_size=256) -> np.ndarray:
        """The model's outputs (logits for a classifier), computed in batches.

        Runs in eval mode, then restores the model's mode.

        Parameters
        ----------
        X : ndarray
            Inputs, as for :meth:`fit`.
        batch_size : int >= 1, default 256

        Returns
        -------
        ndarray
            The outputs, concatenated over the batches.

        Shape
        -----
        - ``X``: (N, ...) as the model takes it
        - Output: (N, ...) as the model returns it, e.g. (N, K) logits

        Examples
        --------
        >>> import minidl as mdl
        >>> model = mdl.Sequential(mdl.layers.Dense(4, 3, rng=0))
        >>> trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(),
        ...                       mdl.optim.SGD(model.parameters(), lr=0.1))
        >>> X = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
        >>> y = np.arange(30) % 3
        >>> logits = trainer.predict(X)
        >>> logits.shape, logits.argmax(axis=1).shape
        ((30, 3), (30,))
        """
        check_xy(X, None, "predict", need_y=False)
        was_training = self.model.training
        self.model.eval()
        try:
            outs = [self.model.forward(xb) for xb in iterate_batches(X, None, batch_size, shuffle=False)]
        finally:
            self.model.train(was_training)
        return np.concatenate(outs, axis=0)

    # ------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path) -> None:
        """Write everything needed to resume training bit for bit to one pickle-free file.

        The model (``mdl.load(path)`` reads it as a plain model file), the
        optimizer state (momentum buffers included), the epochs done, the
        History, the shuffling seed and the state of the last ``fit``'s
        callbacks that have one (a :class:`LearningRateScheduler` over
        ``StepLR``, ``ModelCheckpoint``'s best value, ``EarlyStopping``'s best
        value, patience count and best weights). Written atomically.

        Call it after ``fit`` returns, or from a callback's ``on_epoch_end``
        (put that callback last: it stores the state the callbacks before it
        left, and the History including that epoch). The state is restored into
        the callbacks of the next ``fit`` after their ``on_train_begin``.

        Inside an epoch too: after ``fit`` was stopped by Ctrl-C or an error,
        or from a batch callback (from ``on_batch_begin`` or ``on_after_backward``
        it holds the state from before that batch, which the resumed run trains
        again). The checkpoint then also holds where the
        epoch stands (the batches done, their summed logs, the augmentation
        generator), and the next ``fit`` after :meth:`load_checkpoint` continues
        the epoch after its last batch done, bit for bit as the uninterrupted run
        (with the same data, ``batch_size``, ``shuffle``, ``seed``, ``transform``
        and metrics, else ValueError; the callbacks' ``on_epoch_begin`` is not
        called again for that epoch). A batch interrupted before its step is not
        done: it is trained again.

        Notes
        -----
        ``EarlyStopping(restore_best_weights=True)`` loads the best weights when
        ``fit`` ends, so a checkpoint written after that ``fit`` holds the best
        epoch's weights with the last epoch's optimizer state; to resume such a
        run bit for bit, save from a callback during training instead.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write (an ``.npz`` archive; the format: :mod:`minidl.train.checkpoint`).

        Examples
        --------
        >>> import minidl as mdl
        >>> model = mdl.Sequential(mdl.layers.Dense(4, 3, rng=0))
        >>> trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(),
        ...                       mdl.optim.SGD(model.parameters(), lr=0.1))
        >>> X = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
        >>> y = np.arange(30) % 3
        >>> import os, tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = trainer.fit(X, y, epochs=1, seed=0, progress=False)
        ...     trainer.save_checkpoint(os.path.join(tmp, "run.npz"))
        ...     trainer.load_checkpoint(os.path.join(tmp, "run.npz"))
        >>> trainer.epochs_done
        1
        """
        if self._epoch_logs is not None:  # called from on_epoch_end: what earlier callbacks logged
            self.history._update_last(self._epoch_logs)
        pending, now = getattr(self, "_batch_saved", None), None
        if pending is not None:  # inside a batch not done (on_batch_begin, on_after_backward): the
            now = self._batch_state.save(self._augment)  # buffers and generators from before it, which
            self._batch_state.restore(pending)  # the position resumes from (the weights are not stepped yet)
        try:
            _checkpoint.save(path, self.model, self.optimizer, self.epochs_done, self._seed,
                             self.history, self._callbacks, self._position_entry())
        finally:
            if now is not None:
                self._batch_state.restore(now)

    def _position_entry(self):
        """Where the current epoch stands, for a checkpoint (None between epochs)."""
        pos = self._position
        if pos is None:
            return None
        augment = None if self._augment is None else self._augment.bit_generator.state
        return {"epoch": pos.epoch, "batch": pos.batch, "seen": pos.seen, "sums": dict(pos.sums),
                **self._fit_key, "augment": augment}

    def load_checkpoint(self, path) -> None:
        """Restore a :meth:`save_checkpoint` file into this Trainer (built the same way).

        Everything is checked first (architecture, parameter shapes and dtypes,
        optimizer kind); on any mismatch a ValueError is raised and nothing
        changes. The next ``fit(X, y, epochs=E, seed=s)`` continues from the
        stored epoch up to ``E``.

        Parameters
        ----------
        path : str or os.PathLike
            A file written by :meth:`save_checkpoint`.

        Raises
        ------
        ValueError
            The file does not match this Trainer's model or optimizer, or is not a
            checkpoint (nothing is changed).

        Examples
        --------
        >>> import minidl as mdl
        >>> model = mdl.Sequential(mdl.layers.Dense(4, 3, rng=0))
        >>> trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(),
        ...                       mdl.optim.SGD(model.parameters(), lr=0.1))
        >>> X = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
        >>> y = np.arange(30) % 3
        >>> import os, tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = trainer.fit(X, y, epochs=2, seed=0, progress=False)
        ...     trainer.save_checkpoint(os.path.join(tmp, "run.npz"))
        ...     fresh = mdl.Sequential(mdl.layers.Dense(4, 3, rng=1))  # built the same way
        ...     resumed = mdl.Trainer(fresh, mdl.losses.SoftmaxCrossEntropy(),
        ...                           mdl.optim.SGD(fresh.parameters(), lr=0.1))
        ...     resumed.load_checkpoint(os.path.join(tmp, "run.npz"))
        >>> resumed.epochs_done, len(resumed.history["loss"])
        (2, 2)
        """
        resumed = _checkpoint.load(path, self.model, self.optimizer)
        history = History()
        history.history = {k: [float(v) for v in vals] for k, vals in resumed["history"]["history"].items()}
        history.epoch = [int(e) for e in resumed["history"]["epoch"]]
        self.history, self.epochs_done, self._seed = history, resumed["epochs_done"], resumed["seed"]
        self._resume, pos = resumed, resumed["position"]
        self._position = None if pos is None else EpochPosition(pos["epoch"], pos["batch"], pos["seen"],
                                                                 {k: float(v) for k, v in pos["sums"].items()})
        self._fit_key = None if pos is None else {k: pos[k] for k in ("samples", "batch_size", "shuffle",
                                                                               "drop_last")}
        self._augment = None
        if pos is not None and pos["augment"] is not None:
            self._augment = np.random.default_rng()
            self._augment.bit_generator.state = pos["augment"]
