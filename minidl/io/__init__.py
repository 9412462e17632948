"""Saving and loading models: one ``.npz`` file, architecture and manifest as JSON, no pickles.

The format (version 2) is documented in ``docs/reliability.md``. A file holds

* ``__minidl_architecture__``: a JSON object ``{"format": "minidl", "format_version": 2,
  "model": <spec>, "arrays": {member: {"shape", "dtype"}}, "tied": {alias: name},
  "extra": {...}}``; ``arrays`` is the manifest of every other member;
* ``param:<name>``: each parameter once, under PyTorch's dotted name (a parameter
  shared by several layers is stored under its first name; ``tied`` lists the others);
* ``buffer:<name>``: each persistent buffer (BatchNorm's running statistics), under
  its dotted name, as :meth:`Layer.state_dict` names it;
* ``extra:<key>``: arrays a caller added (the Trainer's checkpoints keep optimizer state here).

Loading checks the manifest against the declared architecture (built without
allocating or drawing weights) and against every member's ``.npy`` header,
and the total size against ``max_bytes``, before anything is decompressed.
"""

from __future__ import annotations

import json
import os
import re
from typing import NamedTuple

import numpy as np

from ..layers.base import Layer, set_model_writer
from ..parameter import Parameter, deferred_init, is_deferred
from . import archive
from .architecture import REGISTRY, build, check_spec, json_default, register_layer, spec_of

__all__ = ["save", "load", "write", "read", "ModelFile", "register_layer", "FORMAT_VERSION",
           "MAX_LOAD_BYTES"]

FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)
_ARCH_KEY = "__minidl_architecture__"
_PARAM_PREFIX = "param:"
_BUFFER_PREFIX = "buffer:"
_EXTRA_PREFIX = "extra:"
_EXTRA_KEY = re.compile(r"[A-Za-z0-9_.:\-]{1,200}\Z")

#: Default cap, in bytes, on the arrays :func:`load` reads (pass ``max_bytes`` to change it).
MAX_LOAD_BYTES = 2 * 2**30
#: Largest architecture/manifest entry accepted, in bytes as stored.
MAX_MANIFEST_BYTES = 64 * 2**20
_REGISTRY = REGISTRY  # the one registry that register_layer fills

class ModelFile(NamedTuple):
    """What :func:`read` returns: the model and what the writer added to it.

    Attributes
    ----------
    model : Layer
    extra_meta : dict
        The ``extra_meta`` given to :func:`write` (``{}`` for :func:`save`).
    extra_arrays : dict of str to ndarray
        The ``extra_arrays`` given to :func:`write`.

    Examples
    --------
    >>> import os, tempfile
    >>> from minidl.layers import Dense
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     write(Dense(2, 2), os.path.join(tmp, "m.npz"), extra_meta={"note": "hi"})
    ...     file = read(os.path.join(tmp, "m.npz"))
    >>> file.model, file.extra_meta, file.extra_arrays
    (Dense(in_features=2, out_features=2), {'note': 'hi'}, {})
    """

    model: Layer
    extra_meta: dict
    extra_arrays: dict


# ------------------------------------------------------------------ writing
def write(model: Layer, path, extra_meta=None, extra_arrays=None) -> None:
    """Write ``model`` with extra metadata and arrays to ``path`` (what checkpoints use).

    Parameters
    ----------
    model : Layer
    path : str or os.PathLike
    extra_meta : dict, optional
        JSON-serialisable (numpy scalars allowed); returned by :func:`read`.
    extra_arrays : dict of str -> numeric ndarray, optional
        Keys of letters, digits and ``_.:-``; returned by :func:`read`.

    Raises
    ------
    TypeError, ValueError
        Not a Layer, metadata that is not JSON, a bad extra key or a non-numeric array,
        an unregistered layer class.

    Examples
    --------
    >>> import os, tempfile
    >>> from minidl.layers import Dense
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     write(Dense(2, 2), os.path.join(tmp, "m.npz"), extra_arrays={"mean": np.zeros(2)})
    ...     read(os.path.join(tmp, "m.npz")).extra_arrays
    {'mean': array([0., 0.])}
    """
    if not isinstance(model, Layer):
        raise TypeError(f"minidl.save: model must be a minidl Layer. Received: {type(model).__name__}")
    extra_meta = {} if extra_meta is None else extra_meta
    if not isinstance(extra_meta, dict):
        raise TypeError(f"minidl.io.write: extra_meta must be a dict. Received: {type(extra_meta).__name__}")
    arrays, tied, names = {}, {}, {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in names:
            tied[name] = names[id(p)]
        else:
            names[id(p)] = name
            arrays[_PARAM_PREFIX + name] = np.ascontiguousarray(p.data)
    for name, value in model.state_dict(keep_vars=True).items():
        if not isinstance(value, Parameter):  # np.array, not ascontiguousarray: that makes a 0-d buffer 1-d
            arrays[_BUFFER_PREFIX + name] = np.array(value, order="C")
    for key, value in (extra_arrays or {}).items():
        if not isinstance(key, str) or not _EXTRA_KEY.match(key):
            raise ValueError(f"minidl.io.write: extra array key {key!r} must match {_EXTRA_KEY.pattern}")
        value = np.asarray(value)
        if value.dtype.kind not in "biuf":
            raise TypeError(f"minidl.io.write: extra array {key!r} must be numeric. Received: {value.dtype}")
        arrays[_EXTRA_PREFIX + key] = np.ascontiguousarray(value)
    manifest = {k: {"shape": list(v.shape), "dtype": v.dtype.str} for k, v in arrays.items()}
    arch = {"format": "minidl", "format_version": FORMAT_VERSION, "model": spec_of(model),
            "arrays": manifest, "tied": tied, "extra": extra_meta}
    try:
        text = json.dumps(arch, default=json_default)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"minidl.save: a layer config or the metadata cannot be stored as JSON: {exc}. "
                        "get_config() must return plain numbers, strings, lists and dicts.") from exc
    arrays[_ARCH_KEY] = np.array(text)
    archive.write_npz(path, arrays)


def save(model: Layer, path) -> None:
    """Write ``model`` (architecture and weights) to ``path`` atomically.

    The file is a pickle-free ``.npz`` (format in the module docstring). It is
    written to a short hidden temporary file in the same folder and moved over
    ``path`` with :func:`os.replace`, so a failed or killed save leaves any
    previous file intact; ``path`` is used exactly as given (no suffix added).
    Saving an unregistered layer class (or Graph/Sequential subclass) raises
    ValueError before anything is written.

    Parameters
    ----------
    model : Layer
        Any built-in or registered layer, Sequential or Graph.
    path : str or os.PathLike

    Examples
    --------
    >>> import os, tempfile
    >>> from minidl import Sequential
    >>> from minidl.layers import Dense, ReLU
    >>> model = Sequential(Dense(4, 8, rng=0), ReLU(), Dense(8, 2, rng=0))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     save(model, os.path.join(tmp, "model.npz"))
    ...     again = load(os.path.join(tmp, "model.npz"))
    >>> x = np.ones((3, 4), np.float32)
    >>> np.array_equal(again(x), model(x))
    True
    """
    write(model, path)


set_model_writer(save)  # Layer.save calls it: the layers never import this module


# ------------------------------------------------------------------ reading

def _owner(model: Layer, dotted: str):
    """``(layer, attribute)`` holding the parameter named ``dotted``.

    A child's name may itself hold dots (a layer in a list attribute is ``"parts.0"``).
    """
    *parts, attr = dotted.split(".")
    layer = model
    while parts:
        children = dict(layer.named_children())
        n = next(n for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in children)
        layer, parts = children[".".join(parts[:n])], parts[n:]
    return layer, attr


def _manifest(arch, zf, model, max_bytes):
    """Check the manifest against the model, the members and ``max_bytes``; return
    ``({member: ZipInfo}, tied map, {name: Parameter})``. Nothing is decompressed."""
    params = dict(model.named_parameters(remove_duplicate=False))
    tied = arch.get("tied", {})
    if not isinstance(tied, dict) or not all(isinstance(a, str) and isinstance(c, str) and a in params
                                             and c in params and c not in tied
                                             for a, c in tied.items()):
        raise ValueError("the 'tied' entry must map parameter names to other parameter names")
    expected = {_PARAM_PREFIX + k: (tuple(p.shape), p.dtype) for k, p in params.items() if k not in tied}
    buffers = {k: v for k, v in model.state_dict(keep_vars=True).items() if not isinstance(v, Parameter)}
    expected.update({_BUFFER_PREFIX + k: (v.shape, v.dtype) for k, v in buffers.items()})
    for alias, name in tied.items():
        if (params[alias].shape, params[alias].dtype) != (params[name].shape, params[name].dtype):
            raise ValueError(f"tied parameters {alias!r} and {name!r} differ in shape or dtype")
    members = {n[:-4] for n in zf.namelist() if n.endswith(".npy")} - {_ARCH_KEY}
    if set(zf.namelist()) != {m + ".npy" for m in members | {_ARCH_KEY}}:
        raise ValueError("the file has members that are not .npy arrays")
    declared = arch.get("arrays") if arch["format_version"] >= 2 else \
        {m: None for m in members if m.startswith(_PARAM_PREFIX)}
    if not isinstance(declared, dict) or set(declared) != members:
        raise ValueError("the manifest does not list exactly the arrays in the file")
    problems = [f"missing {k.split(':', 1)[1]!r}" for k in expected if k not in declared]
    problems += [f"unexpected {k!r}" for k in declared
                 if k not in expected and not k.startswith(_EXTRA_PREFIX)]
    if problems:
        raise ValueError("the weights do not match the architecture: " + ", ".join(problems[:10]))
    total, found = 0, {}
    for member, entry in declared.items():
        shape, dtype, info = archive.member_header(zf, member)
        if entry is not None and (entry != {"shape": list(shape), "dtype": dtype.str}):
            raise ValueError(f"member {member!r} is {shape} {dtype.str}, the manifest says {entry}")
        if member in expected and expected[member] != (shape, dtype):
            raise ValueError(f"{member.split(':', 1)[1]!r}: the architecture needs "
                             f"{expected[member][0]} {expected[member][1]}, the file holds {shape} {dtype}")
        if member.startswith(_EXTRA_PREFIX) and dtype.kind not in "biuf":
            raise ValueError(f"member {member!r} must be numeric, not {dtype}")
        total += info.file_size
        found[member] = info
    if max_bytes is not None and total > max_bytes:
        raise ValueError(f"the arrays take {total:,} bytes, more than max_bytes={max_bytes:,}; "
                         "pass a larger max_bytes to minidl.load if you trust this file")
    return found, tied, params, buffers


def _read_arch(zf) -> dict:
    if _ARCH_KEY + ".npy" not in zf.namelist():
        raise ValueError(f"no {_ARCH_KEY!r} entry: not a minidl model file")
    shape, dtype, info = archive.member_header(zf, _ARCH_KEY)
    if dtype.kind != "U" or shape != () or info.file_size > MAX_MANIFEST_BYTES:
        raise ValueError(f"the {_ARCH_KEY!r} entry must be one string of at most {MAX_MANIFEST_BYTES} bytes")
    arch = json.loads(str(archive.read_member(zf, info)))
    if not isinstance(arch, dict) or not isinstance(arch.get("model"), dict):
        raise ValueError("the architecture entry is not a JSON object with a 'model' object")
    if arch.get("format") != "minidl":
        raise ValueError("not a minidl model file")
    version = arch.get("format_version")
    if type(version) is not int or version not in _READABLE_VERSIONS:
        raise ValueError(f"format version {version!r} is not supported "
                         f"(this minidl reads versions {list(_READABLE_VERSIONS)})")
    if not isinstance(arch.get("extra", {}), dict):
        raise ValueError("the 'extra' entry must be a JSON object")
    return arch


def _check_registry(custom_layers) -> dict:
    custom_layers = {} if custom_layers is None else custom_layers
    if not isinstance(custom_layers, dict):
        raise TypeError(f"minidl.load: custom_layers must be a dict {{'Name': Class}}. "
                        f"Received: {type(custom_layers).__name__}")
    for key, cls in custom_layers.items():
        if not isinstance(key, str) or not (isinstance(cls, type) and issubclass(cls, Layer)):
            raise TypeError(f"minidl.load: custom_layers must map class names to Layer subclasses. "
                            f"Received: {key!r}: {cls!r}")
    return {**_REGISTRY, **custom_layers}


def read(path, custom_layers=None, *, max_bytes=MAX_LOAD_BYTES) -> ModelFile:
    """Read a file written by :func:`write` or :func:`save`: the model, extra metadata and arrays.

    Parameters and errors as :func:`load`.

    Parameters
    ----------
    path : str or os.PathLike
    custom_layers : dict, optional
        As for :func:`load`.
    max_bytes : int or None, default ``MAX_LOAD_BYTES``
        As for :func:`load`.

    Returns
    -------
    ModelFile
        ``(model, extra_meta, extra_arrays)``; the model in eval mode, as :func:`load` gives it.

    Examples
    --------
    >>> import os, tempfile
    >>> from minidl.layers import Dense
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     save(Dense(2, 2), os.path.join(tmp, "m.npz"))
    ...     read(os.path.join(tmp, "m.npz")).extra_meta
    {}
    """
    path = os.fspath(path)
    registry = _check_registry(custom_layers)
    if max_bytes is not None and (type(max_bytes) is not int or max_bytes < 0):
        raise TypeError(f"minidl.load: max_bytes must be an int >= 0 or None. Received: {max_bytes!r}")
    try:
        with archive.open_npz(path) as zf:
            arch = _read_arch(zf)
            check_spec(arch["model"])
            with deferred_init():  # no weights drawn or allocated before the checks
                model = build(arch["model"], registry)
            found, tied, params, buffers = _manifest(arch, zf, model, max_bytes)
            arrays = {member: archive.read_member(zf, info) for member, info in found.items()}
    except FileNotFoundError:
        raise
    except Exception as exc:  # zipfile, zlib, numpy and json all have their own errors: untrusted input
        raise ValueError(f"minidl.load: cannot load a model from {path!r}: {exc}") from exc
    for name, p in params.items():
        if name in tied:
            continue
        value = arrays[_PARAM_PREFIX + name]
        if is_deferred(p):
            p.data, p.grad = value, np.zeros_like(value)
        else:
            np.copyto(p.data, value)
    for name in buffers:  # a fresh array read from the file: owned, writable
        setattr(*_owner(model, name), arrays[_BUFFER_PREFIX + name])
    for alias, name in tied.items():  # share the very Parameter object again
        owner, attr = _owner(model, alias)
        setattr(owner, attr, params[name])
    extras = {k[len(_EXTRA_PREFIX):]: v for k, v in arrays.items() if k.startswith(_EXTRA_PREFIX)}
    model.eval()  # loaded to predict: see load's Notes
    return ModelFile(model, arch.get("extra", {}), extras)


def load(path, custom_layers=None, *, max_bytes=MAX_LOAD_BYTES) -> Layer:
    """Rebuild a model saved by :func:`save` (or ``model.save``). Never unpickles.

    Parameters
    ----------
    path : str or os.PathLike
    custom_layers : dict, optional
        ``{"ClassName": Class}`` for user layers not registered with
        :func:`register_layer`; every value must be a Layer subclass.
    max_bytes : int or None, default ``MAX_LOAD_BYTES`` (2 GiB)
        Refuse files whose arrays take more bytes; checked before reading them.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When the file is truncated, corrupt, not a minidl model, of an unknown
        format version, larger than ``max_bytes``, or its weights do not match
        its architecture; the message names the path and the cause.

    Returns
    -------
    Layer
        The model **in eval mode**, ready to predict: BatchNorm uses its saved
        running statistics and Dropout passes everything through, whatever mode
        it was saved in. ``Trainer.fit`` switches it to training mode itself;
        call ``model.train()`` first to train it by hand. Its weights and buffers
        are the saved ones (tied parameters tied again).

    Notes
    -----
    Why eval mode: a loaded model is nearly always used to predict, and a model
    with BatchNorm or Dropout predicts worse in training mode without any error
    (a digits CNN with BatchNorm and Dropout: 96.7 % test accuracy instead of 98.9 %).
    In eval mode a forward keeps no backward caches, so a backward without
    ``model.train()`` (or ``with mdl.enable_grad():``) raises a RuntimeError
    saying so, rather than training the wrong model quietly. This is also what
    :func:`minidl.export.from_onnx <minidl.interop.onnx.from_onnx>` returns, and what Keras's ``load_model`` then
    ``model(x)`` computes; with PyTorch, call ``model.eval()`` after loading.

    Examples
    --------
    >>> import os, tempfile
    >>> from minidl import Sequential
    >>> from minidl.layers import BatchNorm1D, Dense, Dropout
    >>> model = Sequential(Dense(4, 3, rng=0), BatchNorm1D(3), Dropout(0.5))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     model.save(os.path.join(tmp, "m.npz"))   # saved in training mode
    ...     same = load(os.path.join(tmp, "m.npz"))
    >>> same.training, all(not layer.training for layer in same)
    (False, True)
    >>> _ = same.train()   # to train it by hand (Trainer.fit does this itself)
    """
    return read(path, custom_layers, max_bytes=max_bytes).model
