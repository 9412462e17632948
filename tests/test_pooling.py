"""AvgPool2D, GlobalAvgPool2D and MaxPool2D(dilation, ceil_mode) against torch.nn in float64.

Values and input gradients must agree to 1e-10 (observed: <= ~2e-15) over a grid of
geometries, in NCHW and in the channels-last strides Conv2D returns (which are pooled
without copying the input: peaks measured with tracemalloc). A layer with a wrong
backward fails the same comparison and gradcheck (bottom of the file).
"""

from __future__ import annotations

import itertools
import tracemalloc

import numpy as np
import pytest

import minidl as mdl
from minidl import functional as F
from minidl import layers

torch = pytest.importorskip("torch")

TOL = 1e-10


def is_channels_last(x):
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def max_errors(ours, theirs, x, g=None, seed=0):
    """(max |dy|, max |dx|) between our layer and the torch module, on ``x`` (any layout)."""
    y = ours(x)
    g = np.random.default_rng(seed).standard_normal(y.shape) if g is None else g
    dx = ours.backward(g)
    xt = torch.tensor(np.ascontiguousarray(x), requires_grad=True)
    yt = theirs(xt)
    assert tuple(yt.shape) == y.shape, (yt.shape, y.shape)
    yt.backward(torch.tensor(g))
    return float(np.max(np.abs(y - yt.detach().numpy()))), float(np.max(np.abs(dx - xt.grad.numpy())))


AVG_GRID = [(h, w, k, s, p, cm, cip)
            for h, w, k, s, p, cm, cip in itertools.product((5, 8), (7,), (1, 3), (1, 2), (0, 1),
                                                            (False, True), (True, False))
            if p <= k // 2]


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_avgpool_matches_torch_over_a_grid(layout):
    rng = np.random.default_rng(0)
    worst = 0.0
    for h, w, k, s, p, cm, cip in AVG_GRID:
        x = rng.standard_normal((2, 3, h, w))
        x = is_channels_last(x) if layout == "channels_last" else x
        ours = layers.AvgPool2D(k, s, p, ceil_mode=cm, count_include_pad=cip)
        theirs = torch.nn.AvgPool2d(k, s, p, ceil_mode=cm, count_include_pad=cip)
        worst = max(worst, *max_errors(ours, theirs, x))
    assert worst <= TOL, worst


MAX_GRID = [(h, w, k, s, p, d, cm)
            for h, w, k, s, p, d, cm in itertools.product((7, 8), (9,), (2, 3), (1, 2), (0, 1), (1, 2),
                                                          (False, True))
            if p <= k // 2]


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_maxpool_dilation_and_ceil_mode_match_torch_over_a_grid(layout):
    rng = np.random.default_rng(1)
    worst = 0.0
    for h, w, k, s, p, d, cm in MAX_GRID:
        x = rng.standard_normal((2, 3, h, w))
        x = is_channels_last(x) if layout == "channels_last" else x
        ours = layers.MaxPool2D(k, s, p, dilation=d, ceil_mode=cm)
        theirs = torch.nn.MaxPool2d(k, s, p, dilation=d, ceil_mode=cm)
        worst = max(worst, *max_errors(ours, theirs, x))
    assert worst <= TOL, worst


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 1, 1, 1), (3, 2, 8, 8)])
def test_global_avgpool_matches_adaptive_avgpool_1(shape):
    x = np.random.default_rng(2).standard_normal(shape)
    for xin in (x, is_channels_last(x)):
        ey, edx = max_errors(layers.GlobalAvgPool2D(), torch.nn.AdaptiveAvgPool2d(1), xin)
        assert ey <= TOL and edx <= TOL


def test_ceil_mode_window_that_hangs_over_the_edge():
    # 6 wide, k 3, s 2, p 1: floor((6 + 2 - 3) / 2) + 1 = 3 windows, ceil gives 4. The last starts at
    # 5 (< 6 + 1, so it is kept) and covers 5 (input), 6 (padding), 7 (beyond): its divisor is
    # min(5 + 3, 6 + 1) - 5 = 2 with count_include_pad, 1 without.
    x = np.ones((1, 1, 6, 6))
    for cip, corner in ((True, 1 / 4), (False, 1.0)):
        y = layers.AvgPool2D(3, 2, 1, ceil_mode=True, count_include_pad=cip)(x)
        expected = torch.nn.functional.avg_pool2d(torch.tensor(x), 3, 2, 1, ceil_mode=True, count_include_pad=cip)
        np.testing.assert_allclose(y, expected.numpy(), rtol=0, atol=1e-15)
        assert y.shape == (1, 1, 4, 4) and y[0, 0, 3, 3] == corner
        assert y[0, 0, 0, 0] == (4 / 9 if cip else 1.0)


def test_gradcheck_through_ceil_and_dilation():
    x = np.random.default_rng(3).permutation(2 * 2 * 7 * 6).reshape(2, 2, 7, 6) / 10.0  # no ties
    for layer in (layers.MaxPool2D(3, 2, 1, dilation=2, ceil_mode=True),
                  layers.AvgPool2D(3, 2, 1, ceil_mode=True, count_include_pad=False),
                  layers.AvgPool2D((2, 3), (2, 1), (1, 0), ceil_mode=True)):
        assert mdl.gradcheck(layer, x).passed


def _peak(fn):
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_channels_last_conv_output_is_pooled_without_copying_it():
    x = np.random.default_rng(4).standard_normal((8, 4, 32, 32)).astype(np.float32)
    y = layers.Conv2D(4, 16, 3, padding=1, rng=0)(x)
    assert not y.flags.c_contiguous and y.transpose(0, 2, 3, 1).flags.c_contiguous  # channels-last strides
    for layer, out_fraction in [(layers.AvgPool2D(2), 0.25),
                                (layers.AvgPool2D(3, 2, 1, ceil_mode=True, count_include_pad=False), 0.29),
                                (layers.GlobalAvgPool2D(), 0.01)]:
        out, peak = _peak(lambda: layer(y))
        np.testing.assert_allclose(out, layer(np.ascontiguousarray(y)), rtol=1e-6, atol=1e-6)
        # the output (and the small divisor), never a copy of the input (1.0)
        # (+ 256 KiB: numpy's fixed ufunc buffers for strided views)
        assert peak < out_fraction * y.nbytes + 2**18, (layer, peak / y.nbytes)
        g = np.ones(out.shape, np.float32)
        dx, peak = _peak(lambda: layer.backward(g))
        assert dx.shape == y.shape and peak < (1.0 + out_fraction) * y.nbytes + 2**18, (layer, peak / y.nbytes)


def test_eval_mode_keeps_nothing_but_shapes():
    layer = layers.AvgPool2D(2).eval()
    layer(np.ones((1, 1, 4, 4)))
    with pytest.raises(RuntimeError, match="eval mode"):
        layer.backward(np.ones((1, 1, 2, 2)))


@pytest.mark.parametrize("layer", [
    layers.AvgPool2D(3, 2, 1, ceil_mode=True, count_include_pad=False),
    layers.GlobalAvgPool2D(),
    layers.MaxPool2D(2, 1, 1, dilation=(2, 1), ceil_mode=True)], ids=repr)
def test_save_load_round_trip(layer, tmp_path):
    model = mdl.Sequential(layers.Conv2D(1, 2, 3, padding=1, rng=0), layer)
    model.save(tmp_path / "m.npz")
    loaded = mdl.load(tmp_path / "m.npz")
    assert repr(loaded[1]) == repr(layer)
    x = np.random.default_rng(0).standard_normal((2, 1, 7, 7)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x), model(x))


@pytest.mark.parametrize("make, error, match", [
    (lambda: layers.AvgPool2D(3, padding=2), ValueError, r"AvgPool2D: padding should be at most half the kernel"),
    (lambda: layers.AvgPool2D(2, padding="same"), TypeError, r"AvgPool2D: padding must be an int or a pair"),
    (lambda: layers.AvgPool2D(2, ceil_mode=1), TypeError, r"ceil_mode must be True or False"),
    (lambda: layers.AvgPool2D(2, count_include_pad="no"), TypeError, r"count_include_pad must be True or False"),
    (lambda: layers.MaxPool2D(2, dilation=0), ValueError, r"MaxPool2D: dilation must be >= 1"),
    (lambda: layers.MaxPool2D(2, ceil_mode=None), TypeError, r"MaxPool2D: ceil_mode must be True or False"),
])
def test_constructor_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_forward_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"AvgPool2D\(kernel_size=\(2, 2\)\): expected x with 4 dimensions"):
        layers.AvgPool2D(2)(np.ones((4, 4)))
    with pytest.raises(ValueError, match=r"GlobalAvgPool2D\(\): expected x with 4 dimensions"):
        layers.GlobalAvgPool2D()(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"kernel is larger than the padded input"):
        layers.MaxPool2D(3, dilation=3)(np.ones((1, 1, 6, 6)))
    with pytest.raises(ValueError, match=r"expected grad_output of shape"):
        F.avg_pool2d_backward((1, 1, 4, 4), np.ones((1, 1, 3, 3)), 2)


@pytest.mark.parametrize("ours, theirs", [(lambda: layers.AvgPool2D(2), lambda: torch.nn.AvgPool2d(2)),
                                          (lambda: layers.MaxPool2D(2), lambda: torch.nn.MaxPool2d(2))],
                         ids=["avg", "max"])
def test_zero_channels_are_refused_as_torch_does_and_empty_batches_pooled(ours, theirs):
    """AvgPool2D pooled an (N, 0, H, W) input into (N, 0, ...); torch's pooling refuses it (MaxPool2D did)."""
    for shape in ((2, 0, 4, 4), (0, 0, 4, 4)):
        with pytest.raises(RuntimeError):
            theirs()(torch.zeros(shape))
        with pytest.raises(ValueError, match=r"Pool2D\(kernel_size=\(2, 2\)\): expected at least one channel, "
                           r"as PyTorch does .*Received: x of shape \(\d, 0, 4, 4\)"):
            ours()(np.zeros(shape, np.float32))
    layer = ours()
    y = layer(np.zeros((0, 3, 4, 4), np.float32))
    assert y.shape == tuple(theirs()(torch.zeros(0, 3, 4, 4)).shape) == (0, 3, 2, 2)
    assert layer.backward(y).shape == (0, 3, 4, 4)


def test_global_avgpool_takes_zero_channels_as_adaptive_avgpool_1():
    """torch 2.13's AdaptiveAvgPool2d(1) pools (N, 0, H, W) into (N, 0, 1, 1), so GlobalAvgPool2D does too."""
    for shape in ((2, 0, 4, 4), (0, 0, 4, 4)):
        layer = layers.GlobalAvgPool2D()
        y = layer(np.zeros(shape, np.float32))
        assert y.shape == tuple(torch.nn.AdaptiveAvgPool2d(1)(torch.zeros(shape)).shape) == shape[:2] + (1, 1)
        assert layer.backward(y).shape == shape


# ------------------------------------------- the comparison catches a wrong gradient
class AvgPoolDividingByTheKernelSize(layers.AvgPool2D):
    """A plausible mistake: backward divides by the full window (count_include_pad=True's
    divisors) even when the forward excluded the padding."""

    def backward(self, grad_output):
        in_shape, _, _ = self.saved_values
        return F.avg_pool2d_backward(in_shape, grad_output, self.kernel_size, self.stride, self.padding,
                                     self.ceil_mode, True)


class MaxPoolIgnoringDilationInBackward(layers.MaxPool2D):
    """Another: the argmax scattered as if the window were not dilated."""

    def backward(self, grad_output):
        shape, dtype, idx = self.saved_values
        return F.max_pool2d_backward(shape, grad_output, idx, self.kernel_size, self.stride, self.padding,
                                     1, self.ceil_mode)


def test_the_comparison_and_gradcheck_catch_a_wrong_gradient():
    x = np.random.default_rng(5).permutation(2 * 2 * 7 * 7).reshape(2, 2, 7, 7) / 10.0
    kw = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    ey, edx = max_errors(AvgPoolDividingByTheKernelSize(**kw), torch.nn.AvgPool2d(**kw), x)
    assert ey <= TOL and edx > 1e-2
    assert not mdl.gradcheck(AvgPoolDividingByTheKernelSize(**kw), x).passed
    broken = MaxPoolIgnoringDilationInBackward(2, 1, dilation=2)
    with pytest.raises(ValueError):  # the undilated geometry does not even fit the gradient's shape
        max_errors(broken, torch.nn.MaxPool2d(2, 1, dilation=2), x)


# ------------------------------------------------ divisor_override (torch's AvgPool2d option)
@pytest.mark.parametrize("divisor", [1, 3, 7, -2])
@pytest.mark.parametrize("k, s, p, ceil, include", [
    (2, None, 0, False, True), (3, 2, 1, True, False), (3, 2, 1, True, True), ((2, 3), 1, (1, 1), False, True),
    (3, 3, 1, True, False),
])
def test_avgpool_divisor_override_matches_torch(k, s, p, ceil, include, divisor):
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 6))
    for layout in (x, is_channels_last(x)):
        ey, edx = max_errors(layers.AvgPool2D(k, s, p, ceil, include, divisor),
                             torch.nn.AvgPool2d(k, s, p, ceil, include, divisor), layout)
        assert ey <= TOL and edx <= TOL, (ey, edx)
    g = np.random.default_rng(1).standard_normal(F.avg_pool2d(x, k, s, p, ceil, include).shape)
    np.testing.assert_allclose(F.avg_pool2d(x, k, s, p, ceil, include, divisor),
                               torch.nn.functional.avg_pool2d(torch.from_numpy(x), k, s, p, ceil, include,
                                                              divisor).numpy(), rtol=0, atol=TOL)
    np.testing.assert_allclose(F.avg_pool2d_backward(x.shape, g, k, s, p, ceil, include, divisor) * divisor,
                               F.avg_pool2d_backward(x.shape, g, k, s, p, ceil, include, 1), rtol=0, atol=TOL)


def test_divisor_override_converts_both_ways_and_exports(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    module = torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False, divisor_override=4)
    layer = mdl.interop.from_torch(module)  # refused before: "with divisor_override"
    assert layer.divisor_override == 4 and repr(layer).endswith("divisor_override=4)")
    assert mdl.interop.to_torch(layer).divisor_override == 4
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 6)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(layer(x), module(torch.from_numpy(x)).numpy(), rtol=0, atol=1e-6)
    mdl.export.to_onnx(mdl.Sequential(layer), tmp_path / "m.onnx", x.shape[1:])
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0], layer(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("value, error, match", [
    (0, ValueError, r"AvgPool2D: divisor_override must not be zero"),
    (2.0, TypeError, r"AvgPool2D: divisor_override must be None or an int"),
    (True, TypeError, r"AvgPool2D: divisor_override must be None or an int"),
])
def test_divisor_override_errors_name_the_layer(value, error, match):
    with pytest.raises(error, match=match):
        layers.AvgPool2D(2, divisor_override=value)
    with pytest.raises(error, match=match.replace("AvgPool2D", "avg_pool2d")):
        F.avg_pool2d(np.ones((1, 1, 4, 4)), 2, divisor_override=value)
