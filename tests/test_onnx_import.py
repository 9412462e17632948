"""``export.from_onnx`` reads ONNX CNNs minidl did not write (issue 19): torch.onnx.export of torch CNNs at
opsets 13 and 17 become minidl Graphs with torch's outputs, torch's gradients and torch's SGD step; every
other op, domain, opset or form is refused with a ValueError naming the node, its op and the opset."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="ONNX import needs onnx (pip install -e '.[onnx]')")
torch = pytest.importorskip("torch", reason="the torch-exported models need torch")
from onnx import TensorProto, helper  # noqa: E402
from torch import nn  # noqa: E402

import minidl as mdl  # noqa: E402


class ResNetLike(nn.Module):
    """Every supported torch module once: a residual block, a channel concat, both pools, the head."""

    def __init__(self, act, head):
        super().__init__()
        self.pad = nn.ZeroPad2d((1, 0, 1, 0))  # merged into the Conv after it
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.act = act
        self.max, self.avg, self.gap = nn.MaxPool2d(2), nn.AvgPool2d(2), nn.AdaptiveAvgPool2d((1, 1))
        self.drop, self.fc = nn.Dropout(0.25), nn.Linear(8, 5)
        self.w, self.b = nn.Parameter(torch.randn(5, 3)), nn.Parameter(torch.randn(3))  # MatMul + Add
        self.head = head

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(self.pad(x))))
        y = self.act(self.conv2(y)) + y  # residual Add
        y = torch.cat([self.max(y), self.avg(y)], 1)
        y = nn.Flatten()(self.gap(y))
        return self.head(self.drop(self.fc(y)) @ self.w + self.b)


ACTS = [nn.ReLU, lambda: nn.LeakyReLU(0.2), nn.Sigmoid, nn.Tanh, lambda: nn.ELU(0.7), nn.Hardswish, nn.Softplus,
        lambda: nn.PReLU(4, 0.1), nn.Identity]  # a fresh module per test: PReLU's gradient accumulates


def export(module, path, opset, shape=(2, 2, 9, 9)):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.zeros(shape),), str(path), opset_version=opset, dynamo=False,
                          training=torch.onnx.TrainingMode.PRESERVE, input_names=["x"],
                          dynamic_axes={"x": {0: "N"}})
    return path


def torch_cnn(act, head, seed):
    torch.manual_seed(seed)
    net = ResNetLike(act, head)
    with torch.no_grad():  # statistics that are not the defaults, so a mix-up shows
        net.bn.running_mean.uniform_(-1, 1)
        net.bn.running_var.uniform_(0.5, 2)
        net.bn.weight.uniform_(0.5, 1.5)
    return net


def partner(param, torch_params):
    """The torch parameter a minidl Parameter was read from (same values, or transposed for MatMul)."""
    for p in torch_params:
        t = p.detach().numpy()
        if t.shape == param.data.shape and np.array_equal(t, param.data):
            return p, False
        if t.ndim == 2 and t.T.shape == param.data.shape and np.array_equal(t.T, param.data):
            return p, True
    raise AssertionError(f"no torch parameter has the values of a {param.data.shape} Parameter")


# torch writes Hardswish as x * HardSigmoid(x) before opset 14: read as Hardswish (its onnx_patterns)
CASES = [(opset, i) for opset in (13, 17) for i in range(len(ACTS))]


@pytest.mark.parametrize("opset, i", CASES)
def test_torch_cnn_imports_with_torchs_values_gradients_and_sgd_step(opset, i, tmp_path):
    head = [nn.Softmax(1), nn.LogSoftmax(1)][i % 2]
    net = torch_cnn(ACTS[i](), head, seed=i)
    model = mdl.export.from_onnx(export(net, tmp_path / "m.onnx", opset))
    assert isinstance(model, mdl.Graph) and not model.training
    rng = np.random.default_rng(i)
    x = rng.standard_normal((4, 2, 9, 9)).astype(np.float32)
    out = model(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, net(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-5)

    # training: batch statistics, gradients of sum(out * g) for every parameter, then one SGD step
    net.train()
    net.drop.eval()  # the eval export has no Dropout node (torch drops it); compare without drawing masks
    model.train()
    g = rng.standard_normal(out.shape).astype(np.float32)
    t_params = list(net.parameters())
    assert len(model.parameters()) == len(t_params)
    pairs = [(p, *partner(p, t_params)) for p in model.parameters()]
    loss_t = (net(torch.from_numpy(x)) * torch.from_numpy(g)).sum()
    loss_t.backward()
    loss_m = float((model(x) * g).sum())
    model.backward(g)
    assert loss_m == pytest.approx(loss_t.item(), rel=1e-5, abs=1e-5)
    for p, tp, transposed in pairs:
        tg = tp.grad.numpy().T if transposed else tp.grad.numpy()
        np.testing.assert_allclose(p.grad, tg, rtol=1e-4, atol=1e-5)
    mdl.optim.SGD(model.parameters(), lr=0.1).step()
    torch.optim.SGD(net.parameters(), lr=0.1).step()
    after_t = (net(torch.from_numpy(x)) * torch.from_numpy(g)).sum().item()
    after_m = float((model(x) * g).sum())
    assert after_m != pytest.approx(loss_m, abs=1e-4)  # the step changed the loss ...
    assert after_m == pytest.approx(after_t, rel=1e-4, abs=1e-4)  # ... as torch's step did


def test_conv_then_flatten_then_linear_at_fixed_batch(tmp_path):
    """A torch export without dynamic axes (batch fixed at 3) and x.reshape(3, -1): any batch afterwards."""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 2, 3, stride=2), nn.Linear(2 * 3 * 3, 4)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).reshape(3, -1))

    torch.manual_seed(0)
    net = Net().eval()
    path = tmp_path / "m.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(3, 1, 7, 7),), str(path), opset_version=17, dynamo=False)
    model = mdl.export.from_onnx(path)
    x = np.random.default_rng(0).standard_normal((3, 1, 7, 7)).astype(np.float32)
    np.testing.assert_allclose(model(x), net(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-5)
    assert model(x[:2]).shape == (2, 4)


# ------------------------------------------------------------------ refusals
def onnx_model(nodes, opset=17, inits=(), domain_imports=(), in_shape=("N", 3), out_shape=("N", 3)):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))],
                              list(inits))
    opsets = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, 1) for d in domain_imports)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def refused(proto, tmp_path, *parts):
    path = tmp_path / "m.onnx"
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(ValueError) as info:
        mdl.export.from_onnx(path)
    message = str(info.value)
    assert message.startswith("from_onnx: ") and repr(str(path)) in message
    for part in parts:
        assert part in message, message
    return message


def test_unsupported_op_is_refused_naming_node_op_and_opset(tmp_path):
    node = helper.make_node("Einsum", ["x"], ["y"], name="my_einsum", equation="ni->ni")
    refused(onnx_model([node]), tmp_path, "node 'my_einsum' (op Einsum, opset 17)", "not supported",
                      "Conv")  # the supported ops are listed


def test_torch_lstm_is_refused(tmp_path):
    lstm = nn.LSTM(3, 4)
    path = tmp_path / "lstm.onnx"
    state = (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4))  # given, so torch computes no zeros from Shape first
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(lstm, (torch.zeros(5, 2, 3), state), str(path), opset_version=17, dynamo=False)
    with pytest.raises(ValueError, match=r"from_onnx: node '[^']+' \(op LSTM, opset 17\) in .*LSTM is not supported"):
        mdl.export.from_onnx(path)


def test_non_default_domain_is_refused(tmp_path):
    node = helper.make_node("FusedGemm", ["x"], ["y"], name="fused", domain="com.microsoft")
    refused(onnx_model([node], domain_imports=["com.microsoft"]), tmp_path,
            "node 'fused' (op FusedGemm, opset 17)", "domain is 'com.microsoft'")


@pytest.mark.parametrize("opset", [12, 99])
def test_opsets_outside_13_to_the_installed_newest_are_refused(opset, tmp_path):
    refused(onnx_model([helper.make_node("Relu", ["x"], ["y"], name="r")], opset=opset), tmp_path,
            f"its opset is {opset}", "minidl reads opsets 13 to")


def test_reshape_that_merges_the_batch_is_refused(tmp_path):
    shape = helper.make_tensor("shape", TensorProto.INT64, [1], [-1])
    node = helper.make_node("Reshape", ["x", "shape"], ["y"], name="merge")
    refused(onnx_model([node], inits=[shape], in_shape=("N", 2, 3), out_shape=("M",)), tmp_path,
            "node 'merge' (op Reshape, opset 17)", "merges or splits the batch axis")


def test_flatten_at_axis_2_merges_the_batch_and_is_refused(tmp_path):
    node = helper.make_node("Flatten", ["x"], ["y"], name="f", axis=2)
    refused(onnx_model([node], in_shape=("N", 2, 3)), tmp_path, "node 'f' (op Flatten, opset 17)", "axis 1")


def test_training_mode_batchnorm_is_refused(tmp_path):
    c = [helper.make_tensor(n, TensorProto.FLOAT, [3], [1.0, 1.0, 1.0]) for n in ("s", "b", "m", "v")]
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn", training_mode=1)
    refused(onnx_model([node], inits=c), tmp_path, "node 'bn' (op BatchNormalization, opset 17)", "training mode")


def test_foreign_initializer_stored_outside_is_refused(tmp_path):
    w = helper.make_tensor("w", TensorProto.FLOAT, [3, 3], [0.0] * 9)
    w.ClearField("float_data")
    w.data_location = TensorProto.EXTERNAL
    entry = w.external_data.add()
    entry.key, entry.value = "location", "/etc/passwd"
    node = helper.make_node("Gemm", ["x", "w"], ["y"], name="fc")
    refused(onnx_model([node], inits=[w]), tmp_path, "external data")


def test_foreign_initializer_shorter_than_declared_is_refused(tmp_path, ceiling):
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2**20, 2**20], raw_data=bytes(16))
    node = helper.make_node("Gemm", ["x", "w"], ["y"], name="fc")
    with ceiling(1.0, 4 * 2**20):
        refused(onnx_model([node], inits=[w]), tmp_path, "max_bytes")
    with ceiling(1.0, 4 * 2**20), pytest.raises(ValueError, match="stores 16 bytes"):
        path = tmp_path / "m.onnx"
        mdl.export.from_onnx(path, max_bytes=None)


def test_huge_declared_input_is_refused_before_allocating(tmp_path, ceiling):
    node = helper.make_node("Relu", ["x"], ["y"], name="r")
    with ceiling(1.0, 4 * 2**20):
        refused(onnx_model([node], in_shape=("N", 2**20, 2**20), out_shape=("N", 2**20, 2**20)), tmp_path,
                "max_bytes")


def test_a_foreign_relu_model_imports(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(onnx_model([helper.make_node("Relu", ["x"], ["y"], name="r")]).SerializeToString())
    model = mdl.export.from_onnx(path)
    np.testing.assert_array_equal(model(np.array([[-1.0, 0.0, 2.0]], np.float32)), [[0.0, 0.0, 2.0]])


def test_reshape_adding_a_unit_axis_is_refused_not_dropped(tmp_path):
    """onnx's test_reshape_zero_dim ((N, 3, 4) -> (N, 3, 4, 1)) came back as (N, 3, 4) before: a trailing
    axis of 1 was taken for a flatten of no axes."""
    shape = helper.make_tensor("shape", TensorProto.INT64, [4], [0, 0, 4, 1])
    node = helper.make_node("Reshape", ["x", "shape"], ["y"], name="unit")
    refused(onnx_model([node], inits=[shape], in_shape=("N", 3, 4), out_shape=("N", 3, 4, 1)), tmp_path,
            "node 'unit' (op Reshape, opset 17)", "only as a Flatten")


def test_reshape_to_n_minus_one_is_a_flatten(tmp_path):
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 12])
    node = helper.make_node("Reshape", ["x", "shape"], ["y"], name="flat")
    path = tmp_path / "m.onnx"
    path.write_bytes(onnx_model([node], inits=[shape], in_shape=("N", 3, 4), out_shape=("N", 12)).SerializeToString())
    x = np.arange(48, dtype=np.float32).reshape(2, 2, 3, 4)[0].reshape(2, 3, 4)
    np.testing.assert_array_equal(mdl.export.from_onnx(path)(x), x.reshape(2, 12))


def test_a_second_class_declaring_an_op_reads_what_the_first_refuses(tmp_path):
    """The importer asks every class that declares an op (Conv2D, then Conv1D, then a Conv3D, say), in
    registration order."""
    from minidl.layers.registry import REGISTRY, register_layer

    @register_layer
    class ThreeDimConvProbe(mdl.layers.Layer):  # reads 3-D Conv nodes as "x * w" (1x1x1 kernel, one channel)
        onnx_imports = ("Conv",)

        def __init__(self, scale=1.0):
            super().__init__()
            self.scale = scale

        def forward(self, x):
            return x * self.scale

        @classmethod
        def from_onnx_node(cls, node):
            return cls(float(node.consts[1].reshape(-1)[0]))

    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 1, 1, 1], [3.0])
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv3d")
    path = tmp_path / "m.onnx"
    shape = ("N", 1, 2, 2, 2)
    path.write_bytes(onnx_model([node], inits=[w], in_shape=shape, out_shape=shape).SerializeToString())
    try:
        model = mdl.export.from_onnx(path)
        np.testing.assert_array_equal(model(np.ones((2, 1, 2, 2, 2), np.float32)), np.full((2, 1, 2, 2, 2), 3.0))
    finally:
        REGISTRY.pop("ThreeDimConvProbe")
    with pytest.raises(ValueError, match=r"node 'conv3d' \(op Conv, opset 17\).*as Conv2D: on 3-D data.*only 2-D "
                                         r"\(Conv2D\); as Conv1D: on 3-D data.*only 1-D \(Conv1D\)"):
        mdl.export.from_onnx(path)  # without it: the reasons of Conv2D and Conv1D
