"""mdl.export.to_onnx: onnx's checker accepts every model, onnxruntime computes minidl's outputs."""

import itertools

import numpy as np
import pytest

import minidl as mdl
from minidl import layers as L

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

BATCHES = (1, 3, 8)
LARGEST = []  # the largest |onnxruntime - minidl| of each check (printed with -s)


def check_export(model, input_shape, tmp_path, seed=0):
    """Export, check with onnx's full checker, compare onnxruntime with minidl's eval mode."""
    path = tmp_path / "model.onnx"
    model.eval()
    proto = mdl.export.to_onnx(model, path, input_shape)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    assert proto.opset_import[0].version == 17
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    for n in BATCHES:
        x = rng.standard_normal((n, *input_shape)).astype(np.float32)
        expected = model(x)
        (got,) = session.run(None, {"input": x})
        assert got.shape == expected.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
        worst = max(worst, float(np.abs(got - expected).max()))
    LARGEST.append(worst)
    print(f"largest |onnxruntime - minidl|: {worst:.3g}")
    return proto


def _random_stats(model, rng):
    for _, layer in _layers(model):
        if isinstance(layer, (L.BatchNorm1D, L.BatchNorm2D)):
            c = layer.num_features
            layer.running_mean[...] = rng.standard_normal(c)
            layer.running_var[...] = rng.uniform(0.5, 2.0, c)
            layer.weight.data[...] = rng.uniform(0.5, 1.5, c)
            layer.bias.data[...] = rng.standard_normal(c)


def _layers(model):
    yield "", model
    for name, child in model.named_children():
        yield from _layers(child)


def every_layer_model(rng):
    """A Graph holding every built-in layer type (Add and Concat included), and a nested Sequential."""
    g = mdl.Graph()
    g.add("conv", L.Conv2D(1, 4, 3, padding="same", rng=rng), "input")
    g.add("bn", L.BatchNorm2D(4), "conv")
    g.add("relu", L.ReLU(), "bn")
    g.add("leaky", L.LeakyReLU(0.2), "conv")
    g.add("sum", L.Add(), ["relu", "leaky"])
    g.add("sig", L.Sigmoid(), "sum")
    g.add("tanh", L.Tanh(), "sum")
    g.add("cat", L.Concat(), ["sig", "tanh", "conv"])
    g.add("drop2d", L.Dropout2D(0.5), "cat")
    g.add("gelu", L.GELU(), "drop2d")
    g.add("gelu_tanh", L.GELU("tanh"), "gelu")
    g.add("max", L.MaxPool2D(2), "gelu_tanh")
    g.add("avg", L.AvgPool2D(2, 1, padding=1, count_include_pad=False), "max")
    g.add("ident", L.Identity(), "avg")
    g.add("gap", L.GlobalAvgPool2D(), "ident")
    g.add("flat", L.Flatten(), "gap")
    g.add("head", mdl.Sequential(L.Dense(12, 6, rng=rng), L.BatchNorm1D(6), L.Dropout(0.3),
                                 L.Dense(6, 5, bias=False, rng=rng), L.Softmax()), "flat")
    return g


def test_every_layer_type(tmp_path):
    rng = np.random.default_rng(0)
    model = every_layer_model(rng)
    _random_stats(model, rng)
    check_export(model, (1, 8, 8), tmp_path)


def test_softmax_axis_flatten_start_dim_reshape(tmp_path):
    model = mdl.Sequential(L.Conv2D(2, 3, 1, rng=0), L.Softmax(axis=-1), L.Flatten(start_dim=2), L.Softmax(axis=1))
    check_export(model, (2, 4, 5), tmp_path)


def test_reference_cnn(tmp_path):
    check_export(mdl.models.reference_cnn(0), (1, 8, 8), tmp_path)


def test_digits_best_after_training(tmp_path):
    rng = np.random.default_rng(0)
    model = mdl.models.digits_best(0, width=8)
    x = rng.standard_normal((64, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(), mdl.optim.SGD(model.parameters(), lr=0.1))
    trainer.fit(x, y, epochs=1, batch_size=16, progress=False)
    bn = model[1]
    assert not np.allclose(bn.running_mean, 0) and not np.allclose(bn.running_var, 1)  # non-trivial stats
    check_export(model, (1, 8, 8), tmp_path)


def test_residual_graph(tmp_path):
    check_export(mdl.models.residual_cnn(0, channels=4), (1, 8, 8), tmp_path)


CONVS = [
    dict(padding=1), dict(padding=(1, 2)), dict(padding=((0, 2), (1, 0))), dict(padding="valid"),
    dict(padding="same", stride=2), dict(padding="same", kernel_size=4), dict(padding="same", stride=(2, 3)),
    dict(padding=2, dilation=2), dict(padding=1, stride=2, dilation=(1, 2)), dict(padding=1, groups=2),
    dict(padding=1, groups=4, out_channels=8), dict(padding=1, bias=False),
    *[dict(padding=p, padding_mode=m, stride=s)
      for m in ("reflect", "replicate", "circular")
      for p, s in ((1, 1), (((0, 2), (1, 0)), 1), ("same", 2), ((2, 1), 1))],
]


@pytest.mark.parametrize("kw", CONVS, ids=str)
def test_conv_padding_forms(kw, tmp_path):
    kw = {"in_channels": 4, "out_channels": 4, "kernel_size": 3, **kw}
    model = mdl.Sequential(L.Conv2D(**kw, rng=1))
    check_export(model, (4, 7, 8), tmp_path)


POOLS = [
    L.MaxPool2D(3, 3, 1, ceil_mode=True), L.MaxPool2D(3, 2, 1, ceil_mode=True), L.MaxPool2D(2, ceil_mode=True),
    L.MaxPool2D(3, 1, "same"), L.MaxPool2D(2, 1, 1, dilation=2), L.MaxPool2D(3, 2, (1, 0), dilation=(1, 2),
                                                                           ceil_mode=True),
    L.AvgPool2D(3, 3, 1, ceil_mode=True), L.AvgPool2D(3, 2, 1, ceil_mode=True),
    L.AvgPool2D(3, 2, 1, ceil_mode=True, count_include_pad=False), L.AvgPool2D(2, ceil_mode=True),
    L.AvgPool2D(3, 2, (1, 0), count_include_pad=False),
]


@pytest.mark.parametrize("pool", POOLS, ids=repr)
@pytest.mark.parametrize("hw", [(5, 5), (8, 7)])
def test_pooling(pool, hw, tmp_path):
    check_export(mdl.Sequential(pool), (2, *hw), tmp_path)


MAXPOOL_GRID = [(k, s, p, d, cm, hw) for k, s, d, cm, hw in itertools.product((2, 3, 4), (1, 2, 3), (1, 2),
                                                                            (False, True), (5, 6, 7, 8))
                for p in range(k // 2 + 1)]


def test_maxpool_grid_runs_in_onnxruntime_with_minidls_values(tmp_path):
    """Every small MaxPool2D configuration (336, of which 324 fit their input) loads in onnxruntime
    and gives minidl's eval values exactly. Before the -inf Pad, 6 of them passed onnx's checker but
    onnxruntime refused them ("Pad should be smaller than kernel": ceil_mode's extra pad with a
    dilation, e.g. MaxPool2D(2, 3, dilation=2, ceil_mode=True) on 7 x 7)."""
    assert len(MAXPOOL_GRID) == 336
    rng, refused, checked = np.random.default_rng(0), [], 0
    for k, s, p, d, cm, hw in MAXPOOL_GRID:
        layer = L.MaxPool2D(k, s, p, dilation=d, ceil_mode=cm).eval()
        x = rng.standard_normal((2, 2, hw, hw)).astype(np.float32)
        try:
            expected = layer(x)
        except ValueError:  # the dilated kernel does not fit the padded input
            continue
        proto = mdl.export.to_onnx(layer, tmp_path / "m.onnx", (2, hw, hw))
        onnx.checker.check_model(proto, full_check=True)
        try:
            session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own error type
            refused.append(((k, s, p, d, cm, hw), str(exc)[-60:]))
            continue
        np.testing.assert_array_equal(session.run(None, {"input": x})[0], expected, err_msg=str((k, s, p, d, cm)))
        checked += 1
    assert refused == [] and checked == 324, refused


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make, shape", [(lambda dt: L.BatchNorm1D(3, affine=False, dtype=dt), (3,)),
                                         (lambda dt: L.BatchNorm2D(3, affine=False, dtype=dt), (3, 4, 5))],
                         ids=["1d", "2d"])
def test_batchnorm_without_affine_exports_with_ones_and_zeros(make, shape, dtype, tmp_path):
    """ONNX's BatchNormalization needs a scale and a bias: ones and zeros of the model's dtype. A
    float64 BatchNorm with affine=False raised TypeError (the export probed it in float32)."""
    layer = make(dtype)
    rng = np.random.default_rng(0)
    layer.running_mean[...] = rng.standard_normal(3)
    layer.running_var[...] = rng.uniform(0.5, 2.0, 3)
    layer.eval()
    proto = mdl.export.to_onnx(layer, tmp_path / "bn.onnx", shape)
    onnx.checker.check_model(proto, full_check=True)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = rng.standard_normal((4, *shape)).astype(dtype)
    (got,) = session.run(None, {"input": x})
    assert got.dtype == dtype
    np.testing.assert_allclose(got, layer(x), rtol=0, atol=1e-12 if dtype == np.float64 else 1e-5)
    assert not np.allclose(got, x, atol=1e-3)  # the running statistics did something


class Doubler(L.Layer):
    def forward(self, x):
        return 2 * x


def test_unsupported_layer_names_it_and_its_position(tmp_path):
    model = mdl.Sequential(L.ReLU(), Doubler())
    with pytest.raises(TypeError, match=r"model\[1\].*Doubler.*no ONNX form"):
        mdl.export.to_onnx(model, tmp_path / "m.onnx", (3,))
    g = mdl.Graph()
    g.add("inner", mdl.Sequential(L.ReLU(), Doubler()))
    with pytest.raises(TypeError, match=r"model\['inner'\]\[1\]"):
        mdl.export.to_onnx(g, tmp_path / "m.onnx", (3,))
    with pytest.raises(TypeError, match="track_running_stats=False"):
        mdl.export.to_onnx(mdl.Sequential(L.BatchNorm1D(3, track_running_stats=False)), tmp_path / "m.onnx", (3,))
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary file left


def test_bad_input_shape(tmp_path):
    with pytest.raises(ValueError, match=r"input_shape.*Received: input_shape=8"):
        mdl.export.to_onnx(mdl.models.reference_cnn(0), tmp_path / "m.onnx", 8)


def test_written_atomically_and_modes_restored(tmp_path):
    model = mdl.models.digits_best(0, width=4)
    model.train()
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    mdl.export.to_onnx(model, path, (1, 8, 8))
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    assert onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert all(layer.training for _, layer in _layers(model))  # export did not leave it in eval mode


ROUND_TRIP = {
    "every_layer": (lambda: every_layer_model(np.random.default_rng(0)), (1, 8, 8)),
    "digits_best": (lambda: mdl.models.digits_best(0, width=4), (1, 8, 8)),
    "residual": (lambda: mdl.models.residual_cnn(0, channels=4), (1, 8, 8)),
    "conv_circular_same_s2": (lambda: L.Conv2D(2, 3, 3, 2, "same", padding_mode="circular", rng=0), (2, 7, 8)),
}


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_from_onnx_round_trip_is_exact(name, tmp_path):
    make, shape = ROUND_TRIP[name]
    model = make()
    _random_stats(model, np.random.default_rng(1))
    for _, layer in _layers(model):
        if isinstance(layer, (L.BatchNorm1D, L.BatchNorm2D)):
            layer.num_batches_tracked[...] = 7
    mdl.export.to_onnx(model, tmp_path / "m.onnx", shape)
    back = mdl.export.from_onnx(tmp_path / "m.onnx")
    assert type(back) is type(model) and repr(back) == repr(model) and not back.training
    want, got = model.state_dict(), back.state_dict()
    assert list(got) == list(want)
    for key in want:
        assert got[key].dtype == want[key].dtype and got[key].shape == want[key].shape, key
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    x = np.random.default_rng(2).standard_normal((3, *shape)).astype(np.float32)
    model.eval()
    np.testing.assert_array_equal(back(x), model(x))  # bit for bit


def test_from_onnx_reads_foreign_models(tmp_path):
    """Issue 19: a model minidl did not write is read node by node (it was refused before, 'not written by
    minidl'); tests/test_onnx_import.py checks torch's exports and the refusals."""
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(tmp_path / "foreign.onnx"))
    model = mdl.export.from_onnx(tmp_path / "foreign.onnx")
    np.testing.assert_array_equal(model(np.array([-2.0], np.float32)), [0.0])


def test_cli_export(tmp_path, capsys):
    from minidl import cli
    model = mdl.models.reference_cnn(0)
    model.save(tmp_path / "model.npz")
    argv = ["export", str(tmp_path / "model.npz"), str(tmp_path / "model.onnx"), "--input-shape", "1,8,8"]
    assert cli.main(argv) == 0
    assert "model.onnx (ONNX opset 17): input (N, 1, 8, 8) -> output (N, 10)" in capsys.readouterr().out
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((5, 1, 8, 8)).astype(np.float32)
    model.eval()
    np.testing.assert_allclose(session.run(None, {"input": x})[0], model(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("argv, message, code", [
    (["missing.npz", "m.onnx", "--input-shape", "1,8,8"], "cannot read", 1),
    (["model.npz", "m.onnx", "--input-shape", "1,12,12"], "expected input with 128 features", 1),
])
def test_cli_export_errors_are_one_line(argv, message, code, tmp_path, capsys, monkeypatch):
    from minidl import cli
    monkeypatch.chdir(tmp_path)
    mdl.models.reference_cnn(0).save(tmp_path / "model.npz")
    assert cli.main(["export", *argv]) == code
    err = capsys.readouterr().err
    assert err.startswith("minidl export: error:") and message in err and err.count("\n") == 1
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("shape", ["", "1,x,8", "0,8,8"])
def test_cli_export_bad_input_shape_is_a_usage_error(shape, capsys):
    from minidl import cli
    with pytest.raises(SystemExit) as exc:
        cli.main(["export", "model.npz", "m.onnx", "--input-shape", shape])
    assert exc.value.code == 2 and "positive integers separated by commas" in capsys.readouterr().err
