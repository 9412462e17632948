"""Trainer checkpoints: one pickle-free model file plus the state that resumes training.

A checkpoint is a model file (:func:`minidl.io.write`; ``mdl.load`` reads its
model) whose ``extra`` metadata holds, under ``"trainer"``::

    {"kind": "minidl-trainer-checkpoint", "version": 1, "epochs_done": 2, "seed": 0,
     "history": {"history": {"loss": [...], ...}, "epoch": [0, 1]},
     "optimizer": {"class": "SGD", "state": <state_dict>},
     "callbacks": [{"class": "LearningRateScheduler", "state": <state_dict>} or null, ...],
     "layer_rngs": {"3": <bit_generator.state of layer "3"'s rng>, ...}}

where every array inside a state dict (the momentum buffers) is stored as an
``extra:`` array and referenced as ``{"__array__": key}``; dict keys keep their
type (``{"__dict__": [[key, value], ...]}``), since JSON would turn int keys into
strings. ``layer_rngs`` holds the state of the generator of every layer that draws
at training time (a Dropout's ``rng``), keyed by the layer's dotted path (``""`` for
the model itself), so a resumed run draws the masks the uninterrupted run would
(the big integers of a PCG64 state are exact in JSON). Used by
:meth:`minidl.Trainer.save_checkpoint` and ``load_checkpoint``.

A checkpoint written inside an epoch (after Ctrl-C, or from ``on_batch_end``) is
``"version": 2`` and also holds where the epoch stands (minidl before 2 refuses it
rather than resuming it wrongly)::

    "position": {"epoch": 2, "batch": 5, "seen": 160, "sums": {"loss": 51.2, ...},
                 "samples": 384, "batch_size": 32, "shuffle": true,
                 "augment": <bit_generator.state of the epoch's augmentation> or null}

``epoch`` equals ``epochs_done``; ``batch`` batches (``seen`` samples) of it are done, and
``sums`` holds their logs' sums (value times batch size).
"""

from __future__ import annotations

import copy
import numbers

import numpy as np

from .. import io
from ..io.architecture import spec_of
from ..layers.base import Layer
from ..layers.tree import walk_layers
from ..validation import is_int

__all__ = ["save", "load", "restore_callbacks", "KIND"]

KIND = "minidl-trainer-checkpoint"


def _flatten(obj, prefix: str, arrays: dict):
    """JSON-able form of a state dict; arrays go to ``arrays`` under ``prefix``-based keys."""
    if isinstance(obj, np.ndarray):
        arrays[prefix] = obj
        return {"__array__": prefix}
    if isinstance(obj, dict):
        return {"__dict__": [[k if isinstance(k, (str, int)) else str(k), _flatten(v, f"{prefix}.{i}", arrays)]
                             for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, f"{prefix}.{i}", arrays) for i, v in enumerate(obj)]
    return obj


def _unflatten(obj, arrays: dict):
    """The state dict ``_flatten`` stored; ValueError for anything else (the file is not trusted)."""
    if isinstance(obj, dict) and set(obj) == {"__array__"}:
        if not isinstance(obj["__array__"], str) or obj["__array__"] not in arrays:
            raise ValueError(f"the checkpoint refers to a missing array {obj['__array__']!r:.100}")
        return arrays[obj["__array__"]]
    if isinstance(obj, dict) and set(obj) == {"__dict__"}:
        pairs = obj["__dict__"]
        if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], (str, int))
                                                  for p in pairs):
            raise ValueError("malformed state entry in the checkpoint: a dict must be [[key, value], ...]")
        return {k: _unflatten(v, arrays) for k, v in pairs}
    if isinstance(obj, list):
        return [_unflatten(v, arrays) for v in obj]
    if isinstance(obj, dict):
        raise ValueError("malformed state entry in the checkpoint")
    return obj


def save(path, model: Layer, optimizer, epochs_done: int, seed, history, callbacks, position=None) -> None:
    """Write a checkpoint (see the module docstring); :meth:`minidl.Trainer.save_checkpoint` calls it.

    Parameters
    ----------
    path : str or os.PathLike
    model : Layer
    optimizer : Optimizer
        Anything with ``state_dict()``.
    epochs_done : int
    seed : int or None
        The base shuffling seed of the run.
    history : History
    callbacks : sequence of Callback
        Those with ``state_dict()`` have it stored, by position.
    position : dict, optional
        Where the epoch stands, for a checkpoint written inside one (see the module docstring).

    Raises
    ------
    TypeError
        The optimizer has no ``state_dict()``.

    Examples
    --------
    >>> import os, tempfile
    >>> import minidl as mdl
    >>> model = mdl.Sequential(mdl.layers.Dense(2, 2, rng=0))
    >>> opt = mdl.optim.SGD(model.parameters(), lr=0.1)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     save(os.path.join(tmp, "run.npz"), model, opt, 3, 0, mdl.History(), [])
    ...     load(os.path.join(tmp, "run.npz"), model, opt)["epochs_done"]
    3
    """
    if not callable(getattr(optimizer, "state_dict", None)):
        raise TypeError(f"Trainer.save_checkpoint: the optimizer {type(optimizer).__name__} has no "
                        "state_dict(), so its state cannot be saved.")
    arrays: dict = {}
    meta = {
        "kind": KIND, "version": 1, "epochs_done": int(epochs_done), "seed": seed,
        "history": {"history": history.history, "epoch": history.epoch},
        "optimizer": {"class": type(optimizer).__name__,
                      "state": _flatten(optimizer.state_dict(), "optimizer", arrays)},
        "layer_rngs": {path: layer.rng.bit_generator.state for path, layer in _rng_layers(model).items()},
        "callbacks": [{"class": type(cb).__name__, "state": _flatten(cb.state_dict(), f"callbacks.{i}", arrays)}
                      if callable(getattr(cb, "state_dict", None)) else None
                      for i, cb in enumerate(callbacks)],
    }
    if position is not None:
        meta.update(version=2, position=position)
    io.write(model, path, extra_meta={"trainer": meta}, extra_arrays=arrays)


def _rng_layers(model: Layer) -> dict:
    """``{dotted path: layer}`` of every layer (``model`` included) with a Generator ``rng``."""
    return {path: layer for path, layer in walk_layers(model, "")
            if isinstance(getattr(layer, "rng", None), np.random.Generator)}


def _restored_rngs(states, model, where) -> dict:
    """``{layer: state}`` from a checkpoint's ``layer_rngs``, each tried on a copy of the layer's
    generator first (nothing changed here)."""
    layers = _rng_layers(model)
    if not isinstance(states, dict) or set(states) != set(layers):
        saved = sorted(states) if isinstance(states, dict) else states
        raise ValueError(f"{where}: the checkpoint's layer generators {saved!r} do not match "
                         f"this model's layers that draw at random {sorted(layers)}.")
    restored = {}
    for path, state in states.items():
        rng = copy.deepcopy(layers[path].rng)
        try:
            rng.bit_generator.state = state
        except (TypeError, ValueError, KeyError, OverflowError) as exc:
            raise ValueError(f"{where}: cannot restore the generator of layer {path!r}: {exc}") from exc
        restored[layers[path]] = state
    return restored


def _classes(layer: Layer, found=None) -> dict:
    """``{class name: class}`` of every layer in ``layer`` (so a checkpoint of this model
    loads even when its user layers are not registered)."""
    found = {} if found is None else found
    found[type(layer).__name__] = type(layer)
    for _, child in layer.named_children():
        _classes(child, found)
    return found


def _is_int(v, minimum=0) -> bool:
    return is_int(v) and v >= minimum


def _position_ok(pos, epochs_done) -> bool:
    """A version 2 checkpoint's ``position`` is whole and consistent (a hostile file included)."""
    ints = ("epoch", "batch", "seen", "samples", "batch_size")
    if not isinstance(pos, dict) or set(pos) != {*ints, "sums", "shuffle", "drop_last", "augment"} \
            or not all(_is_int(pos[k]) for k in ints):
        return False
    size, n = pos["batch_size"], pos["samples"]
    batches = n // size if pos["drop_last"] is True else -(-n // size)
    return (pos["epoch"] == epochs_done and size >= 1 and n >= 1 and pos["batch"] <= batches
            and pos["seen"] == min(pos["batch"] * size, n) and isinstance(pos["shuffle"], bool)
            and isinstance(pos["drop_last"], bool)
            and isinstance(pos["sums"], dict)
            and all(_is_float(v) and not isinstance(v, bool) for v in pos["sums"].values())
            and (pos["augment"] is None or isinstance(pos["augment"], dict)))


def _is_float(v) -> bool:
    """A JSON number the History can hold as a float (a 400-digit int cannot: OverflowError)."""
    if not isinstance(v, numbers.Real):
        return False
    try:
        float(v)
    except OverflowError:
        return False
    return True


def _check_meta(meta, where) -> None:
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        raise ValueError(f"{where}: this is a model file, not a Trainer checkpoint; write one with "
                         "trainer.save_checkpoint(path) (mdl.load reads the model of either).")
    history = meta.get("history")
    version = meta.get("version")
    ok = ((version == 1 and "position" not in meta
           or version == 2 and _position_ok(meta.get("position"), meta.get("epochs_done")))
          and _is_int(meta.get("epochs_done"))
          and (meta.get("seed") is None or _is_int(meta.get("seed")))
          and isinstance(history, dict) and isinstance(history.get("history"), dict)
          and all(isinstance(v, list) and all(_is_float(x) for x in v) for v in history["history"].values())
          and isinstance(history.get("epoch"), list) and all(_is_int(e) for e in history["epoch"])
          and isinstance(meta.get("optimizer"), dict) and isinstance(meta.get("callbacks"), list)
          and all(c is None or isinstance(c, dict) for c in meta["callbacks"]))
    if not ok:
        raise ValueError(f"{where}: the checkpoint's trainer entry is malformed.")


def load(path, model: Layer, optimizer) -> dict:
    """Restore model and optimizer state from ``path``; return the rest of the state.

    Everything is checked before anything changes; on a mismatch a ValueError
    is raised and model and optimizer are as they were.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save`.
    model : Layer
        Built as the checkpoint's; its weights and buffers are replaced.
    optimizer : Optimizer
        Of the checkpoint's class; its state is replaced.

    Returns
    -------
    dict
        ``epochs_done``, ``seed``, ``history`` (``{"history", "epoch"}``),
        ``callbacks`` (for :func:`restore_callbacks`) and ``position`` (None, or
        where the epoch stands when the checkpoint was written inside it).

    Examples
    --------
    >>> import os, tempfile
    >>> import minidl as mdl
    >>> model = mdl.Sequential(mdl.layers.Dense(2, 2, rng=0))
    >>> opt = mdl.optim.SGD(model.parameters(), lr=0.1)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     save(os.path.join(tmp, "run.npz"), model, opt, 1, 7, mdl.History(), [])
    ...     state = load(os.path.join(tmp, "run.npz"), model, opt)
    >>> sorted(state), state["seed"]
    (['callbacks', 'epochs_done', 'history', 'position', 'seed'], 7)
    """
    where = f"Trainer.load_checkpoint({str(path)!r})"
    file = io.read(path, custom_layers={k: v for k, v in _classes(model).items()
                                        if k not in ("Sequential", "Graph")})
    meta = file.extra_meta.get("trainer")
    _check_meta(meta, where)
    try:
        same = spec_of(file.model) == spec_of(model)
    except ValueError:  # an unregistered layer: compare the parameters alone
        same = True
    if not same:
        raise ValueError(f"{where}: the checkpoint holds another architecture than this Trainer's model. "
                         "Build the Trainer with the model the checkpoint was written from.")
    if meta["optimizer"].get("class") != type(optimizer).__name__:
        raise ValueError(f"{where}: the checkpoint's optimizer is {meta['optimizer'].get('class')!r}, "
                         f"this Trainer's is {type(optimizer).__name__!r}.")
    try:
        opt_state = _unflatten(meta["optimizer"].get("state"), file.extra_arrays)
        callbacks = [None if c is None else {"class": c.get("class"),
                                             "state": _unflatten(c.get("state"), file.extra_arrays)}
                     for c in meta["callbacks"]]
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc
    rngs = _restored_rngs(meta.get("layer_rngs", {}), model, where) if "layer_rngs" in meta else {}
    position = meta.get("position")
    if position is not None and position["augment"] is not None:
        try:  # on a generator of the kind the Trainer draws augmentations from
            np.random.default_rng().bit_generator.state = position["augment"]
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"{where}: cannot restore the augmentation generator: {exc}") from exc
    old_model, old_opt = model.state_dict(), optimizer.state_dict()
    try:
        model.load_state_dict(file.model.state_dict())
        optimizer.load_state_dict(opt_state)
    except (ValueError, TypeError, KeyError, OverflowError, AttributeError) as exc:
        model.load_state_dict(old_model)
        optimizer.load_state_dict(old_opt)
        raise ValueError(f"{where}: {exc}") from exc
    for layer, state in rngs.items():  # in place: a generator shared by several layers stays shared
        layer.rng.bit_generator.state = state
    return {"epochs_done": meta["epochs_done"], "seed": meta["seed"], "history": meta["history"],
            "callbacks": callbacks, "position": position}


def restore_callbacks(callbacks, resumed: dict) -> None:
    """Give the callbacks of a resumed ``fit`` the state saved for those at the same
    position with the same class (others start fresh).

    Parameters
    ----------
    callbacks : sequence of Callback
        The callbacks of the new ``fit``, after their ``on_train_begin``.
    resumed : dict
        What :func:`load` returned.

    Examples
    --------
    >>> from minidl.callbacks import EarlyStopping
    >>> stop = EarlyStopping(patience=5)
    >>> saved = EarlyStopping(patience=5); saved.on_train_begin(); saved.wait = 2
    >>> restore_callbacks([stop], {"callbacks": [{"class": "EarlyStopping", "state": saved.state_dict()}]})
    >>> stop.wait
    2
    """
    for cb, saved in zip(callbacks, resumed.get("callbacks", [])):
        if saved is not None and saved["class"] == type(cb).__name__ \
                and callable(getattr(cb, "load_state_dict", None)):
            try:
                cb.load_state_dict(saved["state"])
            except (KeyError, TypeError, AttributeError, OverflowError) as exc:  # a malformed saved state
                raise ValueError(f"Trainer.fit: the checkpoint's state for {type(cb).__name__} is malformed "
                                 f"({type(exc).__name__}: {exc}); resume without that callback or from "
                                 "another checkpoint.") from exc
