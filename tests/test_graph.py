"""Graph and Sequential: building, forward/backward (fan-out, nesting), parameters,
state dicts (PyTorch-compatible names, checked before assigning), modes, summary."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as mdl
from minidl import layers, losses, models
from minidl.graph import INPUT, Graph, Sequential
from minidl.testing import assert_gradients, tie_free

RNG = np.random.default_rng


# ----------------------------------------------------------------------- helpers
def residual_block(channels, rng, dtype=np.float64) -> Graph:
    """conv -> relu -> conv, + skip from the block input, -> relu."""
    g = Graph()
    g.add("conv1", layers.Conv2D(channels, channels, 3, padding="same", dtype=dtype, rng=rng), "input")
    g.add("relu1", layers.ReLU(), "conv1")
    g.add("conv2", layers.Conv2D(channels, channels, 3, padding="same", dtype=dtype, rng=rng), "relu1")
    g.add("sum", layers.Add(), ["input", "conv2"])
    g.add("relu2", layers.ReLU(), "sum")
    return g


def all_layers(layer):
    yield layer
    for _, child in layer.named_children():
        yield from all_layers(child)


def snapshot(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def assert_state_equal(model, snap):
    state = model.state_dict()
    assert list(state) == list(snap)
    for k in snap:
        np.testing.assert_array_equal(state[k], snap[k], err_msg=k)


def fanout_graph(rng):
    """x -> dense_a, x -> dense_b, sum = a + b (x fans out to two branches)."""
    g = Graph()
    g.add("a", layers.Dense(3, 2, dtype=np.float64, rng=rng), "input")
    g.add("b", layers.Dense(3, 2, dtype=np.float64, rng=rng), "input")
    g.add("sum", layers.Add(), ["a", "b"])
    return g


# ----------------------------------------------------------------- build errors
def test_add_rejects_duplicate_names():
    g = Graph()
    g.add("relu", layers.ReLU(), "input")
    with pytest.raises(ValueError, match=r"'relu'.*(unique|already|duplicate)"):
        g.add("relu", layers.ReLU(), "relu")


def test_add_rejects_unknown_input_and_lists_known_nodes():
    g = Graph()
    g.add("first", layers.ReLU(), "input")
    g.add("second", layers.ReLU(), "first")
    with pytest.raises(ValueError, match="missing") as info:
        g.add("third", layers.ReLU(), ["second", "missing"])
    msg = str(info.value)
    for known in ("input", "first", "second"):
        assert repr(known) in msg or known in msg
    assert "third" in msg
    # nothing was added
    assert list(g.nodes) == ["first", "second"]


def test_add_rejects_forward_reference():
    """A node can only read nodes that already exist (this keeps the graph acyclic)."""
    g = Graph()
    with pytest.raises(ValueError, match="later"):
        g.add("a", layers.ReLU(), "later")


@pytest.mark.parametrize("name", ["conv.1", ".x", "a.b.c"])
def test_add_rejects_names_with_dots(name):
    g = Graph()
    with pytest.raises(ValueError, match=r"'\.'") as info:
        g.add(name, layers.ReLU(), "input")
    assert name in str(info.value)


def test_add_rejects_one_layer_instance_at_two_nodes():
    g = Graph()
    relu = layers.ReLU()
    g.add("r1", relu, "input")
    with pytest.raises(ValueError, match=r"'r1'") as info:
        g.add("r2", relu, "r1")
    assert "instance" in str(info.value)
    assert list(g.nodes) == ["r1"]


def _share_in_nested_graph():
    shared = layers.Dense(3, 3, dtype=np.float64, rng=RNG(0))
    inner = Graph()
    inner.add("d", shared, "input")
    outer = Graph()
    outer.add("d", shared, "input")
    return outer, lambda: outer.add("inner", inner, "d")


def _share_between_two_sequentials():
    relu = layers.ReLU()
    g = Graph()
    g.add("b1", Sequential(relu), "input")
    return g, lambda: g.add("b2", Sequential(relu), "input")


@pytest.mark.parametrize("build", [_share_in_nested_graph, _share_between_two_sequentials],
                         ids=["graph-in-graph", "two-sequentials"])
def test_add_rejects_layer_instance_shared_through_nesting(build):
    _, add_again = build()
    with pytest.raises(ValueError, match="instance"):
        add_again()


def test_layer_shared_through_nesting_breaks_gradients():
    """Why the rule above matters: a shared layer's cache holds only its last input. Shown on
    the public API with a layer that applies one Dense twice (what a shared node would do)."""
    class TwiceTheSameDense(layers.Layer):
        def __init__(self, dense):
            super().__init__()
            self.dense = dense

        def forward(self, x):
            return self.dense(self.dense(x))  # the second call replaces the first one's cache

        def backward(self, grad_output):
            return self.dense.backward(self.dense.backward(grad_output))

    layer = TwiceTheSameDense(layers.Dense(3, 3, dtype=np.float64, rng=RNG(0)))
    assert not mdl.gradcheck(layer, RNG(1).standard_normal((2, 3))).passed


def test_add_rejects_reserved_input_name_empty_name_non_layers_and_no_inputs():
    g = Graph()
    with pytest.raises(ValueError, match="input"):
        g.add("input", layers.ReLU(), "input")
    with pytest.raises(TypeError, match="name"):
        g.add("", layers.ReLU(), "input")
    with pytest.raises(TypeError, match="name"):
        g.add(3, layers.ReLU(), "input")
    with pytest.raises(TypeError, match="Layer"):
        g.add("f", lambda x: x, "input")
    with pytest.raises(ValueError, match="input"):
        g.add("r", layers.ReLU(), [])
    with pytest.raises(ValueError, match="itself"):
        g.add("me", g, "input")
    assert len(g) == 0


def test_set_output_rejects_unknown_node():
    g = Graph()
    g.add("a", layers.ReLU(), "input")
    with pytest.raises(ValueError, match=r"'nope'.*'a'"):
        g.set_output("nope")


def test_empty_graph_forward_raises():
    with pytest.raises(RuntimeError, match="empty"):
        Graph().forward(np.ones((1, 2)))


def test_backward_before_forward_raises():
    g = fanout_graph(RNG(0))
    with pytest.raises(RuntimeError, match="forward"):
        g.backward(np.ones((2, 2)))


# -------------------------------------------------------------- forward values
def test_output_is_last_node_unless_set_output():
    g = Graph()
    g.add("relu", layers.ReLU(), "input")
    g.add("double", layers.Add(), ["relu", "relu"])
    x = np.array([[-1.0, 2.0, -3.0, 4.0]])
    np.testing.assert_array_equal(g(x), [[0.0, 4.0, 0.0, 8.0]])
    g.set_output("relu")
    assert g.output_name == "relu"
    np.testing.assert_array_equal(g(x), [[0.0, 2.0, 0.0, 4.0]])


def test_inputs_default_to_previous_node():
    g = Graph()
    g.add("a", layers.ReLU())  # first node: reads "input"
    g.add("b", layers.Flatten())  # reads "a"
    assert g.nodes["a"][1] == (INPUT,) and g.nodes["b"][1] == ("a",)
    np.testing.assert_array_equal(g(-np.ones((2, 1, 2, 2))), np.zeros((2, 4)))


def test_nodes_not_needed_for_the_output_are_not_run():
    class Boom(layers.Layer):
        def forward(self, x):
            raise AssertionError("dead branch was executed")

        def backward(self, g):
            raise AssertionError("dead branch was executed")

    g = Graph()
    g.add("relu", layers.ReLU(), "input")
    g.add("dead", Boom(), "input")
    g.add("out", layers.Flatten(), "relu")
    x = np.ones((2, 1, 2, 2))
    assert g(x).shape == (2, 4)
    np.testing.assert_array_equal(g.backward(np.ones((2, 4))), np.ones(x.shape))


def test_add_and_concat_in_a_graph_match_numpy():
    rng = RNG(0)
    g = Graph()
    g.add("a", layers.Conv2D(1, 2, 3, padding="same", dtype=np.float64, rng=rng), "input")
    g.add("b", layers.Conv2D(1, 3, 1, dtype=np.float64, rng=rng), "input")
    g.add("cat", layers.Concat(axis=1), ["a", "b", "input"])
    g.add("c", layers.Conv2D(6, 6, 1, dtype=np.float64, rng=rng), "cat")
    g.add("sum", layers.Add(), ["cat", "c", "cat"])
    x = rng.standard_normal((2, 1, 5, 5))
    a, b, c = g["a"](x), g["b"](x), None
    cat = np.concatenate([a, b, x], axis=1)
    c = g["c"](cat)
    np.testing.assert_allclose(g(x), cat + c + cat, rtol=1e-12, atol=1e-12)
    assert g(x).shape == (2, 6, 5, 5)


def test_concat_default_axis_is_1():
    assert layers.Concat().axis == 1
    out = layers.Concat()(np.ones((2, 1, 3)), np.zeros((2, 2, 3)))
    assert out.shape == (2, 3, 3)


# ---------------------------------------------------------- backward: fan-out
def test_fanout_gradients_add_up_hand_computation():
    rng = RNG(1)
    g = fanout_graph(rng)
    x = rng.standard_normal((4, 3))
    G = rng.standard_normal((4, 2))
    out = g(x)
    Wa, ba, Wb, bb = g["a"].weight.data, g["a"].bias.data, g["b"].weight.data, g["b"].bias.data
    np.testing.assert_allclose(out, x @ Wa.T + ba + x @ Wb.T + bb, rtol=1e-12)
    g.zero_grad()
    dx = g.backward(G)
    # d/dx sum(G * (x Wa^T + x Wb^T)) = G Wa + G Wb: both branches' gradients add
    np.testing.assert_allclose(dx, G @ Wa + G @ Wb, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g["a"].weight.grad, G.T @ x, rtol=1e-12)
    np.testing.assert_allclose(g["b"].weight.grad, G.T @ x, rtol=1e-12)
    np.testing.assert_allclose(g["a"].bias.grad, G.sum(0), rtol=1e-12)


def test_fanout_same_node_read_twice_by_one_layer():
    """Add returns the same gradient array for both of its inputs: must not be added in place."""
    g = Graph()
    g.add("double", layers.Add(), ["input", "input"])
    g.add("triple", layers.Add(), ["double", "input"])
    x = np.arange(6.0).reshape(2, 3)
    G = np.ones((2, 3)) * np.array([1.0, 2.0, 3.0])
    G_copy = G.copy()
    np.testing.assert_array_equal(g(x), 3 * x)
    np.testing.assert_array_equal(g.backward(G), 3 * G_copy)
    np.testing.assert_array_equal(G, G_copy)  # the upstream gradient is not modified


def test_fanout_through_concat_hand_computation():
    g = Graph()
    g.add("cat", layers.Concat(axis=1), ["input", "input", "input"])
    x = np.arange(4.0).reshape(2, 2)
    G = np.arange(12.0).reshape(2, 6)
    np.testing.assert_array_equal(g(x), np.concatenate([x, x, x], axis=1))
    np.testing.assert_array_equal(g.backward(G), G[:, :2] + G[:, 2:4] + G[:, 4:])


def test_fanout_graph_gradcheck():
    rng = RNG(2)
    assert_gradients(fanout_graph(rng), rng.standard_normal((4, 3)))


class Identity(layers.Layer):
    def forward(self, x):
        return x

    def backward(self, grad_output):
        return grad_output


class FanOut(layers.Layer):
    """``a(x) + b(x)``: x fans out to two branches. With ``overwrite`` it has the fan-out bug:
    the gradient from branch b REPLACES branch a's instead of adding to it."""

    def __init__(self, a, b, overwrite=False):
        super().__init__()
        self.a, self.b, self.overwrite = a, b, overwrite

    def forward(self, x):
        return self.a(x) + self.b(x)

    def backward(self, grad_output):
        ga, gb = self.a.backward(grad_output), self.b.backward(grad_output)
        return gb if self.overwrite else ga + gb  # BUG on purpose with overwrite


def test_gradcheck_catches_a_layer_that_overwrites_fanout_gradients():
    rng = RNG(3)
    x = rng.standard_normal((4, 3))

    def fanout(overwrite):
        r = RNG(3)
        return FanOut(layers.Dense(3, 2, dtype=np.float64, rng=r), layers.Dense(3, 2, dtype=np.float64, rng=r),
                      overwrite)

    assert mdl.gradcheck(fanout(False), x).passed
    report = mdl.gradcheck(fanout(True), x)
    assert not report.passed
    failing = [t.name for t in report.tensors if not t.passed]
    assert failing == ["input"], str(report)  # the parameter gradients are still right
    assert "FAILED" in str(report)


def test_gradcheck_catches_overwritten_fanout_in_a_residual_block():
    rng = RNG(4)
    x = tie_free((1, 2, 3, 3), rng)

    def block(overwrite):
        r = RNG(4)
        convs = Sequential(layers.Conv2D(2, 2, 3, padding="same", dtype=np.float64, rng=r), layers.ReLU(),
                           layers.Conv2D(2, 2, 3, padding="same", dtype=np.float64, rng=r))
        return Sequential(FanOut(Identity(), convs, overwrite), layers.ReLU())

    assert mdl.gradcheck(block(False), x).passed
    assert not mdl.gradcheck(block(True), x).passed


# ------------------------------------------------------- gradcheck whole graphs
def test_gradcheck_residual_block():
    rng = RNG(5)
    assert_gradients(residual_block(2, rng), tie_free((2, 2, 4, 4), rng))


def test_gradcheck_residual_cnn_model():
    rng = RNG(6)
    model = models.residual_cnn(rng=rng, channels=2, dtype=np.float64)
    x = rng.uniform(0.05, 1.0, (2, 1, 8, 8))
    report = assert_gradients(model, x)
    names = {t.name for t in report.tensors}
    assert {"input", "stem.weight", "conv2.bias", "fc.weight"} <= names


def test_gradcheck_reference_cnn_architecture_small():
    """The reference CNN's layer stack (fewer channels to keep it fast), with its loss."""
    rng = RNG(7)
    model = Sequential(
        layers.Conv2D(1, 2, 3, padding="same", dtype=np.float64, rng=rng), layers.ReLU(),
        layers.MaxPool2D(2),
        layers.Conv2D(2, 3, 3, padding="same", dtype=np.float64, rng=rng), layers.ReLU(),
        layers.MaxPool2D(2), layers.Flatten(), layers.Dense(12, 4, dtype=np.float64, rng=rng),
    )
    assert_gradients(model, rng.uniform(0.05, 1.0, (2, 1, 8, 8)))
    # the loss on top, as a graph whose output is a scalar, is a separate check:
    loss = losses.SoftmaxCrossEntropy()
    assert_gradients(loss, model(rng.uniform(0.05, 1.0, (3, 1, 8, 8))), np.array([0, 3, 1]))


def test_gradcheck_nested_graph_in_graph():
    rng = RNG(8)
    inner = residual_block(2, rng)
    outer = Graph()
    outer.add("stem", layers.Conv2D(1, 2, 3, padding="same", dtype=np.float64, rng=rng), "input")
    outer.add("block", inner, "stem")
    outer.add("block2", residual_block(2, rng), "block")
    outer.add("skip", layers.Concat(axis=1), ["block2", "stem"])  # stem fans out across nesting
    outer.add("pool", layers.MaxPool2D(2), "skip")
    outer.add("flat", layers.Flatten(), "pool")
    outer.add("fc", layers.Dense(16, 3, dtype=np.float64, rng=rng), "flat")
    names = [n for n, _ in outer.named_parameters()]
    assert "block.conv1.weight" in names and "block2.conv2.bias" in names
    assert_gradients(outer, tie_free((2, 1, 4, 4), rng))


def test_nested_graph_forward_equals_flattened_graph():
    rng = RNG(9)
    inner = residual_block(2, rng)
    outer = Graph()
    outer.add("block", inner, "input")
    outer.add("out", layers.Add(), ["block", "input"])
    x = rng.standard_normal((2, 2, 4, 4))
    expected = inner(x) + x
    np.testing.assert_allclose(outer(x), expected, rtol=1e-12)
    # backward through the nesting: d/dx sum(G * (inner(x) + x)) = inner.backward(G) + G
    G = rng.standard_normal(x.shape)
    outer.zero_grad()
    dx = outer.backward(G)
    ref = residual_block(2, RNG(0))
    ref.load_state_dict(inner.state_dict())
    ref(x)
    np.testing.assert_allclose(dx, ref.backward(G) + G, rtol=1e-10, atol=1e-12)


def test_gradcheck_graph_with_set_output_and_dead_branch():
    rng = RNG(10)
    g = Graph()
    g.add("a", layers.Dense(3, 3, dtype=np.float64, rng=rng), "input")
    g.add("b", layers.Dense(3, 2, dtype=np.float64, rng=rng), "a")  # not used by the output
    g.add("c", layers.Add(), ["a", "input"])
    g.add("d", layers.Dense(3, 2, dtype=np.float64, rng=rng), "c")
    g.set_output("c")
    report = assert_gradients(g, rng.standard_normal((2, 3)))
    by_name = {t.name: t for t in report.tensors}
    # the dead branch gets zero gradient
    np.testing.assert_array_equal(by_name["b.weight"].analytic, 0.0)
    np.testing.assert_array_equal(by_name["d.weight"].analytic, 0.0)


# ------------------------------------------------------------------ Sequential
def test_sequential_accepts_varargs_or_a_single_list():
    rng = RNG(0)
    a = [layers.Flatten(), layers.Dense(4, 3, rng=rng), layers.ReLU()]
    for model in (Sequential(*a), Sequential(a), Sequential(tuple(a))):
        assert len(model) == 3
        assert list(model) == a
        assert model[1] is a[1] and model[-1] is a[2]
    assert len(Sequential()) == 0
    s = Sequential().append(layers.ReLU())
    assert list(s.nodes) == ["0"]


def test_sequential_slice_shares_layers():
    model = models.reference_cnn(rng=RNG(0))
    head = model[:3]
    assert isinstance(head, Sequential) and len(head) == 3
    assert head[0] is model[0]
    x = np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32)
    assert head(x).shape == (2, 16, 4, 4)


TORCH_KEYS = ["0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias"]


def test_sequential_parameter_names_match_torch_sequential():
    model = models.reference_cnn(rng=RNG(0))
    assert [n for n, _ in model.named_parameters()] == TORCH_KEYS
    assert list(model.state_dict()) == TORCH_KEYS
    shapes = [p.shape for p in model.parameters()]
    assert shapes == [(16, 1, 3, 3), (16,), (32, 16, 3, 3), (32,), (10, 128), (10,)]
    assert model.num_parameters() == 6090


def test_graph_parameter_names_use_node_names_and_nest():
    rng = RNG(0)
    g = Graph()
    g.add("stem", layers.Conv2D(1, 2, 3, rng=rng), "input")
    g.add("block", residual_block(2, rng, np.float32), "stem")
    g.add("head", Sequential(layers.Flatten(), layers.Dense(2, 2, rng=rng)), "block")
    assert [n for n, _ in g.named_parameters()] == [
        "stem.weight", "stem.bias",
        "block.conv1.weight", "block.conv1.bias", "block.conv2.weight", "block.conv2.bias",
        "head.1.weight", "head.1.bias",
    ]
    assert [p for _, p in g.named_parameters()] == g.parameters()
    assert g.parameters()[0] is g["stem"].weight


def test_parameters_are_the_live_objects_and_state_dict_copies():
    model = models.reference_cnn(rng=RNG(0))
    params = dict(model.named_parameters())
    assert params["3.weight"] is model[3].weight
    state = model.state_dict()
    state["0.weight"][...] = 123.0
    assert not np.any(model[0].weight.data == 123.0)


@pytest.fixture(scope="module")
def torch_pair():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    tmodel = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding="same"), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding="same"), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(128, 10),
    ).float()
    model = models.reference_cnn(rng=RNG(123))
    model.load_state_dict({k: v.numpy() for k, v in tmodel.state_dict().items()})
    return torch, tmodel, model


def _digits_batch(n=32):
    (X, y), _ = mdl.data.load_digits()
    return X[:n], y[:n]


def test_torch_state_dict_loads_and_forward_matches(torch_pair):
    torch, tmodel, model = torch_pair
    assert list(tmodel.state_dict()) == list(model.state_dict())
    for k, v in tmodel.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[k], v.numpy())
    X, _ = _digits_batch()
    with torch.no_grad():
        expected = tmodel(torch.from_numpy(X)).numpy()
    out = model.forward(X)
    assert out.dtype == np.float32 and out.shape == (32, 10)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)
    # random (not digit-like) inputs, with negatives, too
    Xr = np.random.default_rng(1).standard_normal((7, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        expected = tmodel(torch.from_numpy(Xr)).numpy()
    np.testing.assert_allclose(model.forward(Xr), expected, rtol=0, atol=1e-5)


def test_torch_gradients_match_for_cross_entropy(torch_pair):
    torch, tmodel, model = torch_pair
    X, y = _digits_batch()
    xt = torch.from_numpy(X.copy()).requires_grad_(True)
    tmodel.zero_grad()
    tloss = torch.nn.functional.cross_entropy(tmodel(xt), torch.from_numpy(y))
    tloss.backward()
    loss = losses.SoftmaxCrossEntropy()
    model.zero_grad()
    value = loss(model.forward(X), y)
    dx = model.backward(loss.backward())
    assert value == pytest.approx(tloss.item(), abs=1e-5)
    tgrads = {k: p.grad.numpy() for k, p in tmodel.named_parameters()}
    assert set(tgrads) == set(TORCH_KEYS)
    for name, p in model.named_parameters():
        assert p.grad.dtype == np.float32
        np.testing.assert_allclose(p.grad, tgrads[name], rtol=0, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=0, atol=1e-5)


def test_minidl_state_dict_loads_into_torch(torch_pair):
    torch, _, _ = torch_pair
    nn = torch.nn
    model = models.reference_cnn(rng=RNG(5))
    tmodel = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding="same"), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding="same"), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(128, 10),
    )
    tmodel.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    X, _ = _digits_batch(8)
    with torch.no_grad():
        np.testing.assert_allclose(model(X), tmodel(torch.from_numpy(X)).numpy(), atol=1e-5)


# ---------------------------------------------------------------- state dicts
def _bad_dicts(model):
    good = model.state_dict()
    keys = list(good)
    last = keys[-1]
    wrong_shape = dict(good)
    wrong_shape[last] = np.zeros((3,), np.float32)
    wrong_dtype = dict(good)
    wrong_dtype[last] = good[last].astype(np.float64)
    missing = dict(good)
    del missing[last]
    unexpected = dict(good)
    unexpected["9.weight"] = np.zeros(2, np.float32)
    return {"shape": (wrong_shape, last), "dtype": (wrong_dtype, "float64"),
            "missing": (missing, last), "unexpected": (unexpected, "9.weight")}


@pytest.mark.parametrize("kind", ["shape", "dtype", "missing", "unexpected"])
def test_load_state_dict_validates_everything_before_assigning(kind):
    model = models.reference_cnn(rng=RNG(0))
    before = snapshot(model)
    # every valid entry differs from the current weights, so a partial load would show
    other = models.reference_cnn(rng=RNG(1))
    bad, needle = _bad_dicts(other)[kind]
    with pytest.raises(ValueError) as info:
        model.load_state_dict(bad)
    assert needle in str(info.value)
    assert_state_equal(model, before)


def test_load_state_dict_reports_every_problem_at_once():
    model = models.reference_cnn(rng=RNG(0))
    bad = model.state_dict()
    bad["0.weight"] = np.zeros((1, 1), np.float32)
    bad["7.bias"] = bad["7.bias"].astype(np.float64)
    del bad["3.bias"]
    with pytest.raises(ValueError) as info:
        model.load_state_dict(bad)
    msg = str(info.value)
    for needle in ("0.weight", "7.bias", "3.bias"):
        assert needle in msg


def test_load_state_dict_copies_values():
    model = models.reference_cnn(rng=RNG(0))
    source = models.reference_cnn(rng=RNG(1)).state_dict()
    weight_obj = model[0].weight.data
    model.load_state_dict(source)
    assert model[0].weight.data is weight_obj  # loaded in place
    assert_state_equal(model, source)
    source["0.weight"][...] = 7.0
    assert not np.any(model[0].weight.data == 7.0)


def test_load_state_dict_non_strict_ignores_missing_and_unexpected():
    model = models.reference_cnn(rng=RNG(0))
    before = snapshot(model)
    new = models.reference_cnn(rng=RNG(1)).state_dict()
    partial = {"3.weight": new["3.weight"], "extra": np.zeros(1)}
    model.load_state_dict(partial, strict=False)
    after = model.state_dict()
    np.testing.assert_array_equal(after["3.weight"], new["3.weight"])
    np.testing.assert_array_equal(after["0.weight"], before["0.weight"])
    with pytest.raises(ValueError, match="shape"):
        model.load_state_dict({"3.weight": np.zeros(2, np.float32)}, strict=False)


def test_load_state_dict_on_graph_and_nested_graph():
    rng = RNG(0)

    def build(seed):
        r = RNG(seed)
        g = Graph()
        g.add("stem", layers.Conv2D(1, 2, 3, padding="same", rng=r), "input")
        g.add("block", residual_block(2, r, np.float32), "stem")
        return g

    a, b = build(0), build(1)
    x = rng.random((2, 1, 4, 4), dtype=np.float32)
    assert not np.allclose(a(x), b(x))
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(x), b(x))


# ---------------------------------------------------------------------- modes
def test_train_eval_are_recursive():
    rng = RNG(0)
    inner = residual_block(2, rng, np.float32)
    outer = Graph()
    outer.add("seq", Sequential(layers.Conv2D(1, 2, 1, rng=rng), layers.ReLU()), "input")
    outer.add("block", inner, "seq")
    every = list(all_layers(outer))
    assert len(every) == 1 + 1 + 2 + 1 + 5
    assert all(layer.training for layer in every)
    assert outer.eval() is outer
    assert not any(layer.training for layer in every)
    assert outer.train() is outer
    assert all(layer.training for layer in every)
    outer.train(False)
    assert not any(layer.training for layer in every)


# -------------------------------------------------------------------- summary
def test_summary_of_reference_cnn():
    model = models.reference_cnn(rng=RNG(0))
    text = model.summary((1, 8, 8))
    for name, layer in model.named_children():
        assert f"{name} ({type(layer).__name__})" in text
    for shape in ["(N, 1, 8, 8)", "(N, 16, 8, 8)", "(N, 16, 4, 4)", "(N, 32, 4, 4)",
                  "(N, 32, 2, 2)", "(N, 128)", "(N, 10)"]:
        assert shape in text, shape
    assert "6,090" in text
    assert "160" in text and "4,640" in text and "1,290" in text  # per-layer counts
    rows = text.splitlines()
    row0 = next(r for r in rows if r.startswith("0 (Conv2D)"))
    assert "(N, 16, 8, 8)" in row0 and row0.rstrip().endswith("160")


def test_summary_of_residual_graph_lists_nodes_and_inputs():
    model = models.residual_cnn(rng=RNG(0))
    text = model.summary((1, 8, 8))
    for name, layer in model.named_children():
        assert f"{name} ({type(layer).__name__})" in text
    skip_row = next(r for r in text.splitlines() if r.startswith("skip (Add)"))
    assert "stem_relu, conv2" in skip_row and "(N, 16, 8, 8)" in skip_row
    assert f"{model.num_parameters():,}" in text
    assert "(N, 16, 4, 4)" in text and "(N, 256)" in text and "(N, 10)" in text


def test_repr_lists_nodes():
    model = models.residual_cnn(rng=RNG(0))
    text = repr(model)
    assert "(skip): Add() <- stem_relu, conv2" in text
    assert "Sequential(" in repr(models.reference_cnn(rng=RNG(0)))


def test_summary_leaves_pending_backward_caches_alone():
    rng = RNG(0)
    model = Sequential(layers.Dense(3, 4, dtype=np.float64, rng=rng), layers.ReLU(),
                       layers.Dense(4, 2, dtype=np.float64, rng=rng))
    x = rng.standard_normal((5, 3))
    g = rng.standard_normal((5, 2))
    model.forward(x)
    model.summary((3,))  # must not overwrite the caches of the forward above
    dx = model.backward(g)
    grads = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    model.forward(x)
    np.testing.assert_array_equal(model.backward(g), dx)
    for p, expected in zip(model.parameters(), grads):
        np.testing.assert_array_equal(p.grad, expected)


def test_summary_copies_no_parameter_and_keeps_the_mode():
    """summary() probes shapes on the model itself (in eval mode, its state put back after),
    not on a deep copy: its peak is far below the parameters' size (a copy was all of it)."""
    import tracemalloc

    rng = RNG(0)
    model = Sequential(layers.Dense(512, 512, rng=rng), layers.ReLU(), layers.Dense(512, 512, rng=rng))
    nbytes = sum(p.data.nbytes + p.grad.nbytes for p in model.parameters())  # 2 MiB
    model.summary((512,))  # warm-up: imports, first-call caches
    tracemalloc.start()
    try:
        model.summary((512,))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < nbytes / 8, (peak, nbytes)
    assert model.training and all(layer.training for layer in model)
    model.eval()
    model.summary((512,))
    assert not model.training and not any(layer.training for layer in model)


def test_summary_leaves_a_pending_eval_forward_as_it_was():
    model = Sequential(layers.Dense(3, 2, rng=RNG(0)))
    model.eval()
    model(np.ones((1, 3), np.float32))
    model.train()
    model.summary((3,))
    with pytest.raises(RuntimeError, match="eval mode"):  # not "before forward", not a cache
        model.backward(np.ones((1, 2), np.float32))


@pytest.mark.parametrize("build", ["sequential", "residual"])
def test_backward_params_gives_the_same_parameter_grads_as_backward(build):
    rng = RNG(3)
    if build == "sequential":
        make = lambda: mdl.models.reference_cnn(rng=RNG(0), dtype=np.float64)  # noqa: E731
    else:
        make = lambda: mdl.models.residual_cnn(rng=RNG(0), channels=4, dtype=np.float64)  # noqa: E731
    a, b = make(), make()
    x = rng.standard_normal((3, 1, 8, 8))
    g = rng.standard_normal((3, 10))
    a.forward(x)
    dx = a.backward(g)
    b.forward(x)
    assert b.backward_params(g) is None and dx.shape == x.shape
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_allclose(pb.grad, pa.grad, rtol=1e-12, atol=1e-14, err_msg=name)
        assert np.any(pa.grad), name


def test_backward_params_honours_a_graph_subclass_that_overrides_backward():
    """The guard lives in Layer.backward_params (issue 11): as for Dense and Conv2D, a
    subclass that overrides backward only is not bypassed (Graph's was, before)."""
    class Doubled(Sequential):
        def backward(self, grad_output):
            return super().backward(2 * grad_output)

    x, g = np.ones((2, 3)), np.ones((2, 2))
    plain, doubled = (cls(layers.Dense(3, 2, dtype=np.float64, rng=RNG(0))) for cls in (Sequential, Doubled))
    for model in (plain, doubled):
        model(x)
        model.backward_params(g)
    np.testing.assert_array_equal(doubled[0].weight.grad, 2 * plain[0].weight.grad)
