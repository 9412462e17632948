"""Buffers and state dicts of :class:`~minidl.layers.Layer` (a mixin of the base class)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterator

import numpy as np

from ..parameter import Parameter

__all__ = ["StateDictMixin"]


class StateDictMixin:
    """The part of :class:`~minidl.layers.Layer` that holds and moves its state: buffers
    (:meth:`register_buffer`), :meth:`state_dict` and :meth:`load_state_dict`.

    Relies on the layer's ``_buffers`` dict (set by ``Layer.__init__``) and on
    :meth:`named_children`.
    """

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


def _slot_value(owner, attr: str, is_param: bool) -> np.ndarray:
    value = getattr(owner, attr)
    return value.data if is_param else value
