"""PyTorch in and out: :func:`to_torch` and :func:`from_torch` (torch imported only when called).

Each layer maps to the :mod:`torch.nn` module of the same semantics, and says which in its
own file: ``torch_modules`` and ``torch_args`` (``ReLU`` -> ``nn.ReLU``, ``Softmax(axis)`` ->
``nn.Softmax(dim)``) or a ``to_torch``/``from_torch`` recipe (see
:class:`~minidl.layers.Layer`); this module keeps no list of layers and reads the layer
registry, so a registered user layer with a recipe converts too. Where ``torch.nn`` lacks
the form, :mod:`minidl.interop._torch` adds it: ``PaddedConv2d`` (asymmetric pads, stride > 1
'same'), ``PaddedMaxPool2d`` ('same'), ``Add`` and ``Concat`` (merge layers) and
``GraphModule`` (a Graph's nodes in order). A Sequential becomes ``nn.Sequential`` (same
state-dict keys).

``from_torch`` inverts the mapping; it also merges an ``nn.ZeroPad2d`` followed by an
``nn.Conv2d`` (zeros padding mode) into one Conv2D with explicit pads. Tied weights stay
tied both ways: one minidl Parameter in several layers is one ``nn.Parameter``, and a torch
module used at several places becomes one layer per place sharing its Parameters.
"""

from __future__ import annotations

import numpy as np

from .. import layers as L
from ..graph import Graph, Sequential
from ..layers.base import Unsupported, recipe_class
from ..layers.registry import REGISTRY

__all__ = ["to_torch", "from_torch"]


def _import_torch(where):
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"{where} needs PyTorch: pip install -e \".[torch]\" (or pip install torch).") from exc
    return torch


# --------------------------------------------------------------------------- to_torch
def to_torch(model):
    """The :mod:`torch.nn` module equivalent to a minidl model, with the same weights and buffers.

    Parameters
    ----------
    model : minidl Layer
        A :class:`~minidl.Sequential`, a :class:`~minidl.Graph` or a single built-in layer.

    Returns
    -------
    torch.nn.Module
        ``nn.Sequential`` for a Sequential (same state-dict keys), a
        ``minidl.interop._torch.GraphModule`` for a Graph (submodules named after
        the nodes), else the module of the layer. Parameters keep their dtype
        (float32 or float64) and every module the train/eval mode of its layer.
        The arrays are copied: the two models do not share memory. A Parameter
        shared by several layers (tied weights) is one ``nn.Parameter`` shared by
        their modules, so torch counts and trains it once too.

    Raises
    ------
    TypeError
        For a layer with no torch equivalent (a custom layer), naming it and where it sits.

    Examples
    --------
    >>> import minidl as mdl
    >>> net = mdl.interop.to_torch(mdl.models.reference_cnn(0))  # doctest: +SKIP
    >>> type(net).__name__  # doctest: +SKIP
    'Sequential'
    """
    torch = _import_torch("minidl.interop.to_torch")
    with torch.no_grad():
        return _to_torch(model, "model", {})


def _to_torch(layer, where, tied):
    """``tied`` maps ``id`` of each minidl Parameter met so far to its ``nn.Parameter``."""
    import torch
    from torch import nn

    from . import _torch as T
    if isinstance(layer, Sequential):
        module = nn.Sequential()
        for name, child in layer.named_children():
            module.add_module(name, _to_torch(child, f"{where}[{name}]", tied))
    elif isinstance(layer, Graph):
        nodes = [(name, _to_torch(child, f"{where}[{name!r}]", tied), inputs)
                 for name, (child, inputs) in layer.nodes.items()]
        module = T.GraphModule(nodes, layer.output_name)
    else:
        module = _leaf_to_torch(layer, where, T)
        state = {k: torch.from_numpy(np.array(v)) for k, v in layer.state_dict().items()}
        module.load_state_dict(state, strict=True)
        for name, p in layer.named_parameters():  # a leaf's own: torch's names are minidl's
            first = tied.setdefault(id(p), getattr(module, name))
            if first is not getattr(module, name):
                setattr(module, name, first)  # tied weights stay one parameter
    module.training = layer.training
    return module


def _leaf_to_torch(layer, where, T):
    """The torch module of a layer, from the recipe in the layer's own file."""
    if recipe_class(type(layer), "to_torch") is not None:
        try:
            return layer.to_torch(T)
        except Unsupported as exc:
            raise TypeError(f"to_torch: {where} ({layer!r}) {exc}. Replace it, or convert it by hand "
                            "(load_state_dict).") from None
    kind = type(layer)
    raise TypeError(
        f"to_torch: {where} is a {kind.__module__}.{kind.__qualname__} ({layer!r}), which has no "
        f"torch.nn equivalent here. Supported: Sequential, Graph and the layers {', '.join(_supported('to_torch'))}. "
        "Give the class torch_modules or a to_torch method (see minidl.layers.Layer.to_torch), replace it, "
        "or convert it by hand (load_state_dict)."
    )


def _supported(recipe):
    return [name for name, cls in REGISTRY.items() if recipe_class(cls, recipe) is not None]


# ------------------------------------------------------------------------- from_torch
def from_torch(module):
    """A minidl model equivalent to a torch module, with the same weights and buffers.

    Parameters
    ----------
    module : torch.nn.Module
        An ``nn.Sequential`` (nested ones become nested minidl Sequentials, so the
        state-dict keys match), a module made by :func:`to_torch`, or one supported layer:
        ``Conv1d``, ``Conv2d``, ``MaxPool1d/2d``, ``AvgPool1d/2d``, ``AdaptiveAvgPool2d``
        (an int 1: GlobalAvgPool2D), ``AdaptiveMaxPool2d`` (an int 1: GlobalMaxPool2D), ``Linear``,
        ``Flatten`` (``end_dim=-1``), ``ReLU``, ``LeakyReLU``, ``Sigmoid``, ``Tanh``, ``GELU``,
        ``Identity``, ``Softmax``, ``BatchNorm1d/2d``, ``Dropout``, ``Dropout2d``, and
        ``ZeroPad2d`` directly followed by a zeros-padded ``Conv2d`` (merged into one Conv2D,
        so from there on the indices differ from torch's).

    Returns
    -------
    minidl Layer: a Sequential, a Graph or a layer, each layer in its module's train/eval mode.
        A module used at several places (``nn.Sequential(lin, nn.ReLU(), lin)``) becomes one
        layer per place, all sharing the same Parameter objects (tied weights), as do
        modules that share an ``nn.Parameter``: counted and trained once, as in torch.

    Raises
    ------
    TypeError
        For an unsupported module (or option), naming it and its position (``model[2][0]``).
    ValueError
        For a module with buffers (BatchNorm's running statistics) used at several places,
        or a buffer shared by two modules: minidl ties parameters, not buffers.

    Examples
    --------
    >>> import torch, minidl as mdl  # doctest: +SKIP
    >>> mdl.interop.from_torch(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)))  # doctest: +SKIP
    Sequential(
      (0): Flatten()
      (1): Dense(in_features=4, out_features=2)
    )
    """
    torch = _import_torch("minidl.interop.from_torch")
    with torch.no_grad():
        return _from_torch(module, "module", {})


def _from_torch(module, where, tied):
    """``tied`` maps ``id`` of each torch parameter (and buffer) met so far to its minidl counterpart."""
    from torch import nn

    from . import _torch as T
    if isinstance(module, nn.Sequential):
        children = [(n, c) for n, c in module._modules.items() if c is not None]  # as forward: repeats too
        out, i = Sequential(), 0
        while i < len(children):
            name, child = children[i]
            here = f"{where}[{name}]"
            if isinstance(child, nn.ZeroPad2d):
                nxt = children[i + 1][1] if i + 1 < len(children) else None
                out.append(_merge_pad_conv(child, nxt, here, tied, T))
                i += 2
                continue
            out.append(_from_torch(child, here, tied))
            i += 1
    elif isinstance(module, T.GraphModule):
        out = Graph()
        for name, inputs in module.node_inputs.items():
            out.add(name, _from_torch(getattr(module, name), f"{where}.{name}", tied), inputs)
        if module.output != next(reversed(module.node_inputs)):
            out.set_output(module.output)
    else:
        out = _leaf_from_torch(module, where, T)
        _copy_state(module, out, where, tied)
    out.training = module.training
    return out


def _copy_state(module, layer, where, tied):
    state = {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}
    try:
        layer.load_state_dict(state, strict=True)
    except ValueError as exc:  # pragma: no cover - a mapping bug, not a user error
        raise TypeError(f"from_torch: {where} ({module!r}): its state does not map onto {layer!r}: {exc}") from exc
    for name, buffer in module.named_buffers(recurse=False):
        if id(buffer) in tied:
            raise ValueError(
                f"from_torch: {where} ({module!r}) shares its buffer {name!r} with {tied[id(buffer)]} (a module "
                "with running statistics used at two places?). minidl layers can share parameters, not buffers. "
                "Use a separate module at each place, e.g. copy.deepcopy(module)."
            )
        tied[id(buffer)] = where
    for name, p in module.named_parameters(recurse=False):  # torch's names are minidl's
        first = tied.setdefault(id(p), getattr(layer, name))
        if first is not getattr(layer, name):
            setattr(layer, name, first)  # a module used twice, or tied weights: one Parameter


def _torch_classes(T):
    """``{torch module class: minidl layer class}`` from the ``torch_modules`` each registered
    class declares in its own body (the first class to claim a module keeps it)."""
    found = {}
    for cls in REGISTRY.values():
        for name in vars(cls).get("torch_modules", ()):
            found.setdefault(T.module(name), cls)
    return found


def _refuse(module, where, why, T):
    names = sorted({k.__name__ for k in _torch_classes(T)})
    raise TypeError(
        f"from_torch: {where} is a {type(module).__module__}.{type(module).__qualname__} ({module!r}), "
        f"which minidl cannot represent{why}. Supported: nn.Sequential, {', '.join(names)} and "
        "ZeroPad2d + Conv2d."
    )


def _leaf_from_torch(m, where, T):
    cls = _torch_classes(T).get(type(m))
    if cls is None:
        _refuse(m, where, "", T)
    try:
        return cls.from_torch(m, T)
    except Unsupported as exc:
        _refuse(m, where, f" {exc}", T)


def _merge_pad_conv(pad, conv, where, tied, T):
    """One Conv2D for ``nn.ZeroPad2d`` followed by ``nn.Conv2d`` (zeros mode, numeric padding)."""
    left, right, top, bottom = pad.padding
    ok = (type(conv) is T.nn.Conv2d and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)
          and min(pad.padding) >= 0)
    if not ok:
        raise TypeError(
            f"from_torch: {where} is {pad!r}, supported only when directly followed by an nn.Conv2d with "
            f"padding_mode='zeros' and numeric padding (merged into one Conv2D); it is followed by "
            f"{conv!r}. Fold the padding into the convolution, or drop it."
        )
    ph, pw = conv.padding
    try:
        layer = L.Conv2D.from_torch(conv, T, padding=((top + ph, bottom + ph), (left + pw, right + pw)))
    except Unsupported as exc:
        _refuse(conv, where, f" {exc}", T)
    _copy_state(conv, layer, where, tied)
    layer.training = conv.training
    return layer
