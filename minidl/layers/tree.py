"""A layer's tree: its children, parameters, buffers, train/eval mode and state dicts (what
:class:`torch.nn.Module` holds), and walks over a model's layers -- the base
:class:`LayerTree` of :class:`~minidl.layers.Layer`, whose other file, ``base``, holds the
backprop protocol. It imports nothing from :mod:`minidl.layers` (``base`` builds on it): its
type hints name ``LayerTree``, the part of every Layer that they use."""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Iterator

import numpy as np

from ..grad_mode import eval_caches_enabled
from ..parameter import Parameter

_CONTAINERS = (list, tuple, dict, set, frozenset)


class LayerTree:
    """The methods of :class:`~minidl.layers.Layer` that walk its sub-layers and hold and move its
    state: buffers (:meth:`register_buffer`), :meth:`state_dict`, :meth:`load_state_dict` (Layer
    inherits them; they rely on the ``_buffers`` dict set by ``Layer.__init__``)."""

    # ------------------------------------------------------------ parameters
    def named_children(self) -> Iterator[tuple[str, "LayerTree"]]:
        """Direct sub-layers, with their attribute names.

        A layer held in a list, tuple or dict attribute (at any depth) is a
        child too, named as in a :class:`torch.nn.ModuleList` /
        :class:`~torch.nn.ModuleDict`: ``self.parts = [Dense(..), Dense(..)]``
        gives ``"parts.0"`` and ``"parts.1"``, so its parameters are
        ``"parts.0.weight"``, ... A set of layers (no order, so no names) and a
        Parameter inside a container are refused with a TypeError.

        Yields
        ------
        (str, Layer)
            The attribute (or dotted container) name and the child.

        Examples
        --------
        >>> from minidl import Sequential
        >>> from minidl.layers import Dense, ReLU
        >>> [name for name, _ in Sequential(Dense(4, 3), ReLU()).named_children()]
        ['0', '1']
        """
        for name, value in vars(self).items():
            if isinstance(value, LayerTree):
                yield name, value
            elif isinstance(value, _CONTAINERS):
                yield from _held_layers(self, name, value)

    def named_parameters(self, prefix: str = "", remove_duplicate: bool = True
                         ) -> Iterator[tuple[str, Parameter]]:
        """``(dotted_name, Parameter)`` pairs, own parameters first, then children's.

        A parameter shared by several layers (tied weights) is yielded once,
        under its first name, unless ``remove_duplicate=False`` (as in torch).

        Parameters
        ----------
        prefix : str, default ''
            Prepended to every name.
        remove_duplicate : bool, default True

        Yields
        ------
        (str, Parameter)

        Examples
        --------
        >>> from minidl.layers import Conv2D
        >>> [(name, p.shape) for name, p in Conv2D(1, 4, 3).named_parameters()]
        [('weight', (4, 1, 3, 3)), ('bias', (4,))]
        """
        seen: set[int] = set()
        for name, value in self._all_parameters(prefix):
            if not remove_duplicate or id(value) not in seen:
                seen.add(id(value))
                yield name, value

    def _all_parameters(self, prefix):
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value
        for name, child in self.named_children():
            yield from child._all_parameters(f"{prefix}{name}.")

    def parameters(self) -> list[Parameter]:
        """Every trainable :class:`Parameter`, each once.

        Returns
        -------
        list of Parameter
            In :meth:`named_parameters` order (what an optimizer takes).

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> [p.shape for p in Dense(4, 3).parameters()]
        [(3, 4), (3,)]
        """
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        """Reset every parameter's gradient to zero.

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> layer = Dense(4, 3, rng=0)
        >>> _ = layer.backward(np.ones_like(layer(np.ones((2, 4), np.float32))))
        >>> layer.zero_grad()
        >>> float(np.abs(layer.weight.grad).sum())
        0.0
        """
        for p in self.parameters():
            p.zero_grad()

    def num_parameters(self) -> int:
        """The number of trainable scalars (shared parameters counted once).

        Returns
        -------
        int

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> Dense(4, 3).num_parameters()
        15
        """
        return int(sum(p.size for p in self.parameters()))

    def count_params(self) -> int:
        """Keras's name for :meth:`num_parameters`, of which it is an alias: the trainable scalars.

        Unlike Keras's ``count_params``, it leaves out the buffers (BatchNorm's running mean and
        variance), which Keras counts as non-trainable weights; ``model.summary()`` prints both
        counts.

        Returns
        -------
        int

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> Dense(4, 3).count_params() == Dense(4, 3).num_parameters() == 15
        True
        """
        return self.num_parameters()

    # ----------------------------------------------------------------- modes
    @property
    def keeps_caches(self) -> bool:
        """Whether a forward pass keeps what :meth:`backward` needs: in training mode, and
        in eval mode inside :func:`minidl.enable_grad`.

        Returns
        -------
        bool

        Examples
        --------
        >>> import minidl as mdl
        >>> layer = mdl.layers.ReLU().eval()
        >>> layer.keeps_caches
        False
        >>> with mdl.enable_grad():
        ...     layer.keeps_caches
        True
        """
        return self.training or eval_caches_enabled()

    def train(self, mode: bool = True) -> "LayerTree":
        """Set training mode (recursively); returns ``self``.

        Parameters
        ----------
        mode : bool, default True
            False sets evaluation mode (as :meth:`eval`).

        Returns
        -------
        Layer
            ``self``.

        Examples
        --------
        >>> from minidl.layers import Dropout
        >>> Dropout(0.5).train().training
        True
        """
        self.training = bool(mode)
        for _, child in self.named_children():
            child.train(mode)
        return self

    def eval(self) -> "LayerTree":
        """Set evaluation mode (recursively); returns ``self``.

        In eval mode the built-in layers keep no backward caches (inputs,
        im2col columns, argmax indices), so a forward pass holds no memory
        once it returns; ``backward`` after an eval-mode forward raises a
        RuntimeError. ``Trainer.predict`` and ``Trainer.evaluate`` run in eval mode.

        Returns
        -------
        Layer
            ``self``.

        Examples
        --------
        >>> from minidl.layers import Dropout
        >>> Dropout(0.5).eval().training
        False
        """
        return self.train(False)

    # --------------------------------------------------------------- buffers
    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """Add a buffer: an array that is part of the layer's state but not a parameter.

        As :meth:`torch.nn.Module.register_buffer`: BatchNorm's running mean is
        one. The array becomes the attribute ``name`` (reassigning the attribute
        replaces the buffer); it is listed by :meth:`named_buffers`, and when
        ``persistent`` it is saved in :meth:`state_dict` under the dotted name
        (``"0.running_mean"``), loaded by :meth:`load_state_dict`, written by
        :func:`minidl.save` and carried by Trainer checkpoints. It gets no
        ``.grad`` and optimizers never see it. A buffer set to None is skipped.

        Parameters
        ----------
        name : str
            An identifier not already used by another attribute.
        tensor : ndarray or None
        persistent : bool, default True
            False keeps it out of the state dict and files (recomputable state).

        Raises
        ------
        TypeError
            ``name`` not an identifier, ``tensor`` not an ndarray or None.
        ValueError
            ``name`` is taken by an attribute that is not a buffer.
        RuntimeError
            Called before ``super().__init__()``.

        Shape
        -----
        Any: the buffer keeps the array it is given (not a copy).

        Examples
        --------
        >>> from minidl.layers import Layer
        >>> class Counter(Layer):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.register_buffer("calls", np.zeros((), np.int64))
        ...     def forward(self, x):
        ...         self.calls += 1
        ...         return x
        >>> c = Counter(); _ = c(np.ones(2)); _ = c(np.ones(2))
        >>> dict(c.state_dict()), c.parameters()
        ({'calls': array(2)}, [])
        """
        where = f"{type(self).__name__}.register_buffer"
        buffers = vars(self).get("_buffers")
        if buffers is None:
            raise RuntimeError(f"{where}: call super().__init__() in __init__ before registering buffers.")
        if not isinstance(name, str) or not name.isidentifier():
            raise TypeError(f"{where}: name must be a str that is a Python identifier (no '.'). "
                            f"Received: name={name!r}")
        if name in vars(self) and name not in buffers:
            raise ValueError(f"{where}: attribute {name!r} already exists and is not a buffer; "
                             "pick another name.")
        if tensor is not None and not isinstance(tensor, np.ndarray):
            raise TypeError(f"{where}: buffer {name!r} must be a numpy.ndarray or None. "
                            f"Received: {type(tensor).__name__}. Convert it with np.asarray(...).")
        if not isinstance(persistent, (bool, np.bool_)):
            raise TypeError(f"{where}: persistent must be a bool. Received: persistent={persistent!r}")
        buffers[name] = bool(persistent)
        setattr(self, name, tensor)

    def _own_buffers(self):
        """``(name, array, persistent)`` of this layer's buffers that are not None."""
        for name, persistent in vars(self).get("_buffers", {}).items():
            value = getattr(self, name, None)
            if value is not None:
                yield name, value, persistent

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
                      ) -> Iterator[tuple[str, np.ndarray]]:
        """``(dotted_name, array)`` of every buffer (persistent or not), own first, then children's.

        As :meth:`torch.nn.Module.named_buffers`; an array shared by several
        layers is yielded once unless ``remove_duplicate=False``.

        Parameters
        ----------
        prefix : str, default ''
            Prepended to every name.
        recurse : bool, default True
            False: this layer's own buffers only.
        remove_duplicate : bool, default True

        Yields
        ------
        (str, ndarray)
            The dotted name and the buffer itself (not a copy).

        Examples
        --------
        >>> from minidl.layers import BatchNorm1D
        >>> [name for name, _ in BatchNorm1D(3).named_buffers()]
        ['running_mean', 'running_var', 'num_batches_tracked']
        """
        seen: set[int] = set()
        for name, value in self._all_buffers(prefix, recurse):
            if not remove_duplicate or id(value) not in seen:
                seen.add(id(value))
                yield name, value

    def _all_buffers(self, prefix, recurse):
        for name, value, _ in self._own_buffers():
            yield prefix + name, value
        if recurse:
            for name, child in self.named_children():
                yield from child._all_buffers(f"{prefix}{name}.", True)

    def buffers(self, recurse: bool = True) -> list[np.ndarray]:
        """Every buffer array, each once (see :meth:`register_buffer`).

        Parameters
        ----------
        recurse : bool, default True
            False: this layer's own buffers only.

        Returns
        -------
        list of ndarray
            The buffers themselves (not copies), in :meth:`named_buffers` order.

        Examples
        --------
        >>> from minidl.layers import BatchNorm1D
        >>> [b.shape for b in BatchNorm1D(3).buffers()]
        [(3,), (3,), ()]
        """
        return [b for _, b in self.named_buffers(recurse=recurse)]

    def _state_slots(self, prefix: str = ""):
        """``(dotted name, owner layer, attribute, is_parameter)`` of everything in the state
        dict, in torch's order: each layer's parameters, then its persistent buffers, then
        its children's."""
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, self, name, True
        for name, _, persistent in self._own_buffers():
            if persistent:
                yield prefix + name, self, name, False
        for name, child in self.named_children():
            yield from child._state_slots(f"{prefix}{name}.")

    # ------------------------------------------------------------ state dict
    def state_dict(self, *, keep_vars: bool = False) -> "OrderedDict[str, np.ndarray]":
        """Copies of every parameter's data and every persistent buffer, under PyTorch's
        dotted names and in its order (a layer's parameters, its buffers, then its children).

        A parameter shared by several layers appears under each of its names,
        as in :meth:`torch.nn.Module.state_dict`.

        Parameters
        ----------
        keep_vars : bool, default False
            As in torch: True gives the :class:`~minidl.Parameter` objects and the buffer
            arrays themselves, not copies (what a writer reads without copying twice).

        Returns
        -------
        collections.OrderedDict of str to ndarray
            Copies: changing them does not change the layer (with ``keep_vars``, the
            layer's own Parameters and buffers).

        Examples
        --------
        >>> from minidl import Sequential
        >>> from minidl.layers import Dense, ReLU
        >>> model = Sequential(Dense(4, 3, rng=0), ReLU(), Dense(3, 2, rng=0))
        >>> {name: a.shape for name, a in model.state_dict().items()}
        {'0.weight': (3, 4), '0.bias': (3,), '2.weight': (2, 3), '2.bias': (2,)}
        """
        if keep_vars:
            return OrderedDict((name, getattr(owner, attr)) for name, owner, attr, _ in self._state_slots())
        return OrderedDict((name, np.array(_slot_value(owner, attr, is_param), copy=True))
                           for name, owner, attr, is_param in self._state_slots())

    def load_state_dict(self, state_dict, strict: bool = True) -> None:
        """Copy arrays into the parameters and persistent buffers, after checking every key,
        shape and dtype.

        Nothing is assigned unless everything matches. With ``strict=False``
        missing and unexpected keys are ignored (shapes and dtypes still checked).

        Parameters
        ----------
        state_dict : mapping of str to ndarray
            As :meth:`state_dict` returns it; the arrays are copied in.
        strict : bool, default True
            Require exactly the keys of :meth:`state_dict`.

        Raises
        ------
        KeyError, ValueError, TypeError
            Missing or unexpected keys (with ``strict``), another shape, another dtype
            (the message lists every mismatch).

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> a, b = Dense(4, 3, rng=0), Dense(4, 3, rng=1)
        >>> b.load_state_dict(a.state_dict())
        >>> np.array_equal(a.weight.data, b.weight.data)
        True
        """
        where = f"{type(self).__name__}.load_state_dict"
        slots = OrderedDict((name, (owner, attr, is_param)) for name, owner, attr, is_param in self._state_slots())
        missing = [k for k in slots if k not in state_dict]
        unexpected = [k for k in state_dict if k not in slots]
        problems = []
        if strict and missing:
            problems.append(f"missing keys {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys {unexpected}")
        for key, slot in slots.items():
            if key not in state_dict:
                continue
            value, target = np.asarray(state_dict[key]), _slot_value(*slot)
            if value.shape != target.shape:
                problems.append(f"{key!r}: expected shape {target.shape}, got {value.shape}")
            elif value.dtype != target.dtype:
                problems.append(
                    f"{key!r}: expected dtype {target.dtype}, got {value.dtype} "
                    f"(cast with .astype(np.{target.dtype}))"
                )
        if problems:
            raise ValueError(
                f"{where}: the state dict does not match this model; nothing was loaded. "
                + "; ".join(problems) + f". Expected keys: {list(slots)}."
            )
        for key, (owner, attr, is_param) in slots.items():
            if key in state_dict:
                target = _slot_value(owner, attr, is_param)
                if target.flags.writeable:
                    np.copyto(target, np.asarray(state_dict[key]))
                elif is_param:  # a parameter still holding a deferred_init placeholder
                    param = getattr(owner, attr)
                    param.data = np.array(state_dict[key], copy=True)
                    param.grad = np.zeros_like(param.data)
                else:  # a buffer still holding a deferred_init placeholder
                    setattr(owner, attr, np.array(state_dict[key], copy=True))


def _held_layers(owner: LayerTree, path: str, value):
    """``(dotted path, layer)`` for each Layer inside the container ``value`` (depth first)."""
    if isinstance(value, (set, frozenset)):
        if any(isinstance(v, (LayerTree, Parameter)) for v in value):
            raise TypeError(
                f"{owner!r}: attribute {path.split('.')[0]!r} holds layers or parameters in a "
                f"{type(value).__name__}, which has no order to name them by. Use a list, a "
                "tuple or a dict (names 'parts.0.weight' or 'parts.key.weight', as torch's "
                "ModuleList / ModuleDict)."
            )
        return
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if isinstance(item, LayerTree):
            yield f"{path}.{key}", item
        elif isinstance(item, Parameter):
            raise TypeError(
                f"{owner!r}: attribute {path.split('.')[0]!r} holds a Parameter at {path}.{key}; "
                "a Parameter is found only as an attribute of its own (self.name = Parameter(...)), "
                "or inside a Layer held there."
            )
        elif isinstance(item, _CONTAINERS):
            yield from _held_layers(owner, f"{path}.{key}", item)


@contextlib.contextmanager
def layer_state_restored(model: LayerTree):
    """Put back every attribute of ``model`` and of every layer inside it on exit.

    Shallow (a dict copy per layer, no array is copied): what a forward
    replaces (caches, mode flags) comes back as it was.
    """
    saved = [(layer, dict(vars(layer))) for _, layer in walk_layers(model, "")]
    try:
        yield
    finally:
        for layer, state in saved:
            vars(layer).clear()
            vars(layer).update(state)


def walk_layers(layer: LayerTree, path: str, _seen=None):
    """Yield ``(dotted_path, layer)`` for ``layer`` and every layer nested in it (from the root,
    ``path=""``: ``("", model)``, ``("0", ...)``, ``("block.conv", ...)``)."""
    _seen = set() if _seen is None else _seen
    if id(layer) in _seen:  # a cycle cannot be built through add(), but be safe
        return
    _seen.add(id(layer))
    yield path, layer
    for child, sub in layer.named_children():
        yield from walk_layers(sub, f"{path}.{child}" if path else child, _seen)


def _slot_value(owner, attr: str, is_param: bool) -> np.ndarray:
    value = getattr(owner, attr)
    return value.data if is_param else value
