"""What makes a Trainer batch all or nothing beyond the optimizer's step: the state a training
forward pass moves (buffers such as BatchNorm's running statistics, the generators of layers
that draw, such as Dropout's) kept to be put back when the batch fails, and Ctrl-C held back
while a batch is committed (:class:`~minidl.Trainer` uses both)."""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading

import numpy as np

from ..data import num_batches
from ..layers.base import Layer
from ..layers.tree import walk_layers
from ..validation import is_int

__all__ = ["BatchState", "EpochPosition", "check_resume", "sigint_deferred"]


class BatchState:
    """The buffers and layer generators of a model, saved before a batch and put back if it fails.

    The model is walked once, here; each :meth:`save` then copies only the buffers (small:
    per channel) and reads the generators' states, so a model without either costs nothing.

    Parameters
    ----------
    model : Layer

    Examples
    --------
    >>> import minidl as mdl
    >>> bn = mdl.layers.BatchNorm1D(2)
    >>> state = BatchState(bn)
    >>> saved = state.save()
    >>> _ = bn(np.array([[1.0, 2.0], [3.0, 5.0]], np.float32))
    >>> int(bn.num_batches_tracked), state.non_finite()
    (1, [])
    >>> state.restore(saved)
    >>> int(bn.num_batches_tracked), bn.running_mean
    (0, array([0., 0.], dtype=float32))
    """

    def __init__(self, model: Layer):
        self._buffers, self._rngs = [], []  # (dotted name, layer, attribute); layers with a generator
        for path, layer in walk_layers(model, ""):
            self._buffers += [(f"{path}.{name}" if path else name, layer, name)
                              for name, _ in layer.named_buffers(recurse=False)]
            if isinstance(getattr(layer, "rng", None), np.random.Generator):
                self._rngs.append(layer)

    def save(self, extra_rng=None) -> tuple:
        """Copies of the buffers and the generators' states (and ``extra_rng``'s, e.g. the augmentation's).

        Parameters
        ----------
        extra_rng : numpy.random.Generator, optional

        Returns
        -------
        tuple
            For :meth:`restore`.
        """
        buffers = [(layer, name, np.array(getattr(layer, name), copy=True)) for _, layer, name in self._buffers]
        rngs = [(layer.rng, layer.rng.bit_generator.state) for layer in self._rngs]
        if extra_rng is not None:
            rngs.append((extra_rng, extra_rng.bit_generator.state))
        return buffers, rngs

    @staticmethod
    def restore(saved: tuple) -> None:
        """Put back what :meth:`save` returned (into the buffers' arrays, so references stay valid).

        Parameters
        ----------
        saved : tuple
            What :meth:`save` returned.
        """
        buffers, rngs = saved
        for layer, name, old in buffers:
            now = getattr(layer, name)
            if isinstance(now, np.ndarray) and now.shape == old.shape and now.dtype == old.dtype \
                    and now.flags.writeable:
                np.copyto(now, old)
            else:  # the batch replaced the array: put the old one back
                setattr(layer, name, old)
        for rng, state in rngs:
            rng.bit_generator.state = state

    def non_finite(self) -> list:
        """The dotted names of the buffers holding nan or inf.

        Returns
        -------
        list of str
        """
        # element-wise: buffers are small (per channel), and this needs no error-state context
        return [dotted for dotted, layer, name in self._buffers if not np.isfinite(getattr(layer, name)).all()]


@dataclasses.dataclass(frozen=True)
class EpochPosition:
    """Where training stands inside an epoch: the batches whose step is committed, and the sums of
    their logs (each batch's value times its size) that make the epoch's means.

    Parameters
    ----------
    epoch : int
        0-based.
    batch : int, default 0
        Batches done in the epoch.
    seen : int, default 0
        Samples in those batches.
    sums : dict of str to float
        Per logged name (``loss`` and each metric).

    Examples
    --------
    >>> pos = EpochPosition(2, sums={"loss": 0.0}).after({"loss": 0.5, "batch_size": 4})
    >>> pos.batch, pos.seen, pos.sums
    (1, 4, {'loss': 2.0})
    """

    epoch: int
    batch: int = 0
    seen: int = 0
    sums: dict = dataclasses.field(default_factory=dict)

    def after(self, logs: dict) -> "EpochPosition":
        """The position once a batch with these logs is done.

        Parameters
        ----------
        logs : dict
            The batch's logs, with ``batch_size``.

        Returns
        -------
        EpochPosition
        """
        n = logs["batch_size"]
        return EpochPosition(self.epoch, self.batch + 1, self.seen + n,
                             {m: float(s + logs[m] * n) for m, s in self.sums.items()})


def check_resume(position, key, augment, run, seed, stored_seed, names) -> None:
    """Refuse to resume an epoch in its middle with other data or settings than the run it stopped in
    (the batches left would not be those of the uninterrupted run).

    Parameters
    ----------
    position : EpochPosition
        Where the checkpoint's run stopped.
    key : dict
        Its ``samples``, ``batch_size``, ``shuffle`` and ``drop_last``.
    augment : numpy.random.Generator or None
        Its augmentation generator (None: no ``transform``).
    run : FitRun
        The new ``fit``'s checked arguments.
    seed : int, numpy.random.Generator or None
        The new ``fit``'s ``seed`` (None keeps the stored one).
    stored_seed : int
        The checkpoint's shuffling seed.
    names : list of str
        The new run's logged names (``loss`` and the metrics).

    Raises
    ------
    ValueError
        Another number of samples, batch size, shuffling, seed, transform or metrics.

    Examples
    --------
    >>> from minidl.train.fit_checks import check_fit_args
    >>> run, _ = check_fit_args(np.ones((10, 2)), np.zeros(10, int), 3, 4, None, True, 0, [], False, None, None)
    >>> pos = EpochPosition(1, batch=2, seen=8, sums={"loss": 4.0})
    >>> key = {"samples": 10, "batch_size": 4, "shuffle": True, "drop_last": False}
    >>> check_resume(pos, key, None, run, None, 0, ["loss"])
    >>> check_resume(pos, {**key, "batch_size": 5}, None, run, None, 0, ["loss"])
    Traceback (most recent call last):
    ...
    ValueError: Trainer.fit: the checkpoint stopped inside epoch 2, after batch 2 of 2; ...
    """
    given = stored_seed if seed is None else int(seed) if is_int(seed) else "a Generator"
    pairs = {"len(X)": (key["samples"], len(run.X)), "batch_size": (key["batch_size"], run.batch_size),
             "shuffle": (key["shuffle"], bool(run.shuffle)), "drop_last": (key["drop_last"], bool(run.drop_last)),
             "seed": (stored_seed, given),
             "transform": (augment is not None, run.transform is not None),
             "metrics": (sorted(position.sums), sorted(names))}
    diff = [f"{k}: {new!r} (the checkpoint's run: {old!r})" for k, (old, new) in pairs.items() if old != new]
    if diff:
        total = num_batches(key["samples"], key["batch_size"], key["drop_last"])
        raise ValueError(
            f"Trainer.fit: the checkpoint stopped inside epoch {position.epoch + 1}, after batch "
            f"{position.batch} of {total}; it resumes only with the data and settings of that run, "
            f"but {'; '.join(diff)}. Pass the same X, batch_size, shuffle, seed, transform and "
            f"metrics, or fit(..., initial_epoch={position.epoch}) to train epoch {position.epoch + 1} "
            "again from its first batch (from the mid-epoch weights)."
        )


@contextlib.contextmanager
def sigint_deferred():
    """Hold Ctrl-C (SIGINT) back for the body: a KeyboardInterrupt arrives after it, not inside.

    Only in the main thread (the one Python delivers signals to) and when SIGINT has a Python
    handler; otherwise the body runs as is.

    Yields
    ------
    None

    Examples
    --------
    >>> with sigint_deferred():
    ...     total = 1 + 1  # a Ctrl-C here would be raised on leaving the block
    >>> total
    2
    """
    old = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(old):
        yield
        return
    received = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if received:
            signal.raise_signal(signal.SIGINT)  # the held-back Ctrl-C, through the restored handler
