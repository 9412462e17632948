"""How a layer says what it is in ONNX and in PyTorch: the recipes :mod:`minidl.interop` reads.

Each layer writes its recipes in its own file, next to its math, as Keras layers carry
their ``get_config`` and ``torch.autograd.Function`` its ``symbolic`` for the ONNX
exporter; :mod:`minidl.interop` keeps no list of layers. A layer that is one ONNX node
on its inputs declares :attr:`~InteropMixin.onnx_op`; one whose torch twin is a
``torch.nn`` module built from its hyper-parameters declares
:attr:`~InteropMixin.torch_modules` and :attr:`~InteropMixin.torch_args`. A layer with
more to say overrides :meth:`~InteropMixin.to_onnx`, :meth:`~InteropMixin.to_torch`
or :meth:`~InteropMixin.from_torch`. Nothing here imports onnx or torch: interop passes
in what a recipe builds with.
"""

from __future__ import annotations

import numpy as np

from ..functional.geometry import resolve_padding

__all__ = ["InteropMixin", "Unsupported", "recipe_class", "onnx_pads", "torch_padding"]


class Unsupported(TypeError):
    """Raised by an interop recipe for a configuration with no form there.

    The message says why; :mod:`minidl.interop` and :func:`minidl.export.to_onnx` raise a
    TypeError that adds where the layer sits in the model.

    Parameters
    ----------
    *args
        The reason, as for any exception (``Unsupported("with dim=None (set dim)")``).
    **kwargs
        None are used (what :class:`TypeError` accepts).

    Examples
    --------
    >>> from minidl.layers import Unsupported
    >>> issubclass(Unsupported, TypeError)
    True
    """


class InteropMixin:
    """The interop recipes of :class:`~minidl.layers.Layer` (defaults: none).

    Examples
    --------
    >>> from minidl.layers import LeakyReLU
    >>> LeakyReLU.onnx_op, LeakyReLU.onnx_attrs, LeakyReLU.torch_modules, LeakyReLU.torch_args
    ('LeakyRelu', {'alpha': 'negative_slope'}, ('LeakyReLU',), {'negative_slope': 'negative_slope'})
    """

    #: The ONNX op of a layer that is one node on its inputs (None: no such op).
    onnx_op: str | None = None
    #: That node's attributes, ``{ONNX attribute: layer attribute}``.
    onnx_attrs: dict = {}
    #: Names of the torch modules that are this layer (``torch.nn``'s, or the extras of
    #: :mod:`minidl.interop._torch`); :func:`~minidl.interop.to_torch` builds the first,
    #: :func:`~minidl.interop.from_torch` maps each back to this class.
    torch_modules: tuple = ()
    #: The torch module's constructor arguments, ``{torch argument: layer attribute}``.
    torch_args: dict = {}

    def to_onnx(self, g, inputs, input_shape):
        """Add the ONNX nodes computing this layer in eval mode; return the output's name.

        The default emits :attr:`onnx_op` with :attr:`onnx_attrs` read off the layer.

        Parameters
        ----------
        g : minidl.interop.onnx.LayerScope
            ``g.node(op, inputs, **attributes)`` adds a node and returns its output's
            name; ``g.const(name, array, dtype=None)`` adds an initializer named
            after the layer's state-dict prefix (``"0.weight"``) and returns its name;
            ``g.dtype`` is the model's float dtype.
        inputs : list of str
            The names of the layer's inputs in the ONNX graph.
        input_shape : tuple of int
            The shape of the first input for a batch of one (for input-dependent pads).

        Returns
        -------
        str
            The name of the node output holding the layer's output.

        Raises
        ------
        Unsupported
            No ONNX form (the message says why; the exporter adds where).

        Shape
        -----
        ``input_shape``: the input's, with a batch of one, e.g. ``(1, C, H, W)``.
        """
        if self.onnx_op is None:
            raise Unsupported("has no ONNX form")
        return g.node(self.onnx_op, inputs, **{k: getattr(self, a) for k, a in self.onnx_attrs.items()})

    def to_torch(self, t):
        """The ``torch.nn`` module computing this layer (its state is copied in afterwards).

        The default builds ``torch_modules[0]`` with :attr:`torch_args` read off the layer.

        Parameters
        ----------
        t : module
            :mod:`minidl.interop._torch`: ``t.nn`` is ``torch.nn``, ``t.module(name)``
            a torch.nn class or one of minidl's extras, ``t.dtype(layer)`` the torch
            dtype of the layer's arrays.

        Returns
        -------
        torch.nn.Module

        Raises
        ------
        Unsupported
            No torch equivalent.
        """
        if not self.torch_modules:
            raise Unsupported("has no torch.nn equivalent")
        return t.module(self.torch_modules[0])(**{k: getattr(self, a) for k, a in self.torch_args.items()})

    @classmethod
    def from_torch(cls, module, t):
        """The layer equivalent to ``module`` (one of :attr:`torch_modules`), without its state.

        The default calls ``cls`` with :attr:`torch_args` read off the module.

        Parameters
        ----------
        module : torch.nn.Module
        t : module
            As for :meth:`to_torch`; ``t.np_dtype(module)`` is the numpy dtype of its weights.

        Returns
        -------
        Layer

        Raises
        ------
        Unsupported
            An option minidl cannot represent (the message names it).
        """
        return cls(**{a: getattr(module, k) for k, a in cls.torch_args.items()})


def recipe_class(layer_cls, recipe: str):
    """The class whose ``recipe`` (``"to_onnx"``, ``"to_torch"``) applies to ``layer_cls``, or None.

    A subclass inherits its parent's recipes unless it computes something else: a class
    that overrides ``forward`` below the recipe's class has none until it writes its own
    (a user's ``class MyReLU(ReLU)`` with its own forward is not exported as ``Relu``).
    """
    declared = {"to_onnx": ("onnx_op", "to_onnx"), "to_torch": ("torch_modules", "to_torch")}[recipe]
    owner = next((k for k in layer_cls.__mro__ if any(n in vars(k) for n in declared)), None)
    forward = next((k for k in layer_cls.__mro__ if "forward" in vars(k)), None)
    if owner is None or owner is InteropMixin or forward is None or not issubclass(owner, forward):
        return None
    return owner


def onnx_pads(pads) -> list:
    """minidl's ``((top, bottom), (left, right))`` as ONNX's ``[top, left, bottom, right]``."""
    (pt, pb), (pl, pr) = pads
    return [int(pt), int(pl), int(pb), int(pr)]


def torch_padding(padding, kernel_size):
    """minidl's symmetric ``padding`` as torch's: an int, a pair, or 0 for 'valid'."""
    if isinstance(padding, str):
        return 0
    if isinstance(padding, (int, np.integer)):
        return int(padding)
    if all(isinstance(p, (int, np.integer)) for p in padding):
        return tuple(int(p) for p in padding)
    (pt, _), (pl, _) = resolve_padding(padding, (1, 1), kernel_size)
    return pt, pl
