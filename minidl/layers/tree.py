"""A layer's tree: its children, its parameters, its train/eval mode, and walks over a model's
layers -- the part of :class:`~minidl.layers.Layer` (its base :class:`LayerTree`) that
recurses into sub-layers. It imports nothing from :mod:`minidl.layers` (``base`` builds on it):
its type hints name ``LayerTree``, the part of every Layer that they use."""

from __future__ import annotations

import contextlib
from typing import Iterator

from ..grad_mode import eval_caches_enabled
from ..parameter import Parameter

_CONTAINERS = (list, tuple, dict, set, frozenset)


class LayerTree:
    """The methods of :class:`~minidl.layers.Layer` that walk its sub-layers (Layer inherits them)."""

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
