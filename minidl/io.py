"""Saving and loading models: one ``.npz`` file, architecture as JSON, no pickles."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile

import numpy as np

from . import layers as _layers
from . import losses as _losses
from .graph import Graph, Sequential
from .layers.base import Layer

__all__ = ["save", "load", "register_layer", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_ARCH_KEY = "__minidl_architecture__"
_PARAM_PREFIX = "param:"

_REGISTRY: dict[str, type] = {
    cls.__name__: cls
    for cls in (_layers.Conv2D, _layers.ReLU, _layers.MaxPool2D, _layers.Dense, _layers.Flatten,
                _layers.Add, _layers.Concat, _losses.SoftmaxCrossEntropy)
}


def register_layer(cls):
    """Class decorator: make a user-written layer loadable by :func:`load`.

    The class must rebuild itself from ``cls(**layer.get_config())``.

    Examples
    --------
    >>> @register_layer
    ... class Identity(Layer):
    ...     def forward(self, x): return x
    ...     def backward(self, g): return g
    """
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise TypeError(f"register_layer: expected a Layer subclass. Received: {cls!r}")
    old = _REGISTRY.get(cls.__name__)
    redefinition = old is not None and (old.__module__, old.__qualname__) == (cls.__module__, cls.__qualname__)
    if old is not None and old is not cls and not redefinition:
        raise ValueError(
            f"register_layer: the name {cls.__name__!r} is already taken by "
            f"{old.__module__}.{old.__qualname__}; files store layers by class name, so "
            f"{cls.__module__}.{cls.__qualname__} would shadow it. Rename your class."
        )
    _REGISTRY[cls.__name__] = cls
    return cls


def _spec(layer: Layer) -> dict:
    if isinstance(layer, Sequential):
        return {"class": "Sequential", "layers": [_spec(child) for child in layer]}
    if isinstance(layer, Graph):
        nodes = [{"name": name, "inputs": list(inputs), "layer": _spec(child)}
                 for name, (child, inputs) in layer.nodes.items()]
        return {"class": "Graph", "nodes": nodes, "output": layer._output}
    name = type(layer).__name__
    if _REGISTRY.get(name) is not type(layer):
        raise ValueError(
            f"save: cannot store the architecture of {layer!r}: class {name!r} is not registered. "
            "Decorate it with @minidl.register_layer and give it a get_config() that returns "
            "its constructor arguments."
        )
    return {"class": name, "config": layer.get_config()}


def _build(spec: dict, registry: dict) -> Layer:
    cls_name = spec["class"]
    if cls_name == "Sequential":
        return Sequential(*[_build(s, registry) for s in spec["layers"]])
    if cls_name == "Graph":
        graph = Graph()
        for node in spec["nodes"]:
            graph.add(node["name"], _build(node["layer"], registry), node["inputs"])
        if spec.get("output") is not None:
            graph.set_output(spec["output"])
        return graph
    if cls_name not in registry:
        raise ValueError(
            f"unknown layer class {cls_name!r}; register it with @minidl.register_layer "
            "or pass custom_layers={'Name': Class} to minidl.load."
        )
    return registry[cls_name](**spec.get("config", {}))


def save(model: Layer, path) -> None:
    """Write ``model`` (architecture and weights) to ``path`` atomically.

    The file is a ``.npz`` written with ``allow_pickle=False``: the weights
    under ``"param:<name>"`` and the architecture as JSON (with a format
    version). It is written to a temporary file in the same folder and then
    moved over ``path`` with :func:`os.replace`, so a failed save leaves any
    previous file intact. ``path`` is used exactly as given (no suffix added).
    """
    path = os.fspath(path)
    arch = {"format": "minidl", "format_version": FORMAT_VERSION, "model": _spec(model)}
    arrays = {_ARCH_KEY: np.array(json.dumps(arch))}
    arrays.update({_PARAM_PREFIX + name: p.data for name, p in model.named_parameters()})
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:  # through a file object: np.savez adds no suffix
            np.savez(f, allow_pickle=False, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _file_mode(path: str) -> int:
    """The mode a plain ``open(path, 'w')`` would give: keep an existing file's, else 0o666 & ~umask.

    ``mkstemp`` creates 0o600 files; without this every saved model would be owner-only.
    """
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def load(path, custom_layers=None) -> Layer:
    """Rebuild a model saved by :func:`save` (or ``model.save``). Never unpickles.

    Parameters
    ----------
    path : str or os.PathLike
    custom_layers : dict, optional
        ``{"ClassName": Class}`` for user layers not registered with
        :func:`register_layer`.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When the file is truncated, corrupt, not a minidl model, or of an
        unknown format version; the message names the path and the cause.
    """
    path = os.fspath(path)
    registry = {**_REGISTRY, **(custom_layers or {})}
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":  # before numpy guesses (and suggests unpickling)
                raise ValueError("not a .npz (zip) file; minidl models are written by model.save()")
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        if _ARCH_KEY not in arrays:
            raise ValueError(f"no {_ARCH_KEY!r} entry: not a minidl model file")
        arch = json.loads(str(arrays.pop(_ARCH_KEY)))
        if not isinstance(arch, dict) or not isinstance(arch.get("model"), dict):
            raise ValueError("the architecture entry is not a JSON object with a 'model' object")
        if arch.get("format") != "minidl":
            raise ValueError("not a minidl model file")
        if arch.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format version {arch.get('format_version')!r} is not supported "
                             f"(this minidl reads version {FORMAT_VERSION})")
        model = _build(arch["model"], registry)
        state = {k[len(_PARAM_PREFIX):]: v for k, v in arrays.items() if k.startswith(_PARAM_PREFIX)}
        model.load_state_dict(state)
    except FileNotFoundError:
        raise
    except KeyError as exc:
        raise ValueError(f"minidl.load: cannot load a model from {path!r}: missing key {exc}") from exc
    except (OSError, ValueError, TypeError, AttributeError, RecursionError, EOFError,
            zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise ValueError(f"minidl.load: cannot load a model from {path!r}: {exc}") from exc
    return model
