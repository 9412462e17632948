"""ONNX export and torch interop read the layer registry: every registered layer's recipes
(written in the layer's own file) are checked on every configuration its ``examples`` yields,
so a new layer is covered by declaring its recipes, with no list to extend here."""

import numpy as np
import pytest

import minidl as mdl
from minidl import layers as L
from minidl.layers.base import recipe_class
from minidl.layers.registry import REGISTRY, register_layer
from minidl.losses import Loss

# the built-in model layers (losses are not part of an exported model)
pytestmark = pytest.mark.filterwarnings("ignore:Using padding=.same.:UserWarning")
BUILT_IN = sorted(n for n, c in REGISTRY.items() if c.__module__.startswith("minidl.") and not issubclass(c, Loss))
CASES = [(name, i) for name in BUILT_IN for i, _ in enumerate(REGISTRY[name].examples(np.random.default_rng(0)))]


def _example(name, i):
    layer, inputs = list(REGISTRY[name].examples(np.random.default_rng(0)))[i]
    return layer.eval(), inputs


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_built_in_layer_has_both_recipes(name):
    cls = REGISTRY[name]
    assert recipe_class(cls, "to_onnx") is not None and recipe_class(cls, "to_torch") is not None
    assert list(cls.examples(np.random.default_rng(0))), "its recipes are tested on its examples"


def test_a_subclass_computing_something_else_has_no_recipe():
    class Doubled(L.ReLU):
        def forward(self, x):
            return 2 * super().forward(x)

    class Renamed(L.ReLU):  # same computation: inherits ReLU's recipes
        pass

    assert recipe_class(Doubled, "to_onnx") is None and recipe_class(Doubled, "to_torch") is None
    assert recipe_class(Renamed, "to_onnx") is L.ReLU and recipe_class(Renamed, "to_torch") is L.ReLU
    assert recipe_class(L.Layer, "to_onnx") is None


def _float32(layer):
    cfg = layer.get_config()
    if "dtype" in cfg:
        cfg["dtype"] = "float32"
    new = type(layer)(**cfg)
    new.load_state_dict({k: v.astype(np.float32) if v.dtype.kind == "f" else v
                         for k, v in layer.state_dict().items()})
    return new.eval()


@pytest.mark.parametrize("name,i", CASES)
def test_onnx_export_of_every_example(name, i, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    layer, inputs = _example(name, i)
    layer = _float32(layer)
    inputs = [x.astype(np.float32) for x in inputs]
    g = mdl.Graph()
    g.add("m", layer, ["input"] * len(inputs))  # several inputs: the model's input, repeated
    x = inputs[0]
    if isinstance(layer, (L.BatchNorm1D, L.BatchNorm2D)) and not layer.track_running_stats:
        with pytest.raises(TypeError, match=r"to_onnx: model\['m'\] .*track_running_stats=False"):
            mdl.export.to_onnx(g, tmp_path / "m.onnx", x.shape[1:])
        return
    mdl.export.to_onnx(g, tmp_path / "m.onnx", x.shape[1:])
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")), full_check=True)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": x})
    np.testing.assert_allclose(got, g(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name,i", CASES)
def test_torch_both_ways_for_every_example(name, i):
    torch = pytest.importorskip("torch")
    layer, inputs = _example(name, i)
    module = mdl.interop.to_torch(layer)
    assert not module.training
    with torch.no_grad():
        got = module(*(torch.from_numpy(x) for x in inputs)).numpy()
    np.testing.assert_allclose(got, layer(*inputs), rtol=0, atol=1e-12)
    back = mdl.interop.from_torch(module)
    assert type(back) is type(layer) and _same_config(back, layer)
    np.testing.assert_array_equal(back.eval()(*inputs), layer(*inputs))
    assert all(np.array_equal(a, b) for a, b in zip(back.state_dict().values(), layer.state_dict().values()))


def _same_config(a, b):
    """Equal configs; a padding may come back in another form with the same pads (0 as [0, 0])."""
    ca, cb = a.get_config(), b.get_config()
    pa, pb = ca.pop("padding", None), cb.pop("padding", None)
    if pa != pb:
        k, s, d = a.kernel_size, a.stride, getattr(a, "dilation", 1)
        pa, pb = (mdl.functional.resolve_padding(p, (7, 7), k, s, d) for p in (pa, pb))
    return ca == cb and pa == pb


def test_a_user_layer_with_recipes_exports_and_converts_without_touching_interop(tmp_path):
    """A registered user layer declaring onnx_op/torch_modules goes through both exporters."""
    pytest.importorskip("torch")

    @register_layer
    class Halve(L.Layer):
        onnx_op = "Identity"  # deliberately wrong in ONNX, to show the recipe is what is used

        def forward(self, x):
            return x / 2

        def to_torch(self, t):
            return t.nn.Identity()

    try:
        module = mdl.interop.to_torch(mdl.Sequential(L.ReLU(), Halve()))
        assert type(module[1]).__name__ == "Identity"
        pytest.importorskip("onnx")
        proto = mdl.export.to_onnx(mdl.Sequential(Halve()), tmp_path / "h.onnx", (3,))
        assert [n.op_type for n in proto.graph.node] == ["Identity", "Identity"]
    finally:
        del REGISTRY["Halve"]


@pytest.mark.parametrize("name,i", CASES)
def test_torch_parity_values_and_every_gradient_in_training_mode(name, i):
    """The parity check a new layer gets from its registration: its torch twin (its own recipe) in
    training mode, float64: the output, every input gradient and every parameter gradient."""
    torch = pytest.importorskip("torch")
    layer, inputs = list(REGISTRY[name].examples(np.random.default_rng(0)))[i]
    if isinstance(layer, L.Dropout):
        pytest.skip("random masks: torch draws its own (Dropout's parity is in tests/test_dropout.py)")
    module = mdl.interop.to_torch(layer).train()
    xs = [torch.tensor(x, requires_grad=True) for x in inputs]
    out_t = module(*xs)
    g = np.random.default_rng(1).standard_normal(tuple(out_t.shape))
    out_t.backward(torch.from_numpy(g))
    out = layer(*inputs)
    grads = layer.backward(g)
    grads = grads if isinstance(grads, tuple) else (grads,)
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=0, atol=1e-10)
    for got, x in zip(grads, xs):
        np.testing.assert_allclose(got, x.grad.numpy(), rtol=0, atol=1e-10)
    theirs = dict(module.named_parameters())
    for pname, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, theirs[pname].grad.numpy(), rtol=0, atol=1e-10, err_msg=pname)
