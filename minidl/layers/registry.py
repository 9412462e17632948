"""The one registry of layer classes: what save/load rebuilds and ``minidl gradcheck`` checks.

Every built-in layer and loss registers itself with :func:`register_layer` in its own
file, and a user layer does the same, as Keras's ``register_keras_serializable``:
:func:`minidl.save`/:func:`minidl.load` find classes by name in :data:`REGISTRY`, and
``minidl gradcheck`` runs every registered class's :meth:`~minidl.layers.Layer.examples`.
The module sits at the bottom of the layer stack (it imports only the base class), so
no list of layers has to be kept by hand anywhere else.
"""

from __future__ import annotations

from .base import Layer

__all__ = ["REGISTRY", "register_layer"]

#: The registered layer classes by name (the name files store them under).
REGISTRY: dict[str, type] = {}

#: Names the containers keep for themselves (``minidl.graph`` builds them; not in REGISTRY).
_RESERVED = {"Sequential": "minidl.graph.Sequential", "Graph": "minidl.graph.Graph"}


def register_layer(cls):
    """Class decorator: make a layer (or Graph/Sequential subclass) loadable and gradchecked.

    A layer must rebuild itself from ``cls(**layer.get_config())``. A subclass
    of :class:`~minidl.Sequential` or :class:`~minidl.Graph` is rebuilt the
    same way; when that leaves it empty, the stored nodes are added to it.
    ``minidl gradcheck`` checks the configurations the class's
    :meth:`~minidl.layers.Layer.examples` yields, and lists a registered class
    that yields none as not checked.

    Parameters
    ----------
    cls : type
        A subclass of :class:`~minidl.layers.Layer` whose name no other registered class has.

    Returns
    -------
    type
        ``cls`` itself (registered under its ``__name__``).

    Raises
    ------
    TypeError
        Not a Layer subclass.
    ValueError
        The name is taken by another class.

    Examples
    --------
    >>> @register_layer
    ... class MyIdentity(Layer):
    ...     def forward(self, x): return x
    ...     def backward(self, g): return g
    >>> REGISTRY["MyIdentity"] is MyIdentity
    True
    """
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise TypeError(f"register_layer: expected a Layer subclass. Received: {cls!r}")
    name, where = cls.__name__, f"{cls.__module__}.{cls.__qualname__}"
    old = REGISTRY.get(name)
    taken = _RESERVED.get(name, old and f"{old.__module__}.{old.__qualname__}")
    if taken is not None and taken != where:  # a redefinition (same module and name) replaces the old class
        raise ValueError(
            f"register_layer: the name {name!r} is already taken by {taken}; files store layers by "
            f"class name, so {where} would shadow it. Rename your class."
        )
    REGISTRY[name] = cls
    return cls
