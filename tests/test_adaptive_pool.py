"""AdaptiveAvgPool2D, AdaptiveMaxPool2D, GlobalMaxPool2D: torch parity in float64 (values, indices and
input gradients) over a grid of bins (equal, overlapping, unequal, larger than the input, None),
torch's tie rule, the torch dispatch, errors, dtypes, memory."""

import tracemalloc

import numpy as np
import pytest

import minidl as mdl
from minidl import functional as F
from minidl import layers as L
from minidl.functional.adaptive import adaptive_bins
from minidl.testing import tie_free

torch = pytest.importorskip("torch")
TF = torch.nn.functional
TOL = 1e-10

GRID = [  # (input shape, output_size)
    ((2, 3, 6, 6), 2), ((2, 3, 6, 6), 3), ((2, 2, 7, 5), (3, 2)), ((1, 2, 5, 7), 4), ((2, 1, 10, 9), (4, 5)),
    ((1, 2, 4, 6), (None, 4)), ((1, 2, 4, 6), (3, None)), ((2, 2, 3, 5), 1), ((2, 2, 3, 5), (1, 1)),
    ((1, 1, 4, 5), (6, 7)), ((1, 1, 2, 3), (5, 5)), ((3, 2, 1, 9), (1, 4)), ((1, 3, 13, 11), (5, 7)),
]


def _torch_pair(fn, x, out):
    xt = torch.tensor(x, requires_grad=True)
    got = fn(xt, out)
    yt, it = got if isinstance(got, tuple) else (got, None)
    g = np.random.default_rng(1).standard_normal(tuple(yt.shape))
    yt.backward(torch.from_numpy(g))
    return yt.detach().numpy(), None if it is None else it.numpy(), xt.grad.numpy(), g


@pytest.mark.parametrize("shape, out", GRID)
def test_adaptive_avg_pool_matches_torch_float64(shape, out):
    x = np.random.default_rng(0).standard_normal(shape)
    y_t, _, dx_t, g = _torch_pair(TF.adaptive_avg_pool2d, x, out)
    layer = L.AdaptiveAvgPool2D(out)
    y = layer(x)
    assert y.shape == y_t.shape
    np.testing.assert_allclose(y, y_t, rtol=0, atol=TOL)
    np.testing.assert_allclose(layer.backward(g), dx_t, rtol=0, atol=TOL)


@pytest.mark.parametrize("ties", [False, True], ids=["tie_free", "ties"])
@pytest.mark.parametrize("shape, out", GRID)
def test_adaptive_max_pool_matches_torch_float64(shape, out, ties):
    """Values, torch's indices (the first maximum of a bin in row-major order) and dx, where
    overlapping bins that share their maximum add up."""
    rng = np.random.default_rng(0)
    x = np.round(rng.standard_normal(shape)) if ties else tie_free(shape, rng)
    y_t, idx_t, dx_t, g = _torch_pair(lambda a, o: TF.adaptive_max_pool2d(a, o, return_indices=True), x, out)
    y, idx = F.adaptive_max_pool2d(x, out, return_indices=True)
    np.testing.assert_array_equal(y, y_t)
    np.testing.assert_array_equal(idx, idx_t)
    layer = L.AdaptiveMaxPool2D(out)
    layer(x)
    np.testing.assert_allclose(layer.backward(g), dx_t, rtol=0, atol=TOL)


def test_bins_are_torchs():
    """start = floor(i H / out), end = ceil((i + 1) H / out), written out for H = 5, out = 3 and H = 2, out = 3."""
    assert adaptive_bins(5, 3) == [(0, 2), (1, 4), (3, 5)]
    assert adaptive_bins(2, 3) == [(0, 1), (0, 2), (1, 2)]
    assert adaptive_bins(6, 3) == [(0, 2), (2, 4), (4, 6)]


def test_an_element_in_two_bins_gets_both_gradients():
    x = np.array([[[[0.0, 1.0, 5.0, 2.0, 0.5]]]])  # W = 5, out 3: bins [0, 2), [1, 4), [3, 5)
    layer = L.AdaptiveMaxPool2D((1, 3))
    np.testing.assert_array_equal(layer(x), [[[[1.0, 5.0, 2.0]]]])
    np.testing.assert_array_equal(layer.backward(np.array([[[[1.0, 10.0, 100.0]]]])), [[[[0, 1, 10, 100, 0]]]])
    avg = L.AdaptiveAvgPool2D((1, 3))
    avg(x)
    np.testing.assert_allclose(avg.backward(np.array([[[[2.0, 3.0, 6.0]]]])), [[[[1, 2, 1, 4, 3]]]])


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 2, 1, 1), (3, 1, 7, 2)])
def test_global_max_pool_matches_adaptive_max_pool_1(shape):
    x = tie_free(shape, np.random.default_rng(0))
    y_t, _, dx_t, g = _torch_pair(TF.adaptive_max_pool2d, x, 1)
    layer = L.GlobalMaxPool2D()
    y = layer(x)
    assert y.shape == shape[:2] + (1, 1) == L.GlobalAvgPool2D()(x).shape  # as GlobalAvgPool2D's
    np.testing.assert_array_equal(y, y_t)
    np.testing.assert_allclose(layer.backward(g), dx_t, rtol=0, atol=TOL)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("make", [lambda: L.AdaptiveAvgPool2D((2, 3)), lambda: L.AdaptiveMaxPool2D(2),
                                  lambda: L.GlobalMaxPool2D()])
def test_the_dtype_is_kept(make, dtype):
    layer = make()
    y = layer(np.random.default_rng(0).standard_normal((2, 3, 5, 7)).astype(dtype))
    assert y.dtype == dtype and layer.backward(np.ones_like(y)).dtype == dtype


def test_torch_modules_convert_to_the_right_layer():
    nn = torch.nn
    cases = [(nn.AdaptiveAvgPool2d(1), L.GlobalAvgPool2D, None), (nn.AdaptiveMaxPool2d(1), L.GlobalMaxPool2D, None),
             (nn.AdaptiveAvgPool2d((1, 1)), L.AdaptiveAvgPool2D, (1, 1)),
             (nn.AdaptiveAvgPool2d((None, 3)), L.AdaptiveAvgPool2D, (None, 3)),
             (nn.AdaptiveMaxPool2d(2), L.AdaptiveMaxPool2D, (2, 2))]
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 6)).astype(np.float32)
    for module, cls, out in cases:
        layer = mdl.interop.from_torch(module)
        assert type(layer) is cls and (out is None or layer.output_size == out)
        with torch.no_grad():
            np.testing.assert_allclose(layer(x), module(torch.from_numpy(x)).numpy(), rtol=0, atol=1e-6)
        back = mdl.interop.to_torch(layer)
        assert type(back) is type(module) and back.output_size == (module.output_size if out is None else out)


@pytest.mark.parametrize("out, ops", [(1, {"GlobalMaxPool"}), ((2, 3), {"MaxPool"}),
                                      ((4, 3), {"Slice", "ReduceMax", "Concat"})])
def test_onnx_picks_the_simplest_form(out, ops, tmp_path):
    """1x1: the global op; bins that tile the plane: a pool; else Slice + ReduceMax + Concat, in onnxruntime."""
    ort = pytest.importorskip("onnxruntime")
    model = mdl.Sequential(L.AdaptiveMaxPool2D(out) if out != 1 else L.GlobalMaxPool2D())
    proto = mdl.export.to_onnx(model, tmp_path / "m.onnx", (2, 6, 9))
    assert ops <= {n.op_type for n in proto.graph.node}
    x = tie_free((3, 2, 6, 9), np.random.default_rng(0)).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(session.run(None, {"input": x})[0], model.eval()(x))


@pytest.mark.parametrize("build, error, match", [
    (lambda: L.AdaptiveAvgPool2D(0), ValueError, r"AdaptiveAvgPool2D: output_size must be >= 1"),
    (lambda: L.AdaptiveAvgPool2D((2, 2, 2)), TypeError, r"AdaptiveAvgPool2D: output_size must be an int or a pair"),
    (lambda: L.AdaptiveMaxPool2D(2.5), TypeError, r"AdaptiveMaxPool2D: output_size must be an int or a pair"),
    (lambda: L.AdaptiveMaxPool2D(2)(np.ones((2, 3, 4), np.float32)),
     ValueError, r"AdaptiveMaxPool2D\(output_size=\(2, 2\)\): expected x with 4 dimensions"),
    (lambda: L.AdaptiveAvgPool2D(2)(np.ones((2, 3, 0, 4), np.float32)),
     ValueError, r"AdaptiveAvgPool2D\(output_size=\(2, 2\)\): expected a non-empty H x W plane"),
    (lambda: L.GlobalMaxPool2D()(np.ones((2, 3, 4, 4), np.int32)), TypeError, r"GlobalMaxPool2D\(\): .*float"),
])
def test_bad_input_names_the_layer(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_config_and_repr_round_trip(tmp_path):
    model = mdl.Sequential(L.AdaptiveAvgPool2D((None, 3)), L.AdaptiveMaxPool2D(2), L.GlobalMaxPool2D())
    model.save(tmp_path / "m.npz")
    back = mdl.load(tmp_path / "m.npz")
    assert [repr(m) for m in back] == ["AdaptiveAvgPool2D(output_size=(None, 3))",
                                       "AdaptiveMaxPool2D(output_size=(2, 2))", "GlobalMaxPool2D()"]
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 7)).astype(np.float32)
    np.testing.assert_array_equal(back(x), model(x))


@pytest.mark.parametrize("make", [lambda: L.AdaptiveAvgPool2D((7, 7)), lambda: L.AdaptiveMaxPool2D((7, 7))])
def test_memory_stays_within_a_few_inputs(make):
    """The separable loops hold the (N, C, H, out_w) intermediate, never a copy per bin."""
    x = np.random.default_rng(0).standard_normal((8, 16, 64, 64)).astype(np.float32)
    layer = make()
    tracemalloc.start()
    y = layer(x)
    layer.backward(np.ones_like(y))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 3 * x.nbytes, (peak, x.nbytes)
