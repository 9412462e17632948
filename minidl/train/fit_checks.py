"""What `Trainer` runs around the work: the checks of its components, the data and `fit`'s arguments, the
shuffling seed and the progress bar."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..callbacks import Callback
from ..layers._init import _GLOBAL
from ..layers.base import Layer
from ..losses import Loss
from ..optim import all_finite
from ..validation import check_int, is_int, nonnegative_int, positive_int, positive_real

__all__ = ["base_seed", "progress_bar", "epoch_line", "check_components", "check_optimizer_params", "check_xy",
           "check_finite_samples", "check_fit_args", "FitRun", "resolve_verbose", "split_validation"]


def check_components(model, loss, optimizer):
    """Refuse a model, loss or optimizer of the wrong kind, before any work.

    Parameters
    ----------
    model : Layer
    loss : Loss
        With ``reduction`` 'mean' or 'sum'.
    optimizer : object with ``step()`` and ``zero_grad()``

    Raises
    ------
    TypeError
        A component of the wrong kind (a class instead of an instance included).
    ValueError
        A loss with ``reduction='none'``.

    Examples
    --------
    >>> import minidl as mdl
    >>> model = mdl.layers.Dense(2, 2)
    >>> check_components(model, mdl.losses.MSE(), mdl.optim.SGD(model.parameters(), lr=0.1))
    >>> check_components(model, mdl.losses.MSE, None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: Trainer: loss must be a loss instance such as minidl.losses.SoftmaxCrossEntropy() ...
    """
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
    if getattr(loss, "reduction", "mean") not in ("mean", "sum"):
        raise ValueError(
            f"Trainer: the loss must reduce to a scalar (reduction='mean' or 'sum'). Received: {what(loss)} "
            "with reduction='none', which gives one loss per sample: train with reduction='mean' "
            "(or 'sum'), and use 'none' in your own loop."
        )
    if isinstance(optimizer, type) or not all(callable(getattr(optimizer, m, None))
                                               for m in ("step", "zero_grad")):
        raise TypeError(
            "Trainer: optimizer must have step() and zero_grad(), e.g. "
            f"minidl.optim.SGD(model.parameters(), lr=0.05). Received: {what(optimizer)}."
        )


def check_optimizer_params(model, optimizer) -> None:
    """After the kinds are checked: an optimizer of another model would train nothing.

    Parameters
    ----------
    model : Layer
    optimizer : Optimizer

    Raises
    ------
    ValueError
        None of the optimizer's ``params`` is the model's.

    Examples
    --------
    >>> import minidl as mdl
    >>> model = mdl.layers.Dense(2, 2)
    >>> check_optimizer_params(model, mdl.optim.SGD(model.parameters(), lr=0.1))
    >>> other = mdl.layers.Dense(2, 2)
    >>> check_optimizer_params(model, mdl.optim.SGD(other.parameters(), lr=0.1))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Trainer: none of the optimizer's 2 parameters is a parameter of the model, ...
    """
    params = getattr(optimizer, "params", None)
    if isinstance(params, list) and params:
        mine = {id(p) for p in model.parameters()}
        if not any(id(p) in mine for p in params):
            raise ValueError(
                f"Trainer: none of the optimizer's {len(params)} parameters is a parameter of the "
                "model, so training would change nothing. Build the optimizer on this model: "
                "SGD(model.parameters(), ...) after the model (not on a copy or an earlier build)."
            )


_CHUNK_BYTES = 1 << 23  # array-likes (memmaps, ...) are scanned 8 MB of samples at a time


def _is_array_like(X) -> bool:
    """A numpy array, or what iterate_batches can read batch by batch (np.memmap, h5py, zarr, ...)."""
    return isinstance(X, np.ndarray) or all(hasattr(X, a) for a in ("__len__", "__getitem__", "shape", "dtype"))


def check_finite_samples(X, where, name) -> None:
    """Refuse float inputs holding nan/inf, naming how many samples and the first one.

    An in-memory array is checked at once; a memmap or another array-like in chunks of about 8 MB, so
    that the check never holds more than one chunk in memory.

    Parameters
    ----------
    X : ndarray or array-like
    where : str
        The Trainer method, for the message (``Trainer.<where>``).
    name : str
        ``X``'s name, for the message.

    Raises
    ------
    ValueError
        Some sample holds nan or inf.

    Examples
    --------
    >>> check_finite_samples(np.ones((3, 2)), "fit", "X")
    >>> check_finite_samples(np.array([[1.0], [np.nan]]), "fit", "X")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Trainer.fit: X contains nan or inf in 1 sample(s), e.g. sample 1. ...
    """
    if np.dtype(X.dtype).kind not in "fc":
        return
    n = len(X)
    if type(X) is np.ndarray:
        step = max(n, 1)
    else:
        step = max(1, _CHUNK_BYTES // max(1, np.dtype(X.dtype).itemsize * math.prod(X.shape[1:])))
    bad, first = 0, None
    for start in range(0, n, step):
        chunk = np.asarray(X[start:start + step])
        if not all_finite(chunk):
            rows = np.flatnonzero(~np.isfinite(chunk.reshape(len(chunk), -1)).all(axis=1))
            bad += rows.size
            first = start + int(rows[0]) if first is None else first
    if bad:
        raise ValueError(
            f"Trainer.{where}: {name} contains nan or inf in {bad} sample(s), e.g. sample "
            f"{first}. Clean or drop them (np.isfinite({name}).all(axis=...)) before training."
        )


def check_xy(X, y, where, need_y=True) -> None:
    """X (and y) are numpy arrays (or memmaps, or array-likes read batch by batch) with as many samples,
    and not empty.

    Parameters
    ----------
    X, y : ndarray or array-like
    where : str
        The Trainer method, for the message.
    need_y : bool, default True
        False for ``predict``.

    Raises
    ------
    TypeError
        Not arrays.
    ValueError
        Different lengths, or empty.

    Shape
    -----
    ``X`` (N, ...) and ``y`` (N, ...), ``N >= 1``.

    Examples
    --------
    >>> check_xy(np.ones((3, 2)), np.zeros(2), "fit")
    Traceback (most recent call last):
    ...
    ValueError: Trainer.fit: X and y must have the same number of samples; got 3 and 2.
    """
    if not _is_array_like(X):
        raise TypeError(f"Trainer.{where}: X must be a numpy.ndarray (or a np.memmap, or an array-like with "
                        f"__len__, shape, dtype and indexing). Received: {type(X).__name__}. "
                        "Convert it with np.asarray(X, dtype=np.float32).")
    if need_y and not _is_array_like(y):
        raise TypeError(f"Trainer.{where}: y must be a numpy.ndarray of targets (int labels or "
                        f"class probabilities). Received: {type(y).__name__}. Convert it with "
                        "np.asarray(y).")
    if need_y and len(X) != len(y):
        raise ValueError(
            f"Trainer.{where}: X and y must have the same number of samples; got {len(X)} and {len(y)}."
        )
    if len(X) == 0:
        raise ValueError(f"Trainer.{where}: X is empty.")


@dataclasses.dataclass(frozen=True)
class FitRun:
    """The checked arguments of one ``Trainer.fit`` call (the numbers as Python ints).

    Parameters
    ----------
    X, y : ndarray or array-like
        The training data.
    epochs, batch_size : int
    validation_data : (X_val, y_val) or None
    shuffle : bool
    callbacks : list of Callback
    progress : bool
        A progress bar per epoch (``verbose == 1``).
    clip : float or None
        ``clip_grad_norm``.
    transform : callable or None
    drop_last : bool
        Leave out each epoch's last partial batch.
    verbose : int
        0, 1 or 2 (:func:`resolve_verbose`).

    Shape
    -----
    ``X`` (N, ...) and ``y`` (N, ...).

    Examples
    --------
    >>> run, start = check_fit_args(np.ones((4, 2)), np.zeros(4, int), 3, 2, None, True, 0, [], False,
    ...                             None, None)
    >>> run.epochs, run.batch_size, start
    (3, 2, None)
    """

    X: np.ndarray
    y: np.ndarray
    epochs: int
    batch_size: int
    validation_data: tuple | None
    shuffle: bool
    callbacks: list
    progress: bool
    clip: float | None
    transform: object = None
    drop_last: bool = False
    verbose: int = 1


def check_fit_args(X, y, epochs, batch_size, validation_data, shuffle, seed, callbacks, progress, clip,
                   initial_epoch, transform=None, drop_last=False, verbose=None, validation_split=0.0):
    """Every check of ``fit``'s arguments; returns ``(FitRun, initial_epoch)`` (an int or None).

    Parameters
    ----------
    X, y, epochs, batch_size, validation_data, shuffle, seed, callbacks, progress, initial_epoch, transform
        As given to :meth:`minidl.Trainer.fit`.
    drop_last : bool, default False
        As given to :meth:`minidl.Trainer.fit`; with fewer samples than ``batch_size`` it would
        leave no batch (ValueError).
    clip : float or None
        ``fit``'s ``clip_grad_norm``.
    verbose : 0, 1, 2, 'auto' or None, default None
        As given to ``fit`` (:func:`resolve_verbose`).
    validation_split : float, default 0.0
        As given to ``fit`` (:func:`split_validation`): the FitRun's ``X``, ``y`` and
        ``validation_data`` are then the two parts of the given ``X`` and ``y``.

    Returns
    -------
    FitRun
    initial_epoch : int or None

    Shape
    -----
    ``X`` (N, ...) and ``y`` (N, ...).

    Examples
    --------
    >>> check_fit_args(np.ones((4, 2)), np.zeros(4, int), 0, 2, None, True, 0, [], False, None, None)
    Traceback (most recent call last):
    ...
    ValueError: Trainer.fit: epochs must be >= 1. Received: epochs=0
    """
    check_xy(X, y, "fit")
    X, y, validation_data = split_validation(X, y, validation_split, validation_data)
    epochs = positive_int(epochs, "epochs", "Trainer.fit")
    batch_size = positive_int(batch_size, "batch_size", "Trainer.fit")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError(
                "Trainer.fit: validation_data must be a pair (X_val, y_val). "
                f"Received: {type(validation_data).__name__}"
                + (f" of length {len(validation_data)}" if hasattr(validation_data, "__len__") else "")
                + "."
            )
        check_xy(validation_data[0], validation_data[1], "fit (validation_data)")
        check_finite_samples(validation_data[0], "fit", "validation_data[0]")
    check_finite_samples(X, "fit", "X")
    if clip is not None:
        positive_real(clip, "clip_grad_norm", "Trainer.fit")
    if seed is not None and not isinstance(seed, np.random.Generator):
        check_int(seed, "seed", "Trainer.fit", 0, hint=" (or None, or a np.random.Generator)")
    if initial_epoch is not None:
        initial_epoch = nonnegative_int(initial_epoch, "initial_epoch", "Trainer.fit")
    callbacks = list(callbacks)
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"Trainer.fit: callbacks must be Callback instances. Received: {cb!r}")
    if transform is not None and not callable(transform):
        raise TypeError("Trainer.fit: transform must be callable(x, rng) -> x, e.g. "
                        f"minidl.data.RandomShift(2). Received: {transform!r}")
    if not isinstance(drop_last, (bool, np.bool_)):
        raise TypeError(f"Trainer.fit: drop_last must be True or False. Received: drop_last={drop_last!r}")
    if drop_last and len(X) < batch_size:
        raise ValueError(f"Trainer.fit: drop_last=True with {len(X)} samples and batch_size={batch_size} leaves no "
                         f"batch to train on. Use a batch_size of at most {len(X)}, or drop_last=False.")
    verbose = resolve_verbose(verbose, progress)
    run = FitRun(X, y, epochs, batch_size, validation_data, shuffle, callbacks, verbose == 1, clip, transform,
                 bool(drop_last), verbose)
    return run, initial_epoch


def resolve_verbose(verbose, progress) -> int:
    """``fit``'s output as Keras's ``verbose``: 0 silent, 1 a progress bar per epoch, 2 one line per epoch.

    ``progress=True`` is ``verbose=1`` and ``progress=False`` is ``verbose=0``; given both, they
    must agree. Neither: 1 (a progress bar, as before ``verbose`` existed).

    Parameters
    ----------
    verbose : 0, 1, 2, 'auto' or None
        ``'auto'`` is 1 (as Keras's in a terminal); None: not given.
    progress : bool or None
        None: not given.

    Returns
    -------
    int
        0, 1 or 2.

    Raises
    ------
    ValueError
        Another ``verbose``, or one that contradicts ``progress``.

    Examples
    --------
    >>> resolve_verbose(None, None), resolve_verbose(2, None), resolve_verbose(None, False)
    (1, 2, 0)
    >>> resolve_verbose(2, True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Trainer.fit: progress=True and verbose=2 contradict each other ...
    """
    if isinstance(verbose, str) and verbose == "auto":
        verbose = 1
    if verbose is not None and not (is_int(verbose) and int(verbose) in (0, 1, 2)):
        raise ValueError("Trainer.fit: verbose must be 0 (silent), 1 (a progress bar per epoch) or 2 (one line "
                         f"per epoch), as Keras's. Received: verbose={verbose!r}")
    from_progress = None if progress is None else int(bool(progress))
    if verbose is not None and from_progress is not None and int(verbose) != from_progress:
        raise ValueError(f"Trainer.fit: progress={progress!r} and verbose={verbose!r} contradict each other "
                         f"(progress=True is verbose=1, progress=False is verbose=0). Pass only one of them.")
    return int(verbose) if verbose is not None else 1 if from_progress is None else from_progress


def split_validation(X, y, validation_split, validation_data):
    """Keras's ``validation_split``: the LAST fraction of the samples, taken before shuffling, validates.

    ``X[:k]`` trains and ``X[k:]`` validates, with ``k = ceil(len(X) * (1 - validation_split))``
    as in Keras; slices, so a memmap stays on disk.

    Parameters
    ----------
    X, y : ndarray or array-like
    validation_split : float
        In (0, 1); 0 splits nothing.
    validation_data : (X_val, y_val) or None
        Must be None when ``validation_split`` is not 0.

    Returns
    -------
    (X_train, y_train, validation_data)

    Raises
    ------
    ValueError
        A fraction outside [0, 1), given with ``validation_data``, or that leaves a part empty.

    Shape
    -----
    ``X`` (N, ...) and ``y`` (N, ...).

    Examples
    --------
    >>> X, y = np.arange(10.0).reshape(10, 1), np.arange(10)
    >>> Xt, yt, (Xv, yv) = split_validation(X, y, 0.2, None)
    >>> len(Xt), yv.tolist()
    (8, [8, 9])
    """
    if isinstance(validation_split, (bool, np.bool_)) or not isinstance(validation_split, (int, float, np.floating)) \
            or not 0 <= validation_split < 1:
        raise ValueError("Trainer.fit: validation_split must be a float in (0, 1), the fraction of the samples "
                         "(the last ones) to validate on, e.g. 0.2 (0, the default: none). "
                         f"Received: validation_split={validation_split!r}")
    if validation_split == 0:
        return X, y, validation_data
    if validation_data is not None:
        raise ValueError(f"Trainer.fit: validation_split={validation_split!r} and validation_data both say what to "
                         "validate on; pass only one of them.")
    k = math.ceil(len(X) * (1 - validation_split))
    if not 0 < k < len(X):
        raise ValueError(f"Trainer.fit: validation_split={validation_split!r} of {len(X)} samples leaves "
                         f"{k} to train on and {len(X) - k} to validate on; each part needs at least one. "
                         "Use more samples or another fraction.")
    return X[:k], y[:k], (X[k:], y[k:])


def base_seed(seed) -> int:
    """The int that, with the epoch index, seeds each epoch's shuffling.

    Parameters
    ----------
    seed : int, numpy.random.Generator or None
        An int is used as is; a Generator draws one; None draws one from the generator of
        :func:`minidl.manual_seed` when it was called (as torch's DataLoader draws from
        torch's global generator), else from the OS.

    Returns
    -------
    int

    Examples
    --------
    >>> base_seed(7)
    7
    """
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(2**63))
    if seed is None and _GLOBAL[0] is not None:
        return int(_GLOBAL[0].integers(2**63))
    if seed is None:
        return int(np.random.SeedSequence().entropy % 2**63)
    return int(seed)


def progress_bar(total, desc, enabled):
    """A tqdm bar of ``total`` batches, or None when ``enabled`` is False.

    Parameters
    ----------
    total : int
        Batches in the epoch.
    desc : str
        The bar's label.
    enabled : bool

    Returns
    -------
    tqdm or None

    Examples
    --------
    >>> progress_bar(10, "epoch 1/3", enabled=False) is None
    True
    """
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=True, dynamic_ncols=True)


def epoch_line(epoch, epochs, logs, seconds) -> str:
    """The line ``fit(verbose=2)`` prints after each epoch, as Keras's.

    Parameters
    ----------
    epoch : int
        0-based.
    epochs : int
    logs : dict of str to float
    seconds : float
        The epoch's duration.

    Returns
    -------
    str

    Examples
    --------
    >>> epoch_line(0, 3, {"loss": 0.51234, "accuracy": 0.875}, 1.23)
    'Epoch 1/3 - 1.2s - loss: 0.5123 - accuracy: 0.8750'
    """
    return " - ".join([f"Epoch {epoch + 1}/{epochs}", f"{seconds:.1f}s", *(f"{k}: {v:.4f}" for k, v in logs.items())])
