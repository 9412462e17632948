"""torch modules for what ``torch.nn`` lacks (used by :mod:`minidl.interop`; imports torch).

- :class:`PaddedConv2d`: a :class:`torch.nn.Conv2d` (same parameters, same state-dict keys)
  that pads explicitly first, for asymmetric pads and TF/Keras-style ``'same'`` with a
  stride > 1 (whose pads depend on the input size: computed per call, as minidl does).
- :class:`PaddedMaxPool2d`: a :class:`torch.nn.MaxPool2d` padding with ``-inf`` first, for
  ``padding='same'``.
- :class:`Add`, :class:`Concat`: the merge layers of a Graph.
- :class:`GraphModule`: runs a minidl Graph's nodes in order; submodules named after the nodes.

It is also the kit a layer's ``to_torch``/``from_torch`` recipe receives (``t``): ``t.nn``,
:func:`module`, :func:`dtype` and :func:`np_dtype`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as TF
from torch import nn

from ..functional.geometry import geometry
from ..functional.pool import pool_geometry
from ..layers.base import Unsupported
from .onnx import model_dtype

__all__ = ["PaddedConv2d", "PaddedMaxPool2d", "Add", "Concat", "GraphModule", "module", "dtype", "np_dtype"]
_EXTRAS = ("PaddedConv2d", "PaddedMaxPool2d", "Add", "Concat", "GraphModule")


def module(name):
    """The torch module class called ``name``: one of this module's extras, else ``torch.nn``'s."""
    return globals()[name] if name in _EXTRAS else getattr(nn, name)


def dtype(layer):
    """The torch dtype of a minidl layer's arrays: its first parameter's, else its first
    floating-point buffer's (``BatchNorm1D(affine=False)``), else float32."""
    return torch.float64 if model_dtype(layer) == np.float64 else torch.float32


def np_dtype(m):
    """The numpy dtype of a torch module's weights (first parameter, else first floating-point
    buffer, else float32); refuses anything but float32 and float64."""
    tensors = list(m.parameters()) or [b for b in m.buffers() if b.is_floating_point()]
    name = str(tensors[0].dtype).replace("torch.", "") if tensors else "float32"
    if name not in ("float32", "float64"):
        raise Unsupported(f"with {name} weights; minidl supports float32 and float64. Convert the module "
                          "first (module.float() or module.double())")
    return np.dtype(name)

_TORCH_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def _flat_pads(pads):
    """``((top, bottom), (left, right))`` -> torch's ``(left, right, top, bottom)``."""
    (pt, pb), (pl, pr) = pads
    return pl, pr, pt, pb


class PaddedConv2d(nn.Conv2d):
    """``nn.Conv2d`` with padding 0 after an explicit pad of ``minidl_padding``.

    ``minidl_padding`` is ``((top, bottom), (left, right))`` or ``'same'`` (Keras rule,
    resolved for each input size); the pad holds what ``padding_mode`` says.
    """

    def __init__(self, *args, minidl_padding, **kwargs):
        super().__init__(*args, padding=0, **kwargs)
        self.minidl_padding = minidl_padding

    def pads(self, input_hw):
        return geometry(tuple(input_hw), self.kernel_size, self.stride, self.minidl_padding,
                        self.dilation, "PaddedConv2d").pads

    def forward(self, x):
        pads = _flat_pads(self.pads(x.shape[-2:]))
        if any(pads):
            x = TF.pad(x, pads, mode=_TORCH_PAD_MODE[self.padding_mode])
        return TF.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def extra_repr(self):
        return super().extra_repr() + f", minidl_padding={self.minidl_padding!r}"


class PaddedMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` with padding 0 after a ``-inf`` pad of ``minidl_padding`` ('same').

    The pads (ceil_mode's extra bottom/right included) are minidl's for each input size.
    """

    def __init__(self, kernel_size, stride, dilation, ceil_mode, minidl_padding):
        super().__init__(kernel_size, stride, 0, dilation, ceil_mode=False)
        self.minidl_padding, self.minidl_ceil_mode = minidl_padding, ceil_mode

    def forward(self, x):
        pads = pool_geometry(tuple(x.shape[-2:]), self.kernel_size, self.stride, self.minidl_padding,
                             "PaddedMaxPool2d", self.dilation, self.minidl_ceil_mode).pads
        x = TF.pad(x, _flat_pads(pads), value=float("-inf"))
        return TF.max_pool2d(x, self.kernel_size, self.stride, 0, self.dilation)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, dilation={self.dilation}, "
                f"ceil_mode={self.minidl_ceil_mode}, minidl_padding={self.minidl_padding!r}")


class Add(nn.Module):
    """The element-wise sum of the inputs (minidl's ``layers.Add``)."""

    def forward(self, *inputs):
        out = inputs[0]
        for x in inputs[1:]:
            out = out + x
        return out


class Concat(nn.Module):
    """``torch.cat(inputs, dim=axis)`` (minidl's ``layers.Concat``)."""

    def __init__(self, axis=1):
        super().__init__()
        self.axis = axis

    def forward(self, *inputs):
        return torch.cat(inputs, dim=self.axis)

    def extra_repr(self):
        return f"axis={self.axis}"


class GraphModule(nn.Module):
    """Runs a minidl Graph's nodes in insertion order; node ``name`` is submodule ``name``.

    Parameters
    ----------
    nodes : list of ``(name, module, inputs)``; ``inputs`` are node names or ``'input'``
    output : str, the node whose value is returned
    """

    def __init__(self, nodes, output):
        super().__init__()
        self.node_inputs = {}
        for name, module, inputs in nodes:
            if hasattr(nn.Module, name) or name in vars(self):
                raise ValueError(f"to_torch: Graph node name {name!r} is an attribute of torch.nn.Module; "
                                 "rename the node to convert this graph.")
            self.add_module(name, module)
            self.node_inputs[name] = tuple(inputs)
        self.output = output
        needed = {output}
        for name in reversed(list(self.node_inputs)):
            if name in needed:
                needed.update(i for i in self.node_inputs[name] if i != "input")
        self.plan = [n for n in self.node_inputs if n in needed]

    def forward(self, x):
        values = {"input": x}
        for name in self.plan:
            values[name] = self._modules[name](*(values[i] for i in self.node_inputs[name]))
        return values[self.output]
