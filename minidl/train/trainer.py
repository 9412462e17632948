"""The Trainer: the training loop (:meth:`Trainer.fit`), evaluation, prediction and resumable checkpoints."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np

from ..data import iterate_batches, num_batches, transforms
from ..functional import softmax
from ..metrics import resolve_metrics
from ..optim import all_finite, clip_grad_norm
from ..threads import limited_blas
from ..validation import check_bool, check_int
from . import checkpoint as _checkpoint
from .fit_checks import (
    base_seed,
    check_components,
    check_fit_args,
    check_optimizer_params,
    check_xy,
    epoch_line,
    progress_bar,
)
from .fit_probe import check_data_against_model
from .fit_state import BatchState, EpochPosition, check_resume, sigint_deferred
from .history import History

__all__ = ["Trainer", "History"]


class Trainer:
    """Trains a model with a loss and an optimizer.

    Parameters
    ----------
    model : Layer (a Sequential, a Graph or any layer)
    loss : a :class:`minidl.losses.Loss`, e.g. ``minidl.losses.SoftmaxCrossEntropy()``
        With ``reduction='mean'`` (the default) or ``'sum'`` (the gradients are then sums
        over the batch); ``'none'`` is refused (ValueError). The logged ``loss`` is a mean
        per sample either way: a 'sum' loss's batch value is divided by the batch size.
    optimizer : e.g. ``minidl.optim.SGD(model.parameters(), lr=0.05)``
    metrics : list or tuple of 'accuracy' or callables ``metric(y_true, outputs) -> float``
        (a per-batch mean; the Trainer weights batches by their size).
    blas_threads : "auto", int >= 1 or None, default "auto"
        How ``fit``, ``evaluate`` and ``predict`` use the cores; BLAS's setting is
        restored afterwards. ``"auto"`` (:func:`minidl.functional._engine.blas.auto_threads`):
        BLAS on one thread, and each batch with enough work (convolutions, Dense,
        ReLU, max pooling from 32 MFLOP: 28x28 and 32x32 images, not the reference
        digits CNN) split into runs of samples computed on up to :func:`minidl.get_num_threads`
        threads (set with :func:`minidl.set_num_threads`; by default as many as BLAS
        had: the cores): an
        MNIST-shaped step 37 -> 31 ms, a CIFAR-shaped one 106 -> 85 ms on 2 cores,
        against BLAS threads per product. The runs depend on the machine's cores, not
        on how many threads compute them (one, under ``OPENBLAS_NUM_THREADS=1`` or
        ``mdl.set_num_threads(1)``): a
        seeded run trains the same model either way, bit for bit. An int
        fixes BLAS's threads for every product (with :mod:`threadpoolctl`; no split);
        None leaves BLAS alone.

    Attributes
    ----------
    history : History
    epochs_done : int
        Epochs completed in the current run (restored by :meth:`load_checkpoint`).

    Notes
    -----
    Non-finite values never reach the weights: a nan/inf loss stops training
    before the update, and an update that would make a parameter nan/inf is not
    applied (every :mod:`minidl.optim` optimizer's step is all or nothing; for
    an optimizer without ``atomic_step = True`` the Trainer restores the
    pre-step weights and optimizer state). Both raise FloatingPointError naming
    the epoch and batch. A batch is all or nothing as a whole: when it fails
    before its step is committed (that error, a buffer made nan/inf, any
    exception, Ctrl-C), the buffers (BatchNorm's running statistics and count)
    and the generators of layers that draw (Dropout's) are put back as they were
    before it; the step and the count of batches done are committed with Ctrl-C
    held back.

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

    def __init__(self, model, loss, optimizer, metrics=("accuracy",), blas_threads="auto"):
        check_components(model, loss, optimizer)
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.metrics = resolve_metrics(metrics)
        if blas_threads is not None and not (isinstance(blas_threads, str) and blas_threads == "auto"):
            check_int(blas_threads, "blas_threads", "Trainer", 1, hint=" (or 'auto', or None to leave BLAS alone)")
        self.blas_threads = blas_threads
        check_optimizer_params(model, optimizer)
        self.stop_training = False
        self.history = History()
        self.epochs_done = 0
        self.log_keys: tuple[str, ...] = ()
        self._seed = None  # the base shuffling seed of the current run
        self._resume = None  # set by load_checkpoint, used by the next fit
        self._callbacks: list = []
        self._epoch_logs = None  # the logs of the epoch whose on_epoch_end callbacks are running
        self._position = None  # EpochPosition: the batches committed in the current epoch
        self._fit_key = None  # what the position refers to: samples, batch_size, shuffle, drop_last
        self._augment = None  # the current epoch's augmentation generator
        self._batch_state = None  # BatchState of the model (its buffers and generators), per fit
        self._batch_saved = None  # BatchState.save() before the batch in progress (until it is done)

    # --------------------------------------------------------------- helpers
    def _step(self, epoch, batch, clip):
        """Clip, then update; on a non-finite update nothing changes and FloatingPointError says where."""
        atomic = getattr(self.optimizer, "atomic_step", False)
        # the parameter list only when needed: walking the model costs as much as an SGD step
        params = self.model.parameters() if clip is not None or not atomic else None
        if clip is not None:
            clip_grad_norm(params, clip)
        saved = None if atomic else ([p.data.copy() for p in params], self.optimizer.state_dict()
                                     if hasattr(self.optimizer, "state_dict") else None)
        try:
            self.optimizer.step()
            if not atomic and not all(all_finite(p.data) for p in params):
                raise FloatingPointError("the update made some weights nan or inf")
        except BaseException as exc:
            if saved is not None:  # an optimizer that may have half-applied its step
                for p, old in zip(params, saved[0]):
                    np.copyto(p.data, old)
                if saved[1] is not None:
                    self.optimizer.load_state_dict(saved[1])
            if not isinstance(exc, FloatingPointError):
                raise
            raise FloatingPointError(
                f"Trainer.fit: non-finite update at epoch {epoch + 1}, batch {batch + 1}: {exc}. "
                "Training stopped; the weights "
                "and optimizer state are those before this batch. Lower the learning rate or "
                "clip the gradients (fit(..., clip_grad_norm=1.0))."
            ) from exc

    def _train_step(self, xb, yb, epoch, batch, clip):
        """Forward, backward and step; returns the batch's logs. The batch is done once its step and
        :attr:`_position` are committed (together: Ctrl-C is held back meanwhile)."""
        outputs = self.model.forward(xb)
        loss = self.loss.forward(outputs, yb)
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"Trainer.fit: the loss is {loss} at epoch {epoch + 1}, batch {batch + 1}; training "
                "stopped before the weights were updated (weights and buffers are those before this "
                "batch). Lower the learning rate, check the inputs for nan/inf, or scale them to [0, 1]."
            )
        bad = self._batch_state.non_finite()
        if bad:
            raise FloatingPointError(
                f"Trainer.fit: the forward pass at epoch {epoch + 1}, batch {batch + 1} made the buffers "
                f"{bad[:5]} nan or inf (the loss is {loss}); training stopped, the weights and buffers are "
                "those before this batch. Scale the inputs (e.g. to [0, 1]) or lower the learning rate."
            )
        logs = {"loss": self._per_sample(loss, len(xb)), "batch_size": len(xb)}
        for name, fn in self.metrics.items():  # on the outputs, before anything is committed
            logs[name] = fn(yb, outputs)
        self.optimizer.zero_grad()
        # backward_params: the gradient with respect to the data is never used
        getattr(self.model, "backward_params", self.model.backward)(self.loss.backward())
        for cb in self._callbacks:  # the batch's gradients, before clipping and the step
            cb.on_after_backward(batch, {"loss": logs["loss"], "batch_size": len(xb)})
        with sigint_deferred():
            self._step(epoch, batch, clip)
            self._position = self._position.after(logs)
        return logs

    def _per_sample(self, loss, n):
        """The logged loss is a mean per sample: a reduction='sum' loss's value over the batch size."""
        return loss / n if getattr(self.loss, "reduction", "mean") == "sum" else loss

    def _prepare_fit(self, X, y, epochs, batch_size, validation_data, shuffle, seed, callbacks,
                     progress, clip, initial_epoch, transform, drop_last, verbose, validation_split):
        """Validate: every check that can run before the first batch; returns (run, start epoch)."""
        run, start = check_fit_args(X, y, epochs, batch_size, validation_data, shuffle, seed, callbacks,
                                    progress, clip, initial_epoch, transform, drop_last, verbose, validation_split)
        check_data_against_model(self.model, self.loss, run)  # one sample through the model and the loss
        if start is None:  # with an initial_epoch, a position inside an epoch is left (that epoch restarts)
            start = self.epochs_done if self._resume is not None else 0
            if self._resume is not None and self._position is not None:
                check_resume(self._position, self._fit_key, self._augment, run, seed, self._resume["seed"],
                             ["loss", *self.metrics])
        keys = ["loss", *self.metrics]
        keys += [f"val_{k}" for k in keys] if run.validation_data is not None else []
        keys += [k for cb in run.callbacks for k in cb.logged_keys if k not in keys]
        self.log_keys = tuple(dict.fromkeys(keys))
        for cb in run.callbacks:
            cb.set_trainer(self)
        return run, start

    def _begin_run(self, start, seed, callbacks, initial_epoch):
        """Set up the History, the epoch count and the shuffling seed; return the resumed state."""
        resumed, self._resume = self._resume, None
        if resumed is None:
            self.history = History()
        self.epochs_done = start  # a new run counts from 0 even if its first epoch fails
        stored = None if resumed is None else resumed["seed"]  # a resumed run keeps its seed
        self._seed = stored if seed is None and stored is not None else base_seed(seed)
        self._callbacks, self.stop_training = callbacks, False
        if resumed is None or initial_epoch is not None:
            self._position = None  # else: a resumed epoch continues after its last batch done
        self._batch_state = BatchState(self.model)
        return resumed

    def _train_begin(self, callbacks, resumed, kept, logs):
        """``on_train_begin``, then the callbacks' state of a resumed run. If either fails, nothing was
        trained: the loaded checkpoint stays ready for the next ``fit`` (``kept``: the position and epoch
        count before :meth:`_begin_run`), which otherwise started again from epoch 0."""
        try:
            for cb in callbacks:
                cb.on_train_begin(logs)
            if resumed is not None:  # after on_train_begin, which resets the callbacks' state
                _checkpoint.restore_callbacks(callbacks, resumed)
        except BaseException:
            if resumed is not None:
                self._resume, (self._position, self.epochs_done) = resumed, kept
            raise

    def _fit_epoch(self, epoch, run, logs):
        """One epoch: callbacks, the batches, validation, the History; returns its logs.

        ``logs`` (the previous epoch's) go to ``on_epoch_begin``, as Keras does; not when
        the epoch is resumed in its middle (they ran before it was interrupted).
        """
        if self._position is None:
            for cb in run.callbacks:
                cb.on_epoch_begin(epoch, logs)
        logs = self._run_epoch(epoch, run)
        # the epoch is in the History before the callbacks run, so that a checkpoint
        # written by one of them (trainer.save_checkpoint) includes it
        self.epochs_done, self._position = epoch + 1, None
        self.history._append(epoch, logs)
        self._epoch_logs = logs
        try:
            for cb in run.callbacks:
                cb.on_epoch_end(epoch, logs)
        finally:
            self._epoch_logs = None
            self.history._update_last(logs)  # entries the callbacks added (lr)
        return logs

    def _run_epoch(self, epoch, run):
        """The batch loop of one epoch (then validation); returns the epoch's logs."""
        self.model.train()
        if self._position is None:  # else resumed in the epoch, with its augmentation generator
            self._position = EpochPosition(epoch, sums=dict.fromkeys(["loss", *self.metrics], 0.0))
            # augmentation draws from its own stream: epoch k's depends only on (seed, k)
            self._augment = np.random.default_rng([self._seed, epoch, transforms.STREAM]) if run.transform else None
        self._fit_key = {"samples": len(run.X), "batch_size": run.batch_size, "shuffle": bool(run.shuffle),
                         "drop_last": bool(run.drop_last)}
        augment, first, began = self._augment, self._position.batch, time.perf_counter()
        bar = progress_bar(num_batches(len(run.X), run.batch_size, run.drop_last), f"Epoch {epoch + 1}/{run.epochs}",
                           run.progress)
        if bar is not None and first:
            bar.update(first)
        rng = np.random.default_rng([self._seed, epoch]) if run.shuffle else None
        batches = iterate_batches(run.X, run.y, run.batch_size, run.shuffle, rng=rng, drop_last=run.drop_last)
        for b, (xb, yb) in enumerate(itertools.islice(batches, first, None), start=first):
            self._fit_batch(epoch, b, xb, yb, run, augment)
            if bar is not None:
                done = self._position
                bar.set_postfix({m: f"{v / done.seen:.4f}" for m, v in done.sums.items()}, refresh=False)
                bar.update(1)
        done = self._position
        logs = {m: v / done.seen for m, v in done.sums.items()}
        if run.validation_data is not None:
            logs.update(self._validate(epoch, run.validation_data))
        if bar is not None:
            bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()})
            bar.close()
        if run.verbose == 2:
            print(epoch_line(epoch, run.epochs, logs, time.perf_counter() - began), flush=True)
        return logs

    def _fit_batch(self, epoch, batch, xb, yb, run, augment) -> dict:
        """The batch step with its callbacks; returns the batch's logs. If it fails before its step
        is committed, the buffers and generators it moved are put back."""
        saved = self._batch_saved = self._batch_state.save(augment)  # save_checkpoint writes these meanwhile
        try:
            if augment is not None:
                xb = transforms.apply(run.transform, xb, augment)
            for cb in run.callbacks:
                cb.on_batch_begin(batch, {"batch_size": len(xb)})
            batch_logs = self._train_step(xb, yb, epoch, batch, run.clip)
        except BaseException:
            if self._position.batch == batch:  # not committed
                with sigint_deferred():  # a second Ctrl-C waits until the rollback is whole
                    self._batch_state.restore(saved)
            raise
        finally:
            self._batch_saved = None
        for cb in run.callbacks:
            cb.on_batch_end(batch, batch_logs)
        return batch_logs

    def _validate(self, epoch, validation_data) -> dict:
        """``val_loss`` and ``val_<metric>``; a non-finite validation loss stops training."""
        logs = {f"val_{k}": v for k, v in self.evaluate(*validation_data).items()}
        if not math.isfinite(logs["val_loss"]):
            raise FloatingPointError(
                f"Trainer.fit: the validation loss is {logs['val_loss']} after epoch {epoch + 1} "
                "(the weights are finite): the model overflows on the validation data. Lower "
                "the learning rate or scale the inputs."
            )
        return logs

    # ------------------------------------------------------------------- API
    @limited_blas
    def fit(self, X, y, epochs=1, batch_size=32, validation_data=None, shuffle=True, seed=None,
            callbacks=(), progress=None, clip_grad_norm=None, initial_epoch=None, transform=None,
            drop_last=False, verbose=None, validation_split=0.0) -> History:
        """Train until epoch ``epochs``; returns a :class:`History`.

        Parameters
        ----------
        X, y : numpy arrays of training inputs and targets
        epochs : int >= 1, default 1 (as Keras)
            The epoch to train up to: a fresh run trains ``epochs`` epochs; after
            :meth:`load_checkpoint` training continues from the stored epoch to ``epochs``.
        batch_size : int >= 1
            The last partial batch is used too, unless ``drop_last``.
        validation_data : (X_val, y_val), optional; adds ``val_loss`` / ``val_<metric>``
        validation_split : float in (0, 1), default 0.0 (none)
            Keras's: validate on the LAST ``validation_split`` fraction of ``X`` and ``y``,
            taken before shuffling (``X[k:]`` with ``k = ceil(len(X) * (1 - validation_split))``),
            and train on the rest. Not together with ``validation_data`` (ValueError). A run
            resumed with :meth:`load_checkpoint` needs the same split: it changes the training
            samples, which a run resumed inside an epoch checks (``len(X)``, the samples
            trained on); between epochs, a resumed run trains on whatever it is given.
        shuffle : bool
        seed : int, np.random.Generator or None
            Seeds the shuffling: epoch ``k``'s order depends only on ``(seed, k)``,
            so a resumed run continues with the orders of an uninterrupted one.
            None: drawn from the generator of :func:`minidl.manual_seed` when it was
            called (as torch's DataLoader draws from torch's global generator), so that
            ``mdl.manual_seed(0)`` makes a whole script reproducible; else from the OS.
            The same seeds (this and the layers' ``rng``) give the same loss
            history, exactly, on the same machine and numpy build.
        callbacks : iterable of :class:`~minidl.callbacks.Callback`
        progress : bool, optional
            True: a tqdm progress bar per epoch with live loss and metrics (``verbose=1``);
            False prints nothing (``verbose=0``). Default: as ``verbose``.
        verbose : 0, 1, 2 or 'auto', optional
            Keras's: 0 silent, 1 (and 'auto') a progress bar per epoch, 2 one line per epoch
            (``Epoch 1/5 - 0.3s - loss: 0.4321 - accuracy: 0.8800``) on stdout. Given with
            ``progress``, the two must agree (else ValueError); neither: 1.
        clip_grad_norm : float > 0, optional
            Clip the gradients' total 2-norm to this before every step
            (:func:`minidl.optim.clip_grad_norm`).
        initial_epoch : int >= 0, optional
            The epoch to start from (Keras's ``initial_epoch``); defaults to 0,
            or to the stored epoch after :meth:`load_checkpoint`.
        transform : callable(x, rng) -> x, optional
            Data augmentation applied to every training batch (not to
            ``validation_data``), e.g. ``minidl.data.Compose([RandomShift(1),
            RandomRotation(10)])``. ``rng`` is a Generator derived from
            ``(seed, epoch)``, so augmented runs and resumed runs are
            reproducible; it must return a new array of the batch's shape and
            dtype (see :mod:`minidl.data.transforms`).
        drop_last : bool, default False
            Leave out each epoch's last batch when it is smaller than ``batch_size``
            (torch's ``DataLoader(drop_last=True)``): after shuffling, so the samples
            left out differ from epoch to epoch. Needed with BatchNorm when the last
            batch would hold one sample (``fit`` refuses that before the first batch).
            The epoch's logged values are means over the samples trained on.

        Notes
        -----
        Before the first batch, ``fit`` runs two samples of ``X`` and of
        ``validation_data`` through the model in eval mode and the loss on its
        outputs (:mod:`minidl.train.fit_probe`), so bad data (wrong feature count, rank or
        dtype, labels out of range) are refused before any work. A ``np.memmap``
        whose file is truncated while ``fit`` reads it ends the process with SIGBUS
        (the operating system's signal for a mapped page that no longer exists; torch
        does the same): do not shrink or rewrite a file that a running ``fit`` maps.

        Raises
        ------
        FloatingPointError
            On a nan/inf loss or update (the weights are those before the batch).
            Any exception raised during training carries ``exc.history``, the
            History of the completed epochs (also in ``trainer.history``).

        Returns
        -------
        History
            ``trainer.history``: one value per epoch for ``loss``, each metric, and
            ``val_loss`` / ``val_<metric>`` with ``validation_data`` or ``validation_split``.

        Shape
        -----
        - ``X``: (N, ...) as the model takes it (e.g. (N, 1, 28, 28)), the model's dtype
        - ``y``: (N,) integer labels, or (N, ...) targets as the loss takes them

        Examples
        --------
        >>> import minidl as mdl
        >>> model = mdl.Sequential(mdl.layers.Dense(4, 3, rng=0))
        >>> trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(),
        ...                       mdl.optim.SGD(model.parameters(), lr=0.1))
        >>> X = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
        >>> y = np.arange(30) % 3
        >>> history = trainer.fit(X, y, epochs=3, batch_size=10, seed=0, progress=False,
        ...                       validation_data=(X[:10], y[:10]))
        >>> sorted(history.history), history.epoch
        (['accuracy', 'loss', 'val_accuracy', 'val_loss'], [0, 1, 2])
        """
        run, start = self._prepare_fit(X, y, epochs, batch_size, validation_data, shuffle, seed, callbacks, progress,
                                       clip_grad_norm, initial_epoch, transform, drop_last, verbose, validation_split)
        kept = (self._position, self.epochs_done)
        resumed = self._begin_run(start, seed, run.callbacks, initial_epoch)
        logs: dict = {}
        try:
            self._train_begin(run.callbacks, resumed, kept, logs)
            for epoch in range(start, run.epochs):
                logs = self._fit_epoch(epoch, run, logs)
                if self.stop_training:
                    break
            for cb in run.callbacks:
                cb.on_train_end(logs)
        except BaseException as exc:
            exc.history = self.history  # the completed epochs are not lost with the run
            raise
        return self.history

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
    def predict(self, X, batch_size=256, probabilities=False) -> np.ndarray:
        """The model's outputs, computed in batches: returns logits, as torch; Keras users: probabilities=True.

        A classifier's outputs are logits, as torch's ``model(x)``; a Keras classifier often
        ends with a softmax and its ``predict`` gives probabilities: ``probabilities=True`` does.
        Runs in eval mode, then restores the model's mode.

        Parameters
        ----------
        X : ndarray
            Inputs, as for :meth:`fit`.
        batch_size : int >= 1, default 256
        probabilities : bool, default False
            True: the softmax of the outputs over axis 1, the classes
            (:func:`minidl.functional.softmax`; each row sums to 1, the dtype kept). For a
            model that returns logits, as one trained with ``SoftmaxCrossEntropy``; not for
            one that already ends with a softmax or returns log-probabilities.

        Returns
        -------
        ndarray
            The outputs (logits), or their softmax with ``probabilities``, concatenated over
            the batches.

        Raises
        ------
        TypeError
            ``probabilities`` not a bool.
        ValueError
            ``probabilities=True`` and the outputs have no class axis or one class (one value per
            sample: its softmax would be 1).

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
        >>> probs = trainer.predict(X, probabilities=True)
        >>> bool(np.allclose(probs.sum(axis=1), 1)), probs.dtype
        (True, dtype('float32'))
        """
        check_xy(X, None, "predict", need_y=False)
        check_bool(probabilities, "probabilities", "Trainer.predict")
        was_training = self.model.training
        self.model.eval()
        try:
            outs = [self.model.forward(xb) for xb in iterate_batches(X, None, batch_size, shuffle=False)]
        finally:
            self.model.train(was_training)
        if probabilities and (np.ndim(outs[0]) < 2 or np.shape(outs[0])[1] < 2):  # a softmax of one value is 1
            raise ValueError(f"Trainer.predict: probabilities=True takes the softmax over the classes (axis 1), but "
                             f"the model returns shape {np.shape(outs[0])}, one value per sample. Use "
                             "probabilities=False (and a sigmoid for a binary classifier's logits).")
        out = np.concatenate(outs, axis=0)
        return softmax(out, axis=1) if probabilities else out

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
