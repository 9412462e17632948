"""Conv1D, MaxPool1D, AvgPool1D: torch parity in float64 (values and every gradient) over grids,
dtypes, the errors that name the layer, and torch's modules both ways."""

import numpy as np
import pytest

import minidl as mdl
from minidl import layers as L
from minidl.testing import tie_free

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:Using padding=.same.:UserWarning")
TOL = 1e-10

CONV_GRID = [  # (in, out, k, kwargs, L)
    (2, 4, 3, {}, 9), (2, 4, 3, dict(stride=2, padding=1), 10), (2, 4, 4, dict(padding="same"), 9),
    (2, 4, 3, dict(padding="valid", dilation=3), 11), (4, 6, 3, dict(groups=2, padding=1, bias=False), 8),
    (3, 3, 5, dict(groups=3, stride=3, padding=2), 13), (1, 2, 1, {}, 4), (2, 2, 9, {}, 9),
    *[(2, 4, 3, dict(padding=2, stride=2, padding_mode=m), 9) for m in ("reflect", "replicate", "circular")],
]


def _grads(ours, theirs, x, seed=1):
    """Our output, dL/dx and parameter gradients against torch's, for a random upstream gradient."""
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    g = np.random.default_rng(seed).standard_normal(tuple(yt.shape))
    yt.backward(torch.from_numpy(g))
    y = ours(x)
    dx = ours.backward(g)
    assert y.shape == tuple(yt.shape) and dx.shape == x.shape
    errs = [np.abs(y - yt.detach().numpy()).max(), np.abs(dx - xt.grad.numpy()).max()]
    theirs_params = dict(theirs.named_parameters())
    errs += [np.abs(p.grad - theirs_params[n].grad.numpy()).max() for n, p in ours.named_parameters()]
    return errs


@pytest.mark.parametrize("c_in, c_out, k, kw, length", CONV_GRID)
def test_conv1d_matches_torch_float64(c_in, c_out, k, kw, length):
    layer = L.Conv1D(c_in, c_out, k, rng=0, dtype=np.float64, **kw)
    module = torch.nn.Conv1d(c_in, c_out, k, **kw, dtype=torch.float64)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(layer.weight.data))
        if layer.bias is not None:
            module.bias.copy_(torch.from_numpy(layer.bias.data))
    x = np.random.default_rng(0).standard_normal((3, c_in, length))
    assert max(_grads(layer, module, x)) <= TOL


POOL_GRID = [  # (kernel, stride, padding, dilation, ceil_mode), L
    ((2, None, 0, 1, False), 8), ((2, None, 0, 1, False), 9), ((3, 1, 1, 1, False), 7), ((3, 2, 1, 1, True), 8),
    ((3, 2, 1, 2, True), 10), ((4, 3, 2, 1, True), 11), ((5, 2, 0, 1, False), 5), ((1, 1, 0, 1, False), 3),
]


@pytest.mark.parametrize("args, length", POOL_GRID)
def test_max_pool1d_matches_torch_float64(args, length):
    k, s, p, d, ceil = args
    x = tie_free((2, 3, length), np.random.default_rng(length))
    errs = _grads(L.MaxPool1D(k, s, p, d, ceil), torch.nn.MaxPool1d(k, s, p, d, ceil_mode=ceil), x)
    assert max(errs) <= TOL


@pytest.mark.parametrize("include", [True, False])
@pytest.mark.parametrize("args, length", POOL_GRID)
def test_avg_pool1d_matches_torch_float64(args, length, include):
    k, s, p, _, ceil = args
    x = np.random.default_rng(length).standard_normal((2, 3, length))
    errs = _grads(L.AvgPool1D(k, s, p, ceil, include), torch.nn.AvgPool1d(k, s, p, ceil, include), x)
    assert max(errs) <= TOL


def test_max_pool1d_ties_go_to_the_first_maximum_as_torch():
    x = np.array([[[1.0, 3.0, 3.0, 3.0, 0.0, 2.0, 2.0]]])
    errs = _grads(L.MaxPool1D(3, 2, 1), torch.nn.MaxPool1d(3, 2, 1), x)
    assert max(errs) == 0


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("make", [lambda d: L.Conv1D(2, 3, 3, padding=1, rng=0, dtype=d),
                                  lambda d: L.MaxPool1D(2), lambda d: L.AvgPool1D(3, 1, 1)])
def test_1d_layers_keep_the_dtype(make, dtype):
    layer = make(dtype)
    y = layer(np.ones((2, 2, 6), dtype))
    assert y.dtype == dtype and layer.backward(np.ones_like(y)).dtype == dtype


def test_the_default_dtype_is_float32():
    assert L.Conv1D(2, 3, 3).weight.data.dtype == np.float32


@pytest.mark.parametrize("make, x, match", [
    (lambda: L.Conv1D(2, 3, 3), np.ones((2, 2, 5, 5), np.float32),
     r"Conv1D\(2, 3, kernel_size=3\): .*3 dim.*\(N, C, L\)"),
    (lambda: L.Conv1D(2, 3, 3), np.ones((2, 4, 5), np.float32),
     r"Conv1D\(2, 3, kernel_size=3\): expected input with 2 channels \(weight \(3, 2, 3\).*"
     r"shape \(2, 4, 5\) \(N, C, L\)"),
    (lambda: L.Conv1D(2, 6, 3, groups=2), np.ones((2, 3, 5), np.float32), r"expected input with 2 channels"),
    (lambda: L.Conv1D(2, 3, 7), np.ones((2, 2, 5), np.float32), r"Conv1D.*: the kernel spans 7 .*length 5"),
    (lambda: L.MaxPool1D(3, dilation=2), np.ones((1, 2, 4), np.float32), r"MaxPool1D.*: the kernel spans 5"),
    (lambda: L.AvgPool1D(4, padding=1), np.ones((1, 2, 1), np.float32), r"AvgPool1D.*length 3 \(input \(1, 2, 1\)"),
    (lambda: L.MaxPool1D(2), np.ones((2, 5), np.float32), r"MaxPool1D\(kernel_size=2\): .*\(N, C, L\)"),
    (lambda: L.AvgPool1D(2), np.ones((2, 2, 5), np.int64), r"AvgPool1D\(kernel_size=2\): .*float"),
])
def test_bad_inputs_name_the_layer(make, x, match):
    with pytest.raises((TypeError, ValueError), match=match):
        make()(x)


@pytest.mark.parametrize("build, error, match", [
    (lambda: L.Conv1D(2, 3, (3, 3)), TypeError, r"Conv1D: kernel_size must be an int or a tuple of one int"),
    (lambda: L.Conv1D(2, 3, 3, padding="full"), ValueError, r"Conv1D: padding must be an int, 'valid' or 'same'"),
    (lambda: L.Conv1D(2, 3, 3, stride=0), ValueError, r"Conv1D: stride must be >= 1"),
    (lambda: L.Conv1D(3, 4, 3, groups=2), ValueError, r"Conv1D: in_channels must be divisible by groups"),
    (lambda: L.Conv1D(2, 4, 3, padding_mode="wrap"), ValueError, r"Conv1D: padding_mode"),
    (lambda: L.MaxPool1D(2, padding=2), ValueError, r"MaxPool1D: padding should be at most half"),
    (lambda: L.MaxPool1D(2, padding="same"), ValueError, r"MaxPool1D: padding must be an int \(as in torch\)"),
    (lambda: L.AvgPool1D(2.0), TypeError, r"AvgPool1D: kernel_size must be an int"),
    (lambda: L.AvgPool1D(2, count_include_pad=None), TypeError, r"AvgPool1D: count_include_pad"),
])
def test_bad_arguments_name_the_layer(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_torch_modules_come_back_as_the_1d_layers():
    model = torch.nn.Sequential(torch.nn.Conv1d(2, 4, 3, padding="same", padding_mode="reflect"),
                                torch.nn.MaxPool1d(2, ceil_mode=True), torch.nn.Conv1d(4, 4, (3,), stride=(2,)),
                                torch.nn.AvgPool1d(3, 1, 1, count_include_pad=False)).eval()
    ours = mdl.interop.from_torch(model)
    assert [type(m).__name__ for m in ours] == ["Conv1D", "MaxPool1D", "Conv1D", "AvgPool1D"]
    x = np.random.default_rng(0).standard_normal((2, 2, 15)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours.eval()(x), expected, rtol=1e-5, atol=1e-6)


def test_same_padding_with_a_stride_is_refused_by_to_torch_as_torch_refuses_it():
    layer = L.Conv1D(2, 3, 3, stride=2, padding="same")
    assert layer(np.ones((1, 2, 7), np.float32)).shape == (1, 3, 4)  # Keras rule: ceil(7 / 2)
    with pytest.raises(TypeError, match=r"padding='same' and stride > 1"):
        mdl.interop.to_torch(layer)


def test_a_max_pool1d_with_return_indices_is_refused():
    with pytest.raises(TypeError, match="return_indices=True"):
        mdl.interop.from_torch(torch.nn.MaxPool1d(2, return_indices=True))


def test_1d_model_trains_saves_and_loads(tmp_path):
    model = mdl.Sequential(L.Conv1D(1, 4, 5, padding=2, rng=0), L.ReLU(), L.MaxPool1D(2), L.AvgPool1D(2),
                           L.Flatten(), L.Dense(4 * 4, 2, rng=1))
    x = np.random.default_rng(0).standard_normal((6, 1, 16)).astype(np.float32)
    model.save(tmp_path / "m.npz")
    back = mdl.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(back.eval()(x), model.eval()(x))
    assert repr(back[0]) == "Conv1D(1, 4, kernel_size=5, padding=2)"
