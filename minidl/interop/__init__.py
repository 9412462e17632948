"""PyTorch in and out: :func:`to_torch` and :func:`from_torch` (torch imported only when called).

Each minidl layer maps to the :mod:`torch.nn` module of the same semantics:

==================  ==========================================================
minidl              torch
==================  ==========================================================
Conv2D              ``nn.Conv2d`` (asymmetric pads, stride > 1 'same':
                    ``PaddedConv2d``, an ``nn.Conv2d`` that pads first)
MaxPool2D           ``nn.MaxPool2d`` ('same': ``PaddedMaxPool2d``, -inf pad)
AvgPool2D           ``nn.AvgPool2d``
GlobalAvgPool2D     ``nn.AdaptiveAvgPool2d(1)``
Dense, Flatten      ``nn.Linear``, ``nn.Flatten``
activations         ``nn.ReLU``, ``nn.LeakyReLU``, ``nn.Sigmoid``, ``nn.Tanh``,
                    ``nn.GELU``, ``nn.Identity``, ``nn.Softmax`` (axis -> dim)
BatchNorm1D/2D      ``nn.BatchNorm1d`` / ``nn.BatchNorm2d`` (running stats too)
Dropout/Dropout2D   ``nn.Dropout`` / ``nn.Dropout2d``
Sequential          ``nn.Sequential`` (same state-dict keys)
Graph, Add, Concat  ``GraphModule`` (runs the nodes in order), ``Add``, ``Concat``
==================  ==========================================================

``from_torch`` inverts the table; it also merges an ``nn.ZeroPad2d`` followed by an
``nn.Conv2d`` (zeros padding mode) into one Conv2D with explicit pads. Tied weights stay
tied both ways: one minidl Parameter in several layers is one ``nn.Parameter``, and a torch
module used at several places becomes one layer per place sharing its Parameters.
"""

from __future__ import annotations

import numpy as np

from .. import layers as L
from ..functional.geometry import resolve_padding
from ..graph import Graph, Sequential

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


def _dtype_of(layer):
    import torch
    params = layer.parameters()
    dtype = params[0].data.dtype if params else np.float32
    return {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[np.dtype(dtype)]


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
        module = _leaf_to_torch(layer, where, nn, T)
        state = {k: torch.from_numpy(np.array(v)) for k, v in layer.state_dict().items()}
        module.load_state_dict(state, strict=True)
        for name, p in layer.named_parameters():  # a leaf's own: torch's names are minidl's
            first = tied.setdefault(id(p), getattr(module, name))
            if first is not getattr(module, name):
                setattr(module, name, first)  # tied weights stay one parameter
    module.training = layer.training
    return module


def _leaf_to_torch(layer, where, nn, T):  # noqa: C901 - one branch per layer type
    kind = type(layer)
    if kind is L.Conv2D:
        return _conv_to_torch(layer, nn, T)
    if kind is L.MaxPool2D:
        if isinstance(layer.padding, str) and layer.padding.lower() == "same":
            return T.PaddedMaxPool2d(layer.kernel_size, layer.stride, layer.dilation, layer.ceil_mode, "same")
        return nn.MaxPool2d(layer.kernel_size, layer.stride, _torch_padding(layer.padding, layer.kernel_size),
                            layer.dilation, ceil_mode=layer.ceil_mode)
    if kind is L.AvgPool2D:
        return nn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode, layer.count_include_pad)
    if kind is L.GlobalAvgPool2D:
        return nn.AdaptiveAvgPool2d(1)
    if kind is L.Dense:
        return nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None, dtype=_dtype_of(layer))
    if kind is L.BatchNorm1D or kind is L.BatchNorm2D:
        cls = nn.BatchNorm1d if kind is L.BatchNorm1D else nn.BatchNorm2d
        dtype = {np.dtype(np.float32): "float32", np.dtype(np.float64): "float64"}[np.dtype(layer.dtype)]
        import torch
        return cls(layer.num_features, layer.eps, layer.momentum, layer.affine, layer.track_running_stats,
                   dtype=getattr(torch, dtype))
    simple = {L.ReLU: nn.ReLU, L.Sigmoid: nn.Sigmoid, L.Tanh: nn.Tanh, L.Identity: nn.Identity,
              L.Add: T.Add}
    if kind in simple:
        return simple[kind]()
    if kind is L.LeakyReLU:
        return nn.LeakyReLU(layer.negative_slope)
    if kind is L.GELU:
        return nn.GELU(approximate=layer.approximate)
    if kind is L.Softmax:
        return nn.Softmax(dim=layer.axis)
    if kind is L.Flatten:
        return nn.Flatten(layer.start_dim)
    if kind is L.Dropout:
        return nn.Dropout(layer.p)
    if kind is L.Dropout2D:
        return nn.Dropout2d(layer.p)
    if kind is L.Concat:
        return T.Concat(layer.axis)
    raise TypeError(
        f"to_torch: {where} is a {kind.__module__}.{kind.__qualname__} ({layer!r}), which has no "
        "torch.nn equivalent here. Supported: Sequential, Graph and the built-in layers "
        f"{', '.join(L.__all__[1:])}. Replace it, or convert it by hand (load_state_dict)."
    )


def _conv_to_torch(layer, nn, T):
    kw = dict(stride=layer.stride, dilation=layer.dilation, groups=layer.groups, bias=layer.bias is not None,
              padding_mode=layer.padding_mode, dtype=_dtype_of(layer))
    args = (layer.in_channels, layer.out_channels, layer.kernel_size)
    padding = layer.padding
    if isinstance(padding, str) and padding.lower() == "same":
        if layer.stride == (1, 1):  # torch's 'same' is Keras's for stride 1 (extra pad bottom/right)
            return nn.Conv2d(*args, padding="same", **kw)
        return T.PaddedConv2d(*args, minidl_padding="same", **kw)  # pads depend on the input size
    if isinstance(padding, str):  # 'valid'
        return nn.Conv2d(*args, padding="valid", **kw)
    pads = resolve_padding(padding, (1, 1), layer.kernel_size, layer.stride, layer.dilation)
    if pads[0][0] == pads[0][1] and pads[1][0] == pads[1][1]:
        return nn.Conv2d(*args, padding=_torch_padding(padding, layer.kernel_size), **kw)
    return T.PaddedConv2d(*args, minidl_padding=pads, **kw)


def _torch_padding(padding, kernel_size):
    """minidl's symmetric ``padding`` as torch's: an int, a pair, or 0 for 'valid'."""
    if isinstance(padding, str):
        return 0
    if isinstance(padding, (int, np.integer)):
        return int(padding)
    if all(isinstance(p, (int, np.integer)) for p in padding):
        return tuple(int(p) for p in padding)
    (pt, _), (pl, _) = resolve_padding(padding, (1, 1), kernel_size)
    return pt, pl


# ------------------------------------------------------------------------- from_torch
def from_torch(module):
    """A minidl model equivalent to a torch module, with the same weights and buffers.

    Parameters
    ----------
    module : torch.nn.Module
        An ``nn.Sequential`` (nested ones become nested minidl Sequentials, so the
        state-dict keys match), a module made by :func:`to_torch`, or one supported layer:
        ``Conv2d``, ``MaxPool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d(1)``, ``Linear``,
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
                out.append(_merge_pad_conv(child, nxt, here, tied))
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
        out = _leaf_from_torch(module, where, nn, T)
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


def _np_dtype(module, where):
    """The dtype of the module's first parameter, else of its first floating-point buffer
    (``BatchNorm1d(affine=False)`` has only buffers), else float32."""
    tensors = list(module.parameters()) or [b for b in module.buffers() if b.is_floating_point()]
    if not tensors:
        return np.float32
    name = str(tensors[0].dtype).replace("torch.", "")
    if name not in ("float32", "float64"):
        raise TypeError(f"from_torch: {where} ({module!r}) has {name} weights; minidl supports float32 "
                        "and float64. Convert the module first (module.float() or module.double()).")
    return np.dtype(name)


def _refuse(module, where, why=""):
    raise TypeError(
        f"from_torch: {where} is a {type(module).__module__}.{type(module).__qualname__} ({module!r}), "
        f"which minidl cannot represent{why}. Supported: nn.Sequential, Conv2d, MaxPool2d, AvgPool2d, "
        "AdaptiveAvgPool2d(1), Linear, Flatten, ReLU, LeakyReLU, Sigmoid, Tanh, GELU, Identity, Softmax, "
        "BatchNorm1d/2d, Dropout, Dropout2d and ZeroPad2d + Conv2d."
    )


def _leaf_from_torch(m, where, nn, T):  # noqa: C901 - one branch per module type
    if isinstance(m, T.PaddedConv2d):
        return _conv_from_torch(m, m.minidl_padding, where)
    if type(m) is nn.Conv2d:
        padding = m.padding if isinstance(m.padding, str) else tuple(m.padding)
        return _conv_from_torch(m, padding, where)
    if isinstance(m, T.PaddedMaxPool2d):
        return L.MaxPool2D(m.kernel_size, m.stride, m.minidl_padding, m.dilation, m.minidl_ceil_mode)
    if type(m) is nn.MaxPool2d:
        if m.return_indices:
            _refuse(m, where, " with return_indices=True")
        return L.MaxPool2D(m.kernel_size, m.stride, m.padding, m.dilation, bool(m.ceil_mode))
    if type(m) is nn.AvgPool2d:
        if m.divisor_override is not None:
            _refuse(m, where, " with divisor_override")
        return L.AvgPool2D(m.kernel_size, m.stride, m.padding, bool(m.ceil_mode), bool(m.count_include_pad))
    if type(m) is nn.AdaptiveAvgPool2d:
        if m.output_size not in (1, (1, 1), [1, 1]):
            _refuse(m, where, f" with output_size={m.output_size!r} (only 1)")
        return L.GlobalAvgPool2D()
    if type(m) is nn.Linear:
        return L.Dense(m.in_features, m.out_features, bias=m.bias is not None, dtype=_np_dtype(m, where))
    if type(m) in (nn.BatchNorm1d, nn.BatchNorm2d):
        cls = L.BatchNorm1D if type(m) is nn.BatchNorm1d else L.BatchNorm2D
        return cls(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats, dtype=_np_dtype(m, where))
    if type(m) is nn.Flatten:
        if m.end_dim != -1 or m.start_dim < 1:
            _refuse(m, where, f" with start_dim={m.start_dim}, end_dim={m.end_dim} (only start_dim >= 1, "
                    "end_dim=-1)")
        return L.Flatten(m.start_dim)
    simple = {nn.ReLU: L.ReLU, nn.Sigmoid: L.Sigmoid, nn.Tanh: L.Tanh, nn.Identity: L.Identity, T.Add: L.Add}
    if type(m) in simple:
        return simple[type(m)]()
    if type(m) is nn.LeakyReLU:
        return L.LeakyReLU(m.negative_slope)
    if type(m) is nn.GELU:
        return L.GELU(m.approximate)
    if type(m) is nn.Softmax:
        if m.dim is None:
            _refuse(m, where, " with dim=None (set dim)")
        return L.Softmax(m.dim)
    if type(m) is nn.Dropout:
        return L.Dropout(m.p)
    if type(m) is nn.Dropout2d:
        return L.Dropout2D(m.p)
    if type(m) is T.Concat:
        return L.Concat(m.axis)
    _refuse(m, where)


def _conv_from_torch(m, padding, where):
    return L.Conv2D(m.in_channels, m.out_channels, m.kernel_size, m.stride, padding, m.dilation, m.groups,
                    bias=m.bias is not None, padding_mode=m.padding_mode, dtype=_np_dtype(m, where))


def _merge_pad_conv(pad, conv, where, tied):
    """One Conv2D for ``nn.ZeroPad2d`` followed by ``nn.Conv2d`` (zeros mode, numeric padding)."""
    from torch import nn
    left, right, top, bottom = pad.padding
    ok = (type(conv) is nn.Conv2d and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)
          and min(pad.padding) >= 0)
    if not ok:
        raise TypeError(
            f"from_torch: {where} is {pad!r}, supported only when directly followed by an nn.Conv2d with "
            f"padding_mode='zeros' and numeric padding (merged into one Conv2D); it is followed by "
            f"{conv!r}. Fold the padding into the convolution, or drop it."
        )
    ph, pw = conv.padding
    layer = _conv_from_torch(conv, ((top + ph, bottom + ph), (left + pw, right + pw)), where)
    _copy_state(conv, layer, where, tied)
    layer.training = conv.training
    return layer
