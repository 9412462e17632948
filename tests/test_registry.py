"""Issue 18: a layer registers itself, and save/load and ``minidl gradcheck`` read that one registry."""

from __future__ import annotations

import inspect

import pytest

import minidl as mdl
from minidl import layers, losses
from minidl.io import architecture
from minidl.layers import registry

#: Every built-in layer and loss class (the public Layer subclasses of minidl.layers and minidl.losses).
BUILTINS = sorted({cls for module in (layers, losses) for cls in vars(module).values()
                   if isinstance(cls, type) and issubclass(cls, layers.Layer)
                   and cls not in (layers.Layer, losses.Loss) and not cls.__name__.startswith("_")},
                  key=lambda cls: cls.__name__)


def test_one_registry_under_every_old_name():
    assert architecture.REGISTRY is registry.REGISTRY is mdl.io._REGISTRY
    assert mdl.register_layer is mdl.io.register_layer is architecture.register_layer is registry.register_layer


@pytest.mark.parametrize("cls", BUILTINS, ids=lambda cls: cls.__name__)
def test_every_builtin_registers_itself_in_its_own_file(cls):
    """No hand-kept list: the decorator sits on the class, in the file that defines it."""
    assert registry.REGISTRY[cls.__name__] is cls
    assert inspect.getsource(cls).startswith("@register_layer\nclass ")
    assert len(BUILTINS) == 21


def test_io_keeps_no_list_of_layers():
    source = inspect.getsource(architecture)
    assert not any(f"_layers.{cls.__name__}" in source for cls in BUILTINS)


@pytest.mark.parametrize("name", ["Sequential", "Graph"])
def test_the_container_names_stay_reserved(name):
    """The registry sits below minidl.graph (it cannot import it) and still keeps these names."""
    with pytest.raises(ValueError, match=f"'{name}' is already taken by minidl.graph.{name}.*Rename"):
        registry.register_layer(type(name, (layers.Layer,), {}))
    assert name not in registry.REGISTRY
    try:
        assert registry.register_layer(mdl.Sequential) is mdl.Sequential  # the container itself is no clash
    finally:
        registry.REGISTRY.pop("Sequential", None)
