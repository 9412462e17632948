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
    (mdl.layers, "MaxPool2d", "MaxPool2D"), (mdl.layers, "AdaptiveAvgPool2d", "GlobalAvgPool2D"),
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


# ----------------------------------------------------------- summary() without an input shape
def test_summary_without_input_shape_takes_a_first_dense_s_features():
    model = mdl.Sequential(L.Dense(64, 32, rng=0), L.ReLU(), L.Dense(32, 10, rng=0))
    text = model.summary()
    assert text == model.summary((64,))
    assert "(N, 64)" in text and "(N, 10)" in text
    assert text.splitlines()[-3:] == ["Total params: 2,410", "Trainable params: 2,410", "Non-trainable params: 0"]


def test_summary_without_input_shape_after_a_first_conv_shows_what_it_knows():
    model = mdl.models.reference_cnn(rng=0)
    text = model.summary()  # a TypeError (missing input_shape) before
    rows = {r.split()[0]: r for r in text.splitlines() if r[:1].isdigit()}
    assert "(N, 16, ?, ?)" in rows["0"] and rows["0"].rstrip().endswith("160")
    assert "(N, 32, ?, ?)" in rows["5"] and "(N, ?)" in rows["6"]  # MaxPool, Flatten: they depend on H, W
    assert "(N, 10)" in rows["7"] and rows["7"].rstrip().endswith("1,290")  # the Dense fixes its own input
    assert "Total params: 6,090" in text and "summary((1, H, W))" in text
    graph = mdl.models.residual_cnn(rng=0).summary()
    assert "(N, 16, ?, ?)" in next(r for r in graph.splitlines() if r.startswith("skip (Add)"))
    assert "(N, 10)" in graph and "?" not in model.summary((1, 8, 8))


def test_summary_counts_buffers_as_non_trainable_as_keras():
    model = mdl.models.digits_best(rng=0)
    lines = model.summary((1, 8, 8)).splitlines()
    frozen = sum(b.size for name, b in model.named_buffers() if "running" in name)  # 4 BatchNorm2D: 2 * 192
    assert frozen == 384
    assert lines[-3:] == [f"Total params: {model.num_parameters() + frozen:,}",
                          f"Trainable params: {model.num_parameters():,}", f"Non-trainable params: {frozen:,}"]


def test_summary_refuses_what_it_cannot_infer_with_a_clear_message():
    with pytest.raises(ValueError, match=r"Sequential.summary: the first layer, Flatten\(\), does not fix .*"
                                         r"summary\(\(1, 28, 28\)\)"):
        mdl.Sequential(L.Flatten(), L.Dense(64, 10, rng=0)).summary()
    with pytest.raises(TypeError, match=r"input_shape must be the shape of one sample.*Received: 64"):
        mdl.Sequential(L.Dense(64, 10, rng=0)).summary(64)


def test_count_params_is_keras_s_name_for_num_parameters():
    model = mdl.models.digits_best(rng=0)
    assert model.count_params() == model.num_parameters() == 67_946
    assert L.Dense(4, 3).count_params() == 15
