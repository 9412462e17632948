"""The habits PyTorch and Keras users bring (issue 21): torch's names answered with minidl's,
Keras's ``model.add(layer)``, one global seed (``mdl.manual_seed``)."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as mdl
from minidl import layers as L
from minidl.layers import _init


@pytest.fixture
def global_seed_reset():
    yield
    _init._GLOBAL[0] = None  # later tests get unseeded layers again, as without manual_seed


@pytest.mark.parametrize("module, name, hint", [
    (mdl.layers, "Conv2d", "Conv2D"), (mdl.layers, "BatchNorm2d", "BatchNorm2D"), (mdl.layers, "Linear", "Dense"),
    (mdl.layers, "MaxPool2d", "MaxPool2D"), (mdl.layers, "AdaptiveAvgPool2d", "AdaptiveAvgPool2D"),
    (mdl.layers, "GlobalMaxPooling2D", "GlobalMaxPool2D"), (mdl.layers, "Conv1d", "Conv1D"),
    (mdl.losses, "CrossEntropyLoss", "SoftmaxCrossEntropy"), (mdl.losses, "MSELoss", "MSE"),
    (mdl.layers, "Sequential", "minidl.Sequential"), (mdl.layers, "Dropuot", "Dropout"),
])
def test_a_torch_name_is_answered_with_minidls(module, name, hint):
    with pytest.raises(AttributeError, match=rf"no attribute '{name}'\. Did you mean {hint}\?"):
        getattr(module, name)
    assert not hasattr(module, name)


def test_an_unknown_name_stays_a_plain_attribute_error():
    with pytest.raises(AttributeError) as info:
        mdl.layers.Transformer  # noqa: B018
    assert "Did you mean" not in str(info.value)
    assert getattr(mdl.layers, "Transformer", None) is None


def test_keras_model_add_appends_and_graph_add_still_works(tmp_path):
    model = mdl.Sequential()
    model.add(L.Flatten())
    model.add(L.Dense(64, 10, rng=0))
    assert [type(layer).__name__ for _, layer in model.named_children()] == ["Flatten", "Dense"]
    assert model(np.zeros((2, 1, 8, 8), np.float32)).shape == (2, 10)
    model.save(tmp_path / "m.npz")
    assert repr(mdl.load(tmp_path / "m.npz")) == repr(model)
    g = mdl.Graph()
    g.add("a", L.ReLU())
    with pytest.raises(TypeError):
        g.add(L.ReLU())  # a Graph's nodes have names: no Keras form there


def test_manual_seed_makes_unseeded_layers_reproducible(global_seed_reset):
    mdl.manual_seed(0)
    a = [L.Dense(3, 3), L.Conv2D(1, 2, 3)]
    mdl.manual_seed(0)
    b = [L.Dense(3, 3), L.Conv2D(1, 2, 3)]
    for x, y in zip(a, b):
        assert all(np.array_equal(p.data, q.data) for p, q in zip(x.parameters(), y.parameters()))
    assert not np.array_equal(a[0].weight.data, L.Dense(3, 3).weight.data)  # the next draw differs
    mdl.manual_seed(0)
    assert not np.array_equal(L.Dense(3, 3, rng=5).weight.data, b[0].weight.data)  # rng= still wins
    for bad, exc in (("0", TypeError), (True, TypeError), (-1, ValueError)):
        with pytest.raises(exc, match="minidl.manual_seed: seed"):
            mdl.manual_seed(bad)
