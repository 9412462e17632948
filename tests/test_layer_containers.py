"""Layers held in list, tuple and dict attributes are children, named as torch's ModuleList/ModuleDict."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as mdl
from minidl import layers as L
from minidl import optim
from minidl.losses import SoftmaxCrossEntropy


def rng(seed=0):
    return np.random.default_rng(seed)


class Stack(L.Layer):
    """Dense layers in a list, with ReLUs in a tuple and a dict head: every kind of container."""

    def __init__(self, seed=0):
        super().__init__()
        r = rng(seed)
        self.scale = mdl.Parameter(np.ones(1, np.float32))
        self.parts = [L.Dense(4, 6, rng=r), L.Dense(6, 6, rng=r)]
        self.acts = (L.ReLU(), L.ReLU())
        self.heads = {"out": L.Dense(6, 6, rng=r)}

    def forward(self, x):
        self.save_for_backward(x)
        for part, act in zip(self.parts, self.acts):
            x = act(part(x))
        return self.heads["out"](x) * self.scale.data

    def backward(self, grad_output):
        out = self.heads["out"]
        y = self.check_grad_output(grad_output, (self.saved_values[0].shape[0], 6), np.float32)
        g = out.backward(y * self.scale.data)
        for part, act in zip(reversed(self.parts), reversed(self.acts)):
            g = part.backward(act.backward(g))
        return g


def test_layers_in_containers_are_found_with_torch_names():
    model = Stack()
    assert [n for n, _ in model.named_children()] == ["parts.0", "parts.1", "acts.0", "acts.1", "heads.out"]
    assert list(model.state_dict()) == ["scale", "parts.0.weight", "parts.0.bias", "parts.1.weight",
                                        "parts.1.bias", "heads.out.weight", "heads.out.bias"]
    assert len(model.parameters()) == 7
    model.eval()
    assert not any(layer.training for layer in (*model.parts, *model.acts, model.heads["out"]))
    model.train()
    assert all(layer.training for layer in (*model.parts, *model.acts, model.heads["out"]))


def test_an_optimizer_trains_layers_held_in_a_list():
    model = Stack()
    x = rng(1).standard_normal((16, 4)).astype(np.float32)
    y = rng(2).integers(0, 3, 16)
    loss = SoftmaxCrossEntropy()
    opt = optim.SGD(model.parameters(), lr=0.5)
    before = [p.data.copy() for p in model.parts[0].parameters()]
    first = loss(model(x), y)
    for _ in range(30):
        model.zero_grad()
        loss(model(x), y)
        model.backward(loss.backward())
        opt.step()
    assert loss(model(x), y) < 0.5 * first
    assert all(not np.array_equal(b, p.data) for b, p in zip(before, model.parts[0].parameters()))


def test_state_dict_round_trip_and_save_load(tmp_path):
    a, b = Stack(seed=0), Stack(seed=1)
    b.load_state_dict(a.state_dict())
    x = rng(3).standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_array_equal(a(x), b(x))
    b.heads["out"].weight = b.parts[1].weight  # tied weights inside containers survive save/load
    mdl.register_layer(Stack)
    path = tmp_path / "stack.npz"
    mdl.save(b, path)
    c = mdl.load(path)
    assert c.heads["out"].weight is c.parts[1].weight
    np.testing.assert_array_equal(c(x), b(x))


def test_nested_containers_get_dotted_names():
    class Nested(L.Layer):
        def __init__(self):
            super().__init__()
            self.blocks = [[L.Dense(2, 2, rng=rng())], {"a": (L.Dense(2, 1, rng=rng()),)}]

    assert list(Nested().state_dict()) == ["blocks.0.0.weight", "blocks.0.0.bias",
                                          "blocks.1.a.0.weight", "blocks.1.a.0.bias"]


def test_a_set_of_layers_or_a_parameter_in_a_list_is_refused():
    class InSet(L.Layer):
        def __init__(self):
            super().__init__()
            self.parts = {L.ReLU()}
            self.shapes = {(1, 2), (3, 4)}  # a set of anything else is fine

    class ParamInList(L.Layer):
        def __init__(self):
            super().__init__()
            self.scales = [mdl.Parameter(np.ones(2))]

    with pytest.raises(TypeError, match=r"InSet\(\): attribute 'parts' holds layers .* in a set.*list"):
        InSet().parameters()
    with pytest.raises(TypeError, match=r"attribute 'scales' holds a Parameter at scales\.0"):
        ParamInList().parameters()


def test_state_dict_keys_match_torch_modulelist_and_moduledict():
    torch = pytest.importorskip("torch")

    class TorchStack(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(1))
            self.parts = torch.nn.ModuleList([torch.nn.Linear(4, 6), torch.nn.Linear(6, 6)])
            self.acts = torch.nn.ModuleList([torch.nn.ReLU(), torch.nn.ReLU()])
            self.heads = torch.nn.ModuleDict({"out": torch.nn.Linear(6, 6)})

    theirs = TorchStack().state_dict()
    ours = Stack().state_dict()
    assert list(ours) == list(theirs)
    model = Stack()
    model.load_state_dict({k: v.numpy() for k, v in theirs.items()})
    np.testing.assert_array_equal(model.parts[1].bias.data, theirs["parts.1.bias"].numpy())
