"""Activations (LeakyReLU, Sigmoid, Tanh, GELU, Identity, Softmax) against torch.nn in float64.

Values and input gradients must agree to 1e-10 (observed: <= ~1e-16); a layer with a
wrong backward fails the same comparison (test at the bottom). Also: the sigmoid
never overflows, save/load, constructor errors.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import minidl as mdl
from minidl import functional as F
from minidl import layers

torch = pytest.importorskip("torch")

TOL = 1e-10

# (ours, theirs): the same activation on both sides
PAIRS = [
    ("leaky_relu", lambda: layers.LeakyReLU(), lambda: torch.nn.LeakyReLU()),
    ("leaky_relu_0.3", lambda: layers.LeakyReLU(0.3), lambda: torch.nn.LeakyReLU(0.3)),
    ("leaky_relu_neg", lambda: layers.LeakyReLU(-1.5), lambda: torch.nn.LeakyReLU(-1.5)),
    ("sigmoid", lambda: layers.Sigmoid(), lambda: torch.nn.Sigmoid()),
    ("tanh", lambda: layers.Tanh(), lambda: torch.nn.Tanh()),
    ("gelu", lambda: layers.GELU(), lambda: torch.nn.GELU()),
    ("gelu_tanh", lambda: layers.GELU("tanh"), lambda: torch.nn.GELU(approximate="tanh")),
    ("silu", lambda: layers.SiLU(), lambda: torch.nn.SiLU()),
    ("elu", lambda: layers.ELU(), lambda: torch.nn.ELU()),
    ("elu_0.5", lambda: layers.ELU(0.5), lambda: torch.nn.ELU(0.5)),
    ("elu_neg", lambda: layers.ELU(-2.0), lambda: torch.nn.ELU(-2.0)),
    ("softplus", lambda: layers.Softplus(), lambda: torch.nn.Softplus()),
    ("softplus_beta2_threshold5", lambda: layers.Softplus(2.0, 5.0), lambda: torch.nn.Softplus(2.0, 5.0)),
    ("softplus_beta0.5", lambda: layers.Softplus(0.5), lambda: torch.nn.Softplus(0.5)),
    ("hardswish", lambda: layers.Hardswish(), lambda: torch.nn.Hardswish()),
    ("mish", lambda: layers.Mish(), lambda: torch.nn.Mish()),
    ("identity", lambda: layers.Identity(), lambda: torch.nn.Identity()),
    ("softmax", lambda: layers.Softmax(), lambda: torch.nn.Softmax(dim=1)),
    ("softmax_last", lambda: layers.Softmax(-1), lambda: torch.nn.Softmax(dim=-1)),
    ("softmax_axis0", lambda: layers.Softmax(0), lambda: torch.nn.Softmax(dim=0)),
    ("log_softmax", lambda: layers.LogSoftmax(), lambda: torch.nn.LogSoftmax(dim=1)),
    ("log_softmax_last", lambda: layers.LogSoftmax(-1), lambda: torch.nn.LogSoftmax(dim=-1)),
    ("log_softmax_axis0", lambda: layers.LogSoftmax(0), lambda: torch.nn.LogSoftmax(dim=0)),
]


def _inputs(seed=0):
    """Wide-range values, exact zeros included (the kinks), in float64."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 4, 5, 6)) * 4
    x.flat[::17] = 0.0
    x.flat[1::23] = rng.choice([-40.0, 40.0, -700.0, 700.0], x.flat[1::23].shape)
    x.flat[2::29] = rng.choice([-3.0, 3.0], x.flat[2::29].shape)  # Hardswish's kinks
    return x, rng.standard_normal(x.shape)


def max_errors(ours, theirs, x, g):
    """(max |dy|, max |dx|) between our layer and the torch module."""
    y = ours(x)
    dx = ours.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    yt.backward(torch.tensor(g))
    return float(np.max(np.abs(y - yt.detach().numpy()))), float(np.max(np.abs(dx - xt.grad.numpy())))


@pytest.mark.parametrize("name, ours, theirs", PAIRS, ids=[p[0] for p in PAIRS])
def test_matches_torch_float64(name, ours, theirs):
    x, g = _inputs()
    ey, edx = max_errors(ours(), theirs(), x, g)
    assert ey <= TOL and edx <= TOL, (name, ey, edx)


@pytest.mark.parametrize("name, ours, theirs", PAIRS, ids=[p[0] for p in PAIRS])
def test_float32_close_to_torch(name, ours, theirs):
    x, g = _inputs(1)
    x32, g32 = np.clip(x, -30, 30).astype(np.float32), g.astype(np.float32)
    layer = ours()
    y, dx = layer(x32), layer.backward(g32)
    assert y.dtype == dx.dtype == np.float32
    xt = torch.tensor(x32, requires_grad=True)
    yt = theirs()(xt)
    yt.backward(torch.tensor(g32))
    # atol: float32 cancellation in 1 + tanh(u) near u = -9 (numpy's tanh and torch's differ by one ulp)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-5, atol=1e-5)


DTYPE_PAIRS = PAIRS + [("relu", lambda: layers.ReLU(), lambda: torch.nn.ReLU())]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("name, ours, theirs", DTYPE_PAIRS, ids=[p[0] for p in DTYPE_PAIRS])
def test_every_activation_keeps_the_dtype_as_torch(name, ours, theirs, dtype):
    """Output and input gradient in the input's dtype, as torch (GELU turned float16 into float64),
    and float16 values within a float16 rounding or two of torch's (which computes half in float32)."""
    x, g = _inputs(4)
    x, g = np.clip(x, -8, 8).astype(dtype), g.astype(dtype)
    layer = ours()
    y, dx = layer(x), layer.backward(g)
    assert (y.dtype, dx.dtype) == (dtype, dtype), name
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs()(xt)
    yt.backward(torch.tensor(g))
    assert yt.dtype == xt.grad.dtype == getattr(torch, np.dtype(dtype).name)
    tol = {np.float16: 4e-3, np.float32: 1e-5, np.float64: 1e-10}[dtype]
    np.testing.assert_allclose(y.astype(np.float64), yt.detach().double().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(dx.astype(np.float64), xt.grad.double().numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_sigmoid_never_overflows(dtype):
    big = float(np.finfo(dtype).max)
    x = np.array([-big, -1e4, -100.0, -1.0, 0.0, 1.0, 100.0, 1e4, big], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any numpy RuntimeWarning fails the test
        layer = layers.Sigmoid()
        s = layer(x)
        ds = layer.backward(np.ones_like(x))
    assert s.dtype == dtype and np.all(np.isfinite(s)) and np.all(np.isfinite(ds))
    assert s[0] == 0 and s[-1] == 1 and s[4] == 0.5
    assert np.all(np.diff(s) >= 0)


def test_nan_propagates_like_torch():
    x = np.array([np.nan, -1.0, 1.0])
    for ours, theirs in [(layers.LeakyReLU(), torch.nn.LeakyReLU()), (layers.Sigmoid(), torch.nn.Sigmoid()),
                         (layers.GELU(), torch.nn.GELU()), (layers.Tanh(), torch.nn.Tanh())]:
        y = ours(x)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(theirs(torch.tensor(x)).numpy()))


def test_softmax_rows_sum_to_one_along_the_channel_axis():
    x, g = _inputs(2)
    y = layers.Softmax()(x)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_log_softmax_is_the_log_of_softmax_and_stays_finite():
    x, g = _inputs(2)  # entries of +-700: softmax underflows to 0, its log would be -inf
    y = layers.LogSoftmax()(x)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(np.exp(y), layers.Softmax()(x), rtol=1e-12, atol=1e-300)


def test_identity_returns_the_same_arrays():
    x = np.ones((2, 3), np.float32)
    layer = layers.Identity()
    assert layer(x) is x
    g = np.ones_like(x)
    assert layer.backward(g) is g
    with pytest.raises(TypeError, match="dtype float32"):
        layer.backward(g.astype(np.float64))


@pytest.mark.parametrize("layer", [layers.LeakyReLU(0.2), layers.Sigmoid(), layers.Tanh(), layers.GELU("tanh"),
                                   layers.Identity(), layers.Softmax(-1), layers.ELU(0.5),
                                   layers.Softplus(2.0, 5.0), layers.Hardswish(), layers.Mish(),
                                   layers.PReLU(3, init=0.1), layers.LogSoftmax(-1)], ids=repr)
def test_save_load_round_trip(layer, tmp_path):
    model = mdl.Sequential(layers.Dense(4, 3, rng=0), layer)
    model.save(tmp_path / "m.npz")
    loaded = mdl.load(tmp_path / "m.npz")
    assert repr(loaded[1]) == repr(layer)
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x), model(x))


@pytest.mark.parametrize("make, error, match", [
    (lambda: layers.LeakyReLU("0.1"), TypeError, r"LeakyReLU: negative_slope must be a real number"),
    (lambda: layers.LeakyReLU(True), TypeError, "negative_slope"),
    (lambda: layers.LeakyReLU(float("nan")), ValueError, "finite"),
    (lambda: layers.GELU("erf"), ValueError, r"approximate must be 'none'.*Received: approximate='erf'"),
    (lambda: layers.Softmax(1.0), TypeError, r"Softmax: axis must be an int"),
    (lambda: layers.ELU("1"), TypeError, r"ELU: alpha must be a real number. Received: alpha='1'"),
    (lambda: layers.ELU(float("inf")), ValueError, r"ELU: alpha must be a finite number"),
    (lambda: layers.Softplus(0), ValueError, r"Softplus: beta must be a finite number other than 0"),
    (lambda: layers.Softplus(threshold=float("nan")), ValueError, r"Softplus: threshold must be a number \(not nan\)"),
    (lambda: layers.Softplus(True), TypeError, r"Softplus: beta must be a real number"),
    (lambda: layers.PReLU(0), ValueError, r"PReLU: num_parameters must be"),
    (lambda: layers.PReLU(init="0.25"), TypeError, r"PReLU: init must be a real number"),
    (lambda: layers.PReLU(dtype=np.int32), TypeError, r"PReLU"),
    (lambda: layers.LogSoftmax("1"), TypeError, r"LogSoftmax: axis must be an int"),
])
def test_constructor_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_forward_errors_name_the_layer():
    with pytest.raises(TypeError, match=r"GELU\(approximate='none'\): input must have a floating-point"):
        layers.GELU()(np.ones(3, dtype=np.int64))
    with pytest.raises(TypeError, match=r"Sigmoid\(\): input must be a numpy.ndarray"):
        layers.Sigmoid()([1.0])
    with pytest.raises(ValueError, match=r"Softmax\(axis=2\): axis 2 is out of range"):
        layers.Softmax(2)(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"LogSoftmax\(axis=-3\): axis -3 is out of range.*use an axis in \[-2, 1\]"):
        layers.LogSoftmax(-3)(np.ones((2, 3)))
    with pytest.raises(ValueError, match="shape"):
        F.gelu_backward(np.ones(3), np.ones(4))
    with pytest.raises(TypeError, match="dtype"):
        F.sigmoid_backward(np.ones(3, np.float32), np.ones(3))


# --------------------------------------------------- PReLU: a learnable slope per channel
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("num_parameters", [1, 4])
def test_prelu_matches_torch_values_and_both_gradients(num_parameters, dtype):
    """Output, dL/dx and dL/dweight against torch.nn.PReLU (exact zeros included: slope ``weight``
    there), the weights drawn per channel; dtype kept; float16 within a rounding or two."""
    x, g = _inputs(5)
    x, g = np.clip(x, -8, 8).astype(dtype), g.astype(dtype)
    w = np.random.default_rng(6).uniform(-1, 1, num_parameters).astype(dtype)
    ours = layers.PReLU(num_parameters, dtype=dtype)
    ours.weight.data[:] = w
    theirs = torch.nn.PReLU(num_parameters, dtype=getattr(torch, np.dtype(dtype).name))
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(w))
    y, dx = ours(x), ours.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    yt.backward(torch.tensor(g))
    assert y.dtype == dx.dtype == ours.weight.grad.dtype == dtype
    tol = {np.float16: 4e-3, np.float32: 1e-5, np.float64: 1e-10}[dtype]
    wtol = {np.float16: 0.5, np.float32: 1e-3, np.float64: 1e-10}[dtype]  # a sum over 90-360 terms
    np.testing.assert_allclose(y.astype(np.float64), yt.detach().double().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(dx.astype(np.float64), xt.grad.double().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(ours.weight.grad.astype(np.float64), theirs.weight.grad.double().numpy(),
                               rtol=tol, atol=wtol)


def test_prelu_state_dict_matches_torch_and_accumulates():
    layer = layers.PReLU(3, init=0.1)
    assert list(layer.state_dict()) == list(torch.nn.PReLU(3).state_dict()) == ["weight"]
    assert layer.weight.data.dtype == np.float32 and np.all(layer.weight.data == np.float32(0.1))
    x = -np.ones((2, 3, 2), np.float32)
    layer(x)
    layer.backward(np.ones_like(x))
    layer.backward(np.ones_like(x), input_grad=False)
    np.testing.assert_array_equal(layer.weight.grad, [-8.0, -8.0, -8.0])  # added, never overwritten


def test_prelu_input_errors_name_the_layer_and_the_fix():
    with pytest.raises(ValueError, match=r"PReLU\(num_parameters=3, init=0.25\): expected input of shape "
                                         r"\(N, 3, \*\).*got shape \(2, 4\)\. Set num_parameters"):
        layers.PReLU(3)(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3, \*\).*got shape \(3,\)"):
        layers.PReLU(3)(np.ones(3, np.float32))
    with pytest.raises(TypeError, match="dtype"):
        layers.PReLU()(np.ones(3, np.float64))
    with pytest.raises(ValueError, match=r"prelu: expected weight of shape \(1,\) or \(C,\)"):
        F.prelu(np.ones((2, 3)), np.ones(2))


# ------------------------------------------- the comparison catches a wrong gradient
class GELUWithoutDensityTerm(layers.GELU):
    """A plausible mistake: dGELU/dx = Phi(x), forgetting the x * phi(x) term."""

    def backward(self, grad_output):
        (x,) = self.saved_values
        return grad_output * 0.5 * (1 + F.gelu(x) / np.where(x == 0, 1, x) * 2 - 1)


class SigmoidBackwardFromInput(layers.Sigmoid):
    """Another: s * (1 - s) evaluated at the saved output as if it were the input."""

    def backward(self, grad_output):
        (s,) = self.saved_values
        t = F.sigmoid(s)
        return grad_output * t * (1 - t)


@pytest.mark.parametrize("broken, theirs", [(GELUWithoutDensityTerm, torch.nn.GELU),
                                            (SigmoidBackwardFromInput, torch.nn.Sigmoid)])
def test_the_comparison_and_gradcheck_catch_a_wrong_gradient(broken, theirs):
    x, g = _inputs()
    ey, edx = max_errors(broken(), theirs(), x, g)
    assert ey <= TOL and edx > 1e-2  # right values, wrong gradient: caught
    small = np.random.default_rng(3).standard_normal((4, 5))
    assert not mdl.gradcheck(broken(), small).passed
