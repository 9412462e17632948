"""What ``Trainer.fit`` checks by running the model on its first samples before the first batch.

A model's errors about its input (feature count, rank, dtype) and a loss's errors about its
targets (shape, label range) used to surface only where the data reached them: bad
``validation_data`` after a whole training epoch, which was then missing from the History;
an out-of-range training label at its batch, after the batches before it had trained; a
BatchNorm refusing the last batch of one sample in the middle of an epoch. One eval-mode
forward of two samples (no running statistics updated, no random draws, no caches kept,
the mode restored), and the loss on its outputs with the targets' extreme labels, find
them all before any work, in the words of the layer or loss that refuses.
"""

from __future__ import annotations

import math

import numpy as np

from ..layers import BatchNorm1D, BatchNorm2D
from ..layers.tree import layer_state_restored, walk_layers
from .fit_state import BatchState

__all__ = ["check_data_against_model"]

_CHUNK_BYTES = 1 << 23  # labels of a memmap are scanned 8 MB at a time


def _note_inputs(layers, shapes: dict) -> None:
    """Make each of ``layers`` note the shape of its input in ``shapes[layer]``: an instance attribute
    shadows the class's ``forward`` (call inside ``layer_state_restored``, which removes it)."""
    for layer in layers:
        def forward(x, _layer=layer, _forward=layer.forward):
            shapes[_layer] = np.shape(x)
            return _forward(x)
        layer.forward = forward


def _probe(model, X, name, samples, batchnorms=(), shapes=None):
    """The model's outputs for the first sample of ``X``, run in eval mode on ``X[:samples]`` (2 when
    the batches hold 2 or more: a BatchNorm without running statistics normalizes with the batch's even
    in eval mode, and refuses a batch of one sample); the model's mode is restored. A ValueError or
    TypeError of the model is raised again naming ``name`` and its shape and dtype."""
    saved = BatchState(model).save()  # a custom layer may move a buffer or draw even in eval mode
    try:
        with layer_state_restored(model):  # every layer's own mode, cache and forward come back after
            _note_inputs(batchnorms, {} if shapes is None else shapes)
            model.eval()
            outputs = model.forward(np.asarray(X[:samples]))
    except (ValueError, TypeError) as exc:
        kind = ValueError if isinstance(exc, ValueError) else TypeError
        raise kind(f"Trainer.fit: the model cannot take {name} (shape {tuple(X.shape)}, dtype {X.dtype}), "
                   f"tried on its first samples before the first batch: {exc}") from exc
    finally:
        BatchState.restore(saved)
    return outputs[:1] if isinstance(outputs, np.ndarray) and outputs.ndim else outputs


def _extreme_labels(y) -> np.ndarray:
    """The two smallest and the two largest distinct values of integer labels ``y`` (an array or an
    array-like read in chunks): a label out of a range is among them, even next to an ``ignore_index``."""
    kept = np.empty(0, y.dtype)
    step = max(1, _CHUNK_BYTES // max(1, np.dtype(y.dtype).itemsize))
    for start in range(0, len(y), step):
        distinct = np.unique(np.concatenate([kept, np.asarray(y[start:start + step])]))
        kept = distinct if distinct.size <= 4 else distinct[[0, 1, -2, -1]]
    return kept


def _check_targets(loss, outputs, y, name) -> None:
    """The loss on the probe's outputs, with ``y``'s extreme labels (integer (N,) targets) or its first
    sample (any other targets): the loss's own error, naming ``name``."""
    if not isinstance(outputs, np.ndarray) or outputs.ndim == 0:  # a custom model's own kind of output
        return
    labels = len(y.shape) == 1 and np.dtype(y.dtype).kind in "iu"
    targets = _extreme_labels(y) if labels else np.asarray(y[:1])
    try:
        loss.forward(np.repeat(outputs, len(targets), axis=0), targets)
    except (ValueError, TypeError) as exc:
        kind = ValueError if isinstance(exc, ValueError) else TypeError
        tried = f"its smallest and largest labels {targets.tolist()}" if labels else "its first sample"
        raise kind(f"Trainer.fit: {name} (shape {tuple(y.shape)}, dtype {y.dtype}) does not fit the model's "
                   f"outputs (shape {outputs.shape[1:]} per sample) and the loss {type(loss).__name__}, tried on "
                   f"{tried} before the first batch: {exc} Fix {name}, or give the model as many outputs as "
                   "the targets need.") from exc


def _other_batch_size(n, batch_size) -> int:
    """The batch size nearest ``batch_size`` (at least 2) that leaves no batch of one sample; ``n >= 2``."""
    for step in range(1, n + batch_size + 1):
        for b in (batch_size - step, batch_size + step):
            if b >= 2 and n % b != 1:
                return b
    return n  # pragma: no cover - b = n always qualifies


def _check_single_sample_batches(run, batchnorms, shapes) -> None:
    """Refuse batches of one sample that a BatchNorm cannot train on (one value per channel)."""
    n, b = len(run.X), run.batch_size
    if not (b == 1 or n % b == 1 and not run.drop_last):
        return
    single = [bn for bn in batchnorms if bn in shapes and math.prod(shapes[bn][2:]) < 2]  # values per sample
    if not single:
        return
    names = ", ".join(f"{type(bn).__name__}({bn.num_features})" for bn in single[:3])
    why = ("cannot train on one sample: it would see one value per channel, and a variance needs 2 (torch "
           "refuses it too).")
    if n == 1:
        raise ValueError(f"Trainer.fit: X holds 1 sample, and {names} {why} Train on 2 samples or more.")
    if b == 1:
        raise ValueError(f"Trainer.fit: batch_size=1 gives batches of 1 sample, and {names} {why} Use "
                         "batch_size=2 or more.")
    raise ValueError(
        f"Trainer.fit: the last batch of every epoch would hold 1 sample ({n} samples, batch_size={b}), and "
        f"{names} {why} Pass drop_last=True to leave that batch out (as torch's DataLoader and Keras can), or "
        f"use a batch_size that leaves 2 or more, e.g. batch_size={_other_batch_size(n, b)}.")


def check_data_against_model(model, loss, run) -> None:
    """Before the first batch: the training data and ``validation_data`` fit the model and the loss,
    and the last batch of an epoch can be trained on.

    Two samples of ``X`` (one with ``batch_size=1``) and of ``validation_data[0]`` go through the
    model in eval mode (nothing is updated or kept; the mode is restored), the loss takes the first
    sample's outputs with the targets' two smallest and two largest labels (integer labels) or their
    first sample (other targets), and a
    BatchNorm that would get one value per channel from a last batch of one sample is reported.

    Parameters
    ----------
    model : Layer
    loss : Loss
    run : FitRun
        From :func:`minidl.train.fit_checks.check_fit_args`.

    Raises
    ------
    ValueError, TypeError
        The model or the loss refuses the data (the layer's or loss's message, naming the argument:
        ``X``, ``y``, ``validation_data[0]`` or ``validation_data[1]``); a BatchNorm cannot train on
        the last batch of one sample (ValueError offering ``drop_last=True`` or another batch size).

    Examples
    --------
    >>> import minidl as mdl
    >>> from minidl.train.fit_checks import check_fit_args
    >>> model = mdl.layers.Dense(4, 3, rng=0)
    >>> X, y = np.ones((6, 4), np.float32), np.array([0, 1, 2, 0, 1, 3])
    >>> run, _ = check_fit_args(X, y, 1, 2, None, True, 0, [], False, None, None)
    >>> check_data_against_model(model, mdl.losses.SoftmaxCrossEntropy(), run)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Trainer.fit: y (shape (6,), dtype int64) does not fit the model's outputs (shape (3,) ...
    """
    batchnorms = [layer for _, layer in walk_layers(model, "") if isinstance(layer, (BatchNorm1D, BatchNorm2D))]
    shapes: dict = {}
    samples = min(2, run.batch_size)  # a model trained on batches of one sample may take no more
    outputs = _probe(model, run.X, "X", samples, batchnorms, shapes)
    _check_targets(loss, outputs, run.y, "y")
    _check_single_sample_batches(run, batchnorms, shapes)
    if run.validation_data is not None:
        X_val, y_val = run.validation_data
        _check_targets(loss, _probe(model, X_val, "validation_data[0]", 2), y_val, "validation_data[1]")
