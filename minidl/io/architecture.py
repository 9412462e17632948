"""Model architectures as JSON: specs, and building models from specs with the layer registry.

A spec is what :func:`minidl.save` stores for a model: ``{"class": name, "config":
get_config()}`` for a layer, with ``"layers"`` (Sequential) or ``"nodes"`` and
``"output"`` (Graph) for graphs, and ``"base"`` for a registered subclass of either.
The classes come from :mod:`minidl.layers.registry` (its ``REGISTRY`` and
:func:`register_layer` are re-exported here), which every layer fills by registering itself.
:func:`check_spec` validates an untrusted spec's structure before :func:`build` runs
any constructor.
"""

from __future__ import annotations

import numpy as np

from .. import losses as _losses  # noqa: F401 - the losses register themselves on import
from ..graph import Graph, Sequential
from ..layers.base import Layer
from ..layers.registry import REGISTRY, register_layer

__all__ = ["REGISTRY", "register_layer", "registered_name", "spec_of", "check_spec", "build",
           "json_default", "MAX_LAYERS", "MAX_DEPTH"]

#: Most layers and deepest nesting an architecture may declare.
MAX_LAYERS, MAX_DEPTH = 100_000, 64

_GRAPHS = {"Sequential": Sequential, "Graph": Graph}


def registered_name(layer: Layer) -> str:
    """The name ``layer``'s class is stored under, or the ValueError for an unregistered class.

    Parameters
    ----------
    layer : Layer

    Returns
    -------
    str

    Raises
    ------
    ValueError
        ``type(layer)`` is not the class registered under its name.

    Examples
    --------
    >>> from minidl.layers import Conv2D
    >>> registered_name(Conv2D(1, 2, 3))
    'Conv2D'
    """
    name = type(layer).__name__
    if REGISTRY.get(name) is not type(layer):
        raise ValueError(
            f"save: cannot store the architecture of {layer!r}: class {name!r} is not registered, "
            "so the file would load as something else. Decorate it with @minidl.register_layer "
            "and give it a get_config() that returns its constructor arguments."
        )
    return name


def spec_of(layer: Layer) -> dict:
    """The JSON-serialisable spec of ``layer`` (ValueError for an unregistered class).

    Parameters
    ----------
    layer : Layer

    Returns
    -------
    dict
        ``{"class", "config"}``; Sequential and Graph add ``layers`` or ``nodes`` and ``output``.

    Examples
    --------
    >>> from minidl import Sequential
    >>> from minidl.layers import Dense, ReLU
    >>> spec = spec_of(Sequential(Dense(2, 3), ReLU()))
    >>> spec["class"], spec["layers"][1]
    ('Sequential', {'class': 'ReLU', 'config': {}})
    >>> spec["layers"][0]["config"]
    {'in_features': 2, 'out_features': 3, 'bias': True, 'dtype': 'float32'}
    """
    if isinstance(layer, Graph):
        base = Sequential if isinstance(layer, Sequential) else Graph
        if type(layer) is base:
            spec = {"class": base.__name__}
        else:  # a subclass (its own forward, say): must be registered
            spec = {"class": registered_name(layer), "base": base.__name__, "config": layer.get_config()}
        if base is Sequential:
            spec["layers"] = [spec_of(child) for child in layer]
        else:
            spec["nodes"] = [{"name": name, "inputs": list(inputs), "layer": spec_of(child)}
                             for name, (child, inputs) in layer.nodes.items()]
            spec["output"] = layer.output_override
        return spec
    return {"class": registered_name(layer), "config": layer.get_config()}


def check_spec(spec, path="model", depth=0, count=None) -> int:
    """Check the JSON structure of a spec (types, sizes, depth) before anything is built.

    Parameters
    ----------
    spec : object
        A spec read from a file (untrusted).
    path : str, default 'model'
        Where in the spec this entry is, for the message.
    depth : int
        The nesting so far.
    count : list of one int, optional
        The layers counted so far (shared by the recursion).

    Returns
    -------
    int
        The number of layer entries counted.

    Raises
    ------
    ValueError
        A malformed entry, more than ``MAX_LAYERS`` layers, deeper than ``MAX_DEPTH``.

    Examples
    --------
    >>> check_spec({"class": "Sequential", "layers": [{"class": "ReLU"}, {"class": "Flatten"}]})
    3
    >>> check_spec({"class": "Sequential", "layers": "ReLU"})
    Traceback (most recent call last):
    ...
    ValueError: model: a Sequential needs a 'layers' list
    """
    count = [0] if count is None else count
    count[0] += 1
    if count[0] > MAX_LAYERS or depth > MAX_DEPTH:
        raise ValueError(f"the architecture declares more than {MAX_LAYERS} layers or nests "
                         f"deeper than {MAX_DEPTH} levels (at {path})")
    if not isinstance(spec, dict) or not isinstance(spec.get("class"), str):
        raise ValueError(f"{path}: a layer entry must be an object with a 'class' string")
    if not isinstance(spec.get("config", {}), dict):
        raise ValueError(f"{path}: 'config' must be an object")
    base = spec["class"] if spec["class"] in _GRAPHS else spec.get("base")
    if base is None:
        return count[0]
    if base == "Sequential":
        children = spec.get("layers")
        if not isinstance(children, list):
            raise ValueError(f"{path}: a Sequential needs a 'layers' list")
        for i, child in enumerate(children):
            check_spec(child, f"{path}.{i}", depth + 1, count)
    elif base == "Graph":
        nodes = spec.get("nodes")
        if not isinstance(nodes, list) or not isinstance(spec.get("output"), (str, type(None))):
            raise ValueError(f"{path}: a Graph needs a 'nodes' list and an 'output' string or null")
        for node in nodes:
            if not (isinstance(node, dict) and isinstance(node.get("name"), str)
                    and isinstance(node.get("inputs"), list)
                    and all(isinstance(i, str) for i in node["inputs"])):
                raise ValueError(f"{path}: each node needs a 'name' string and an 'inputs' list of strings")
            check_spec(node.get("layer"), f"{path}.{node['name']}", depth + 1, count)
    else:
        raise ValueError(f"{path}: unknown base {base!r} (expected 'Sequential' or 'Graph')")
    return count[0]


def _fill(graph: Graph, spec: dict, registry, path) -> None:
    if "layers" in spec:
        for i, child in enumerate(spec["layers"]):
            graph.append(build(child, registry, f"{path}.{i}"))
    else:
        for node in spec["nodes"]:
            graph.add(node["name"], build(node["layer"], registry, f"{path}.{node['name']}"),
                      node["inputs"])
        if spec.get("output") is not None:
            graph.set_output(spec["output"])


def build(spec: dict, registry: dict, path="model") -> Layer:
    """Build the layer (or graph) a checked spec describes, with classes from ``registry``.

    Parameters
    ----------
    spec : dict
        Checked by :func:`check_spec`.
    registry : dict of str to type
        The classes by name (``REGISTRY``, plus ``minidl.load``'s ``custom_layers``).
    path : str, default 'model'
        Where in the spec this entry is, for the message.

    Returns
    -------
    Layer

    Raises
    ------
    ValueError
        An unknown class, or a config the class refuses.

    Examples
    --------
    >>> from minidl import Sequential
    >>> from minidl.layers import Dense
    >>> build(spec_of(Sequential(Dense(2, 3))), REGISTRY)
    Sequential(
      (0): Dense(in_features=2, out_features=3)
    )
    """
    name = spec["class"]
    if name in _GRAPHS:
        graph = _GRAPHS[name]()
        _fill(graph, spec, registry, path)
        return graph
    if name not in registry:
        raise ValueError(
            f"{path}: unknown layer class {name!r}; register it with @minidl.register_layer "
            "or pass custom_layers={'Name': Class} to minidl.load."
        )
    cls = registry[name]
    base = spec.get("base")
    if base is not None and not issubclass(cls, _GRAPHS[base]):
        raise ValueError(f"{path}: class {name!r} is stored as a {base} subclass, but "
                         f"{cls.__qualname__} is not one")
    try:
        layer = cls(**spec.get("config", {}))
    except Exception as exc:  # untrusted config: any failure is a bad file
        raise ValueError(f"{path}: cannot build {name} from its stored config: {exc}") from exc
    if base is not None:
        if len(layer) == 0:
            _fill(layer, spec, registry, path)
        else:
            built = spec_of(layer)
            if built.get("layers", built.get("nodes")) != spec.get("layers", spec.get("nodes")):
                raise ValueError(f"{path}: {name}(**config) builds other nodes than the file holds")
    elif isinstance(layer, Graph):
        raise ValueError(f"{path}: class {name!r} is a graph stored without its nodes")
    return layer


def json_default(value):
    """Let numpy scalars and small arrays in configs and metadata be saved as JSON.

    Parameters
    ----------
    value : object
        What :func:`json.dumps` cannot encode itself.

    Returns
    -------
    int, float, bool or list

    Raises
    ------
    TypeError
        Anything else (arrays over 10,000 elements included).

    Examples
    --------
    >>> import json
    >>> json.dumps({"a": np.float32(0.5), "b": np.arange(3), "c": (1, 2)}, default=json_default)
    '{"a": 0.5, "b": [0, 1, 2], "c": [1, 2]}'
    """
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray) and value.size <= 10_000:
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON serialisable")
