"""``export.from_onnx`` reads torch's exports of the layers added in issue 19 (ConvTranspose2D, the 1-D
layers, the global and adaptive pools, Upsample) at opsets 13 and 17: torch's outputs, torch's gradients
(input and every parameter) and torch's SGD step; the forms minidl has no layer for are refused."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="ONNX import needs onnx (pip install -e '.[onnx]')")
torch = pytest.importorskip("torch", reason="the torch-exported models need torch")
from onnx import TensorProto, helper  # noqa: E402
from torch import nn  # noqa: E402

import minidl as mdl  # noqa: E402


def export(module, path, opset, shape):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.zeros(shape),), str(path), opset_version=opset, dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "N"}})
    return path


def ops_of(path):
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def matches_torch(net, tmp_path, opset, shape, seed=0):
    """Import torch's export of ``net``; compare outputs, gradients (input, parameters) and one SGD step."""
    path = export(net, tmp_path / "m.onnx", opset, shape)
    model = mdl.export.from_onnx(path)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, *shape[1:])).astype(np.float32)
    out = model(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, net(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-5)
    model.train()
    net.train()
    g = rng.standard_normal(out.shape).astype(np.float32)
    t_params = list(net.parameters())
    assert len(model.parameters()) == len(t_params)
    pairs = [(p, next(t for t in t_params if t.shape == p.data.shape and np.array_equal(t.detach().numpy(), p.data)))
             for p in model.parameters()]
    xt = torch.from_numpy(x).requires_grad_(True)
    (net(xt) * torch.from_numpy(g)).sum().backward()
    model(x)
    dx = model.backward(g)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    for p, tp in pairs:
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-4, atol=1e-5)
    if pairs:
        mdl.optim.SGD(model.parameters(), lr=0.1).step()
        torch.optim.SGD(net.parameters(), lr=0.1).step()
        np.testing.assert_allclose(model(x), net(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-4)
    return model, path


def built(model):
    """The class names of the Graph's layers, in order."""
    return [type(model._nodes[name][0]).__name__ for name in model.execution_plan()]


# ------------------------------------------------------------------ 1-D layers
class Signal(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(2, 4, 3, padding=1)
        self.m1 = nn.MaxPool1d(3, 2, 1, ceil_mode=True)
        self.c2 = nn.Conv1d(4, 4, 3, stride=2, padding=2, dilation=2, groups=2, bias=False)
        self.a1 = nn.AvgPool1d(3, 2, 1)  # the zero padding counted (torch's default)
        self.a2 = nn.AvgPool1d(2, 1, 1, count_include_pad=False)
        self.m2 = nn.MaxPool1d(2, dilation=2)

    def forward(self, x):
        return self.m2(self.a2(self.a1(self.c2(torch.tanh(self.m1(self.c1(x)))))))


@pytest.mark.parametrize("opset", [13, 17])
def test_torch_1d_signal_net_imports_as_conv1d_and_the_1d_pools(opset, tmp_path):
    torch.manual_seed(opset)
    model, path = matches_torch(Signal(), tmp_path, opset, (1, 2, 23))
    assert built(model) == ["Conv1D", "MaxPool1D", "Tanh", "Conv1D", "AvgPool1D", "AvgPool1D", "MaxPool1D"]


def test_1d_conv_with_pads_unequal_at_the_ends_is_refused(tmp_path):
    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 3], [1.0, 2.0, 3.0])
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="c", pads=[0, 1])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1, 4])], [w])
    path = tmp_path / "m.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    with pytest.raises(ValueError, match=r"node 'c' \(op Conv, opset 17\).*only 2-D \(Conv2D\).*as Conv1D: with "
                                         r"pads \(start, end\) = \(0, 1\)"):
        mdl.export.from_onnx(path)


# ------------------------------------------------------------------ ConvTranspose2D
class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.up1 = nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1)
        self.up2 = nn.ConvTranspose2d(4, 2, (2, 3), stride=(3, 1), padding=(0, 1), groups=2, bias=False)
        self.up3 = nn.ConvTranspose2d(2, 2, 3, dilation=2, padding=1, output_padding=1)

    def forward(self, x):
        return self.up3(torch.relu(self.up2(torch.relu(self.up1(x)))))


@pytest.mark.parametrize("opset", [13, 17])
def test_torch_conv_transpose_imports_with_torchs_values_and_gradients(opset, tmp_path):
    torch.manual_seed(opset)
    model, path = matches_torch(Decoder(), tmp_path, opset, (1, 3, 4, 5))
    assert ops_of(path).count("ConvTranspose") == 3
    assert built(model).count("ConvTranspose2D") == 3


def conv_transpose_model(tmp_path, **attrs):
    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 3, 3], np.arange(9.0).tolist())
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="ct", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 3, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    path = tmp_path / "ct.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return path


def test_conv_transpose_output_shape_is_read_as_pads_and_output_padding(tmp_path):
    """output_shape (7, 8) from a 3x3 input at stride 2: total pads (0, -1) -> output_padding (0, 1), as onnx."""
    from onnx.reference import ReferenceEvaluator
    path = conv_transpose_model(tmp_path, strides=[2, 2], output_shape=[7, 8])
    model = mdl.export.from_onnx(path)
    x = np.random.default_rng(0).standard_normal((2, 1, 3, 3)).astype(np.float32)
    want = ReferenceEvaluator(str(path)).run(None, {"x": x})[0]
    assert want.shape == (2, 1, 7, 8)
    np.testing.assert_allclose(model(x), want, rtol=1e-5, atol=1e-5)


def test_conv_transpose_cropping_more_at_the_end_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"node 'ct' \(op ConvTranspose, opset 17\).*pads \(begin \[0, 0\], end "
                                         r"\[1, 1\]\).*cannot crop more at the end"):
        mdl.export.from_onnx(conv_transpose_model(tmp_path, pads=[0, 0, 1, 1]))


# ------------------------------------------------------------------ global and adaptive pools
@pytest.mark.parametrize("opset", [13, 17])
@pytest.mark.parametrize("module, op, layer", [
    (lambda: nn.AdaptiveAvgPool2d(1), "GlobalAveragePool", "GlobalAvgPool2D"),
    (lambda: nn.AdaptiveAvgPool2d((1, 1)), "GlobalAveragePool", "GlobalAvgPool2D"),
    (lambda: nn.AdaptiveAvgPool2d((2, 4)), "AveragePool", "AvgPool2D"),
    (lambda: nn.AdaptiveMaxPool2d(1), "MaxPool", "MaxPool2D"),
    (lambda: nn.AdaptiveMaxPool2d((1, 1)), "MaxPool", "MaxPool2D"),
    (lambda: nn.AdaptiveMaxPool2d((3, 2)), "MaxPool", "MaxPool2D"),
])
def test_torch_adaptive_pools_of_dividing_sizes_import(opset, module, op, layer, tmp_path):
    """torch writes the adaptive pools of 1 and of sizes dividing the input as the global op or a plain pool
    (and refuses other sizes when exporting)."""
    net = nn.Sequential(nn.Conv2d(2, 3, 1), module())
    torch.manual_seed(1)
    model, path = matches_torch(net, tmp_path, opset, (1, 2, 6, 8))
    assert ops_of(path) == ["Conv", op]
    assert built(model) == ["Conv2D", layer]


def test_global_max_pool_is_read_as_global_max_pool2d(tmp_path):
    node = helper.make_node("GlobalMaxPool", ["x"], ["y"], name="gmp")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 1, 1])])
    path = tmp_path / "m.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())
    model = mdl.export.from_onnx(path)
    assert built(model) == ["GlobalMaxPool2D"]
    x = np.random.default_rng(0).standard_normal((2, 2, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(model(x), x.max((2, 3), keepdims=True))
    model.train()
    model(x)
    dx = model.backward(np.ones((2, 2, 1, 1), np.float32))
    np.testing.assert_array_equal(dx, (x == x.max((2, 3), keepdims=True)).astype(np.float32))


# ------------------------------------------------------------------ Upsample
UPSAMPLES = [
    dict(scale_factor=2), dict(scale_factor=(2, 3)), dict(scale_factor=2, mode="bilinear"),
    dict(scale_factor=(1.5, 2), mode="bilinear"), dict(scale_factor=2, mode="bilinear", align_corners=True),
    # sizes: torch writes Concat(Slice(Shape(x), 0, 2), (H, W)) as the Resize's sizes
    dict(size=(7, 9)), dict(size=(3, 8), mode="bilinear"), dict(size=(6, 10), mode="bilinear", align_corners=True),
]


@pytest.mark.parametrize("opset", [13, 17])
@pytest.mark.parametrize("kwargs", UPSAMPLES)
def test_torch_upsample_imports(opset, kwargs, tmp_path):
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Upsample(**kwargs), nn.Conv2d(3, 2, 1))
    torch.manual_seed(2)
    model, path = matches_torch(net, tmp_path, opset, (1, 2, 4, 5))
    assert "Resize" in ops_of(path) and "Upsample" not in ops_of(path)  # no old Upsample op at opset 13
    assert ("Shape" in ops_of(path)) == ("size" in kwargs)
    assert built(model) == ["Conv2D", "Upsample", "Conv2D"]
    up = model._nodes[model.execution_plan()[1]][0]
    assert (up.size, up.mode, bool(up.align_corners)) == (kwargs.get("size"), kwargs.get("mode", "nearest"),
                                                          bool(kwargs.get("align_corners")))
    assert model(np.zeros((5, 2, 4, 5), np.float32)).shape[0] == 5  # the batch from the input, not the Shape's 1


def test_a_shape_read_by_anything_but_a_resize_is_refused(tmp_path):
    """Shape's batch entry is the probe's 1: a Reshape to Shape(x) would fix the batch; refused."""
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("Reshape", ["x", "s"], ["y"], name="reshape")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
    path = tmp_path / "m.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    with pytest.raises(ValueError, match=r"node 'reshape' \(op Reshape, opset 17\).*a shape computed from Shape"):
        mdl.export.from_onnx(path)


def resize_model(tmp_path, scales=None, sizes=None, opset=17, **attrs):
    inits, names = [], ["x", "", "", ""]
    for i, name, value, kind in ((2, "scales", scales, TensorProto.FLOAT), (3, "sizes", sizes, TensorProto.INT64)):
        if value is not None:
            inits.append(helper.make_tensor(name, kind, [len(value)], value))
            names[i] = name
    names = names[:3] if sizes is None else names
    node = helper.make_node("Resize", names, ["y"], name="rs", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    path = tmp_path / "rs.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString())
    return path


def test_resize_with_constant_sizes_is_upsample_to_that_size(tmp_path):
    from onnx.reference import ReferenceEvaluator
    path = resize_model(tmp_path, sizes=[1, 2, 5, 7], mode="linear")
    model = mdl.export.from_onnx(path)
    assert built(model) == ["Upsample"] and model._nodes[built_name(model)][0].size == (5, 7)
    x = np.random.default_rng(0).standard_normal((1, 2, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(model(x), ReferenceEvaluator(str(path)).run(None, {"x": x})[0], rtol=1e-5, atol=1e-6)


def built_name(model):
    return model.execution_plan()[0]


@pytest.mark.parametrize("attrs, scales, message", [
    (dict(mode="cubic"), [1, 1, 2, 2], "mode='cubic'"),
    (dict(mode="nearest"), [1, 1, 2, 2], "coordinate_transformation_mode='half_pixel', nearest_mode="
                                         "'round_prefer_floor'"),
    (dict(mode="linear", antialias=1), [1, 1, 0.5, 0.5], "antialias"),
    (dict(mode="linear"), [1, 2, 2, 2], "N and C kept"),
    (dict(mode="linear", coordinate_transformation_mode="align_corners"), [1, 1, 1.5, 1.5],
     "ONNX aligns to the unrounded size"),
])
def test_resize_forms_without_an_upsample_are_refused(attrs, scales, message, tmp_path):
    with pytest.raises(ValueError, match=r"node 'rs' \(op Resize, opset 18\)") as info:
        mdl.export.from_onnx(resize_model(tmp_path, scales=scales, opset=18, **attrs))
    assert message in str(info.value)


# ------------------------------------------------------------------ activations torch writes as patterns
PATTERNS = [  # (module, the ops torch writes, the layer read)
    (nn.SiLU, ["Sigmoid", "Mul"], "SiLU"),
    (nn.GELU, ["Div", "Erf", "Add", "Mul", "Mul"], "GELU"),
    (lambda: nn.GELU(approximate="tanh"), ["Mul"] * 3 + ["Add", "Mul", "Tanh", "Add", "Mul", "Mul"], "GELU"),
    (nn.Mish, ["Softplus", "Tanh", "Mul"], "Mish"),
    (nn.Hardswish, None, "Hardswish"),  # HardSigmoid + Mul at opset 13, HardSwish at 17
]


@pytest.mark.parametrize("opset", [13, 17])
@pytest.mark.parametrize("module, ops, layer", PATTERNS)
def test_torch_activation_patterns_are_read_as_one_layer(opset, module, ops, layer, tmp_path):
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), module(), nn.Conv2d(3, 2, 1))
    torch.manual_seed(3)
    with torch.no_grad():  # inputs of the activation over its whole range (Hardswish's pieces, GELU's tails)
        net[0].weight.mul_(6)
    model, path = matches_torch(net, tmp_path, opset, (1, 2, 5, 5))
    written = [op for op in ops_of(path)[1:-1] if op != "Constant"]
    if ops is None:
        ops = ["HardSigmoid", "Mul"] if opset == 13 else ["HardSwish"]
    assert written == ops
    assert built(model) == ["Conv2D", layer, "Conv2D"]
    fused = model._nodes[model.execution_plan()[1]][0]
    assert getattr(fused, "approximate", "none") == getattr(net[1], "approximate", "none")


def test_a_pattern_whose_inner_value_is_used_elsewhere_is_not_fused(tmp_path):
    """y = x * sigmoid(x) + sigmoid(x): the Sigmoid's output is used outside x * Sigmoid(x); no SiLU."""
    class Net(nn.Module):
        def forward(self, x):
            s = torch.sigmoid(x)
            return x * s + s

    path = export(Net(), tmp_path / "m.onnx", 17, (1, 3))
    with pytest.raises(ValueError, match=r"\(op Mul, opset 17\).*Mul is read only inside the patterns torch writes "
                                         r"for .*SiLU.*a value inside one is also used elsewhere"):
        mdl.export.from_onnx(path)


def test_a_pattern_with_another_constant_is_not_fused(tmp_path):
    """x * HardSigmoid(x) with alpha 0.2 (not 1/6) is not Hardswish."""
    nodes = [helper.make_node("HardSigmoid", ["x"], ["h"], name="hs", alpha=0.2),
             helper.make_node("Mul", ["x", "h"], ["y"], name="mul")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
    path = tmp_path / "m.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())
    with pytest.raises(ValueError, match=r"node 'hs' \(op HardSigmoid, opset 13\).*HardSigmoid is read only inside "
                                         r"the patterns torch writes for Hardswish"):
        mdl.export.from_onnx(path)
