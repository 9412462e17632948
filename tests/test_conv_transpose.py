"""ConvTranspose2D and its kernels against torch.nn.ConvTranspose2d (float64: values, dX, dW, db),
its errors, its initialisation and its memory."""

from __future__ import annotations

import gc
import itertools
import math
import tracemalloc

import numpy as np
import pytest

import minidl as mdl
from minidl import functional as F
from minidl import layers as L

torch = pytest.importorskip("torch")


def measure(fn):
    """The tracemalloc peak of ``fn()`` above what existed before (as tests/test_memory.py's)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()

# (stride, padding, output_padding, dilation, groups, bias): every output_padding torch allows
GRID = [(s, p, op, d, g, b)
        for s, p, d, g, b in itertools.product((1, 2, 3), (0, 1, 2), (1, 2), (1, 2), (True, False))
        for op in range(max(s, d))]


def _pair(layer, x):
    """Our layer and its torch twin (same weights), both float64."""
    twin = torch.nn.ConvTranspose2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                                    layer.padding, layer.output_padding, layer.groups, layer.bias is not None,
                                    layer.dilation, dtype=torch.float64)
    with torch.no_grad():
        twin.weight.copy_(torch.from_numpy(layer.weight.data))
        if layer.bias is not None:
            twin.bias.copy_(torch.from_numpy(layer.bias.data))
    return twin


@pytest.mark.parametrize("s,p,op,d,g,b", GRID)
def test_matches_torch_float64_value_and_every_gradient(s, p, op, d, g, b):
    rng = np.random.default_rng(s * 100 + p * 10 + op + d * 1000 + g * 7)
    layer = L.ConvTranspose2D(4, 6, (3, 2), s, p, op, g, b, d, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 4, 4, 5))
    twin = _pair(layer, x)
    xt = torch.tensor(x, requires_grad=True)
    yt = twin(xt)
    y = layer(x)
    assert y.shape == tuple(yt.shape)  # torch's output size, output_padding included
    gy = rng.standard_normal(y.shape)
    yt.backward(torch.from_numpy(gy))
    dx = layer.backward(gy)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=0, atol=1e-11)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=0, atol=1e-11)
    np.testing.assert_allclose(layer.weight.grad, twin.weight.grad.numpy(), rtol=0, atol=1e-11)
    if b:
        np.testing.assert_allclose(layer.bias.grad, twin.bias.grad.numpy(), rtol=0, atol=1e-11)


def test_the_separate_backward_kernels_agree_with_the_shared_one():
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 4, 3, 4)), rng.standard_normal((4, 3, 3, 3))
    args = dict(stride=2, padding=1, output_padding=1, groups=2, dilation=1)
    g = rng.standard_normal(F.conv_transpose2d(x, w, **args).shape)
    dx, dw, db = F.conv_transpose2d_backward(x, w, g, **args)
    np.testing.assert_allclose(dx, F.conv_transpose2d_input(x.shape, w, g, **args), rtol=0, atol=1e-12)
    np.testing.assert_allclose(dw, F.conv_transpose2d_weight(x, w.shape, g, **args), rtol=0, atol=1e-12)
    np.testing.assert_allclose(db, g.sum(axis=(0, 2, 3)), rtol=0, atol=1e-12)
    assert F.conv_transpose2d_backward(x, w, g, **args, input_grad=False, bias=False)[::2] == (None, None)


def test_forward_is_the_input_gradient_of_the_convolution_with_the_same_weight():
    """The identity the layer is built on, checked with Conv2D's own backward: for a convolution of a
    6x6 input (stride 2, padding 1, 3x3) the 3x3 output's gradient maps back to 6x6 -- which takes
    output_padding=1 (a 5x5 input gives the same 3x3 output)."""
    rng = np.random.default_rng(4)
    w, g = rng.standard_normal((3, 2, 3, 3)), rng.standard_normal((1, 3, 3, 3))
    via_conv = F.conv2d_input((1, 2, 6, 6), w, g, stride=2, padding=1)
    np.testing.assert_allclose(F.conv_transpose2d(g, w, stride=2, padding=1, output_padding=1), via_conv,
                               rtol=0, atol=1e-12)
    assert F.conv_transpose2d(g, w, stride=2, padding=1).shape == (1, 2, 5, 5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_kept_and_float32_close_to_torch(dtype):
    rng = np.random.default_rng(5)
    layer = L.ConvTranspose2D(3, 2, 4, stride=2, padding=1, rng=rng, dtype=dtype)
    x = rng.standard_normal((2, 3, 5, 5)).astype(dtype)
    y = layer(x)
    dx = layer.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == layer.weight.grad.dtype == dtype and y.shape == (2, 2, 10, 10)
    twin = _pair(layer, x).to(getattr(torch, np.dtype(dtype).name))
    np.testing.assert_allclose(y, twin(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_initialisation_is_torchs_bound_with_fan_in_from_weight_shape_1():
    """torch: kaiming_uniform(a=sqrt(5)) on a weight (in, out / groups, kh, kw): fan_in = out / groups * kh * kw."""
    layer = L.ConvTranspose2D(64, 8, 3, groups=2, rng=0)
    bound = 1 / math.sqrt(8 // 2 * 9)
    for p in (layer.weight.data, layer.bias.data):
        assert np.abs(p).max() <= bound and np.abs(p).max() > 0.9 * bound
    assert layer.weight.shape == (64, 4, 3, 3) and layer.weight.dtype == np.float32


@pytest.mark.parametrize("kwargs, match", [
    (dict(stride=2, output_padding=2), r"output_padding must be smaller than either stride or dilation.*< 2"),
    (dict(stride=1, dilation=2, output_padding=(0, 2)), r".*got output_padding 2 along the width"),
    (dict(groups=3), r"in_channels \(4\) must be divisible by groups=3"),
    (dict(padding=-1), r"padding must be >= 0"),
    (dict(output_padding=-1), r"output_padding must be >= 0"),
])
def test_bad_arguments_say_what_and_how_to_fix(kwargs, match):
    with pytest.raises(ValueError, match="^ConvTranspose2D: " + match):
        L.ConvTranspose2D(4, 6, 3, **kwargs)


def test_bad_inputs_name_the_layer():
    layer = L.ConvTranspose2D(4, 2, 3, padding=3)
    with pytest.raises(ValueError, match=r"ConvTranspose2D\(4, 2.*expected input with 4 channels.*got 3"):
        layer(np.zeros((1, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"the output would be empty.*\(1, 1\).*less padding"):
        layer(np.zeros((1, 4, 3, 3), np.float32))  # (3 - 1) - 6 + 2 + 1 = -1
    with pytest.raises(TypeError, match=r"dtype"):
        layer(np.zeros((1, 4, 5, 5), np.float64))
    with pytest.raises(ValueError, match=r"4 dimensions"):
        layer(np.zeros((4, 5, 5), np.float32))
    with pytest.raises(TypeError, match=r"output_padding must be an int"):
        L.ConvTranspose2D(4, 2, 3, output_padding=0.5)


def test_the_kernels_check_shapes_naming_themselves():
    w, x = np.ones((2, 3, 3, 3)), np.ones((1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"conv_transpose2d_input: expected grad_output of shape \(1, 3, 6, 6\)"):
        F.conv_transpose2d_input(x.shape, w, np.ones((1, 3, 5, 5)))
    with pytest.raises(ValueError, match=r"conv_transpose2d: expected bias of shape \(3,\)"):
        F.conv_transpose2d(x, w, np.ones(2))


def test_from_torch_refuses_a_padding_mode_it_cannot_represent():
    m = torch.nn.ConvTranspose2d(2, 2, 3)
    m.padding_mode = "reflect"
    with pytest.raises(TypeError, match="padding_mode='reflect'"):
        mdl.interop.from_torch(m)


def test_memory_of_forward_and_backward_is_a_few_tensors():
    """The tracemalloc peak of a training step (forward + backward) stays within a few times the
    tensors it must hold: x, y, dx, dW and one unfolding of grad_output (kh * kw * C_out values per
    input pixel), not one copy per kernel offset."""
    n, c_in, c_out, h = 8, 16, 8, 14
    layer = L.ConvTranspose2D(c_in, c_out, 4, stride=2, padding=1, rng=0)
    x = np.random.default_rng(0).standard_normal((n, c_in, h, h)).astype(np.float32)
    g = np.ones((n, c_out, 2 * h, 2 * h), np.float32)

    def step():
        layer(x)
        return layer.backward(g)

    peak = measure(step)
    columns = n * h * h * 4 * 4 * c_out * 4  # G unfolded at the 14x14 positions, float32
    tensors = x.nbytes + 2 * g.nbytes + x.nbytes + layer.weight.data.nbytes  # x, y, g, dx, dW
    assert peak <= 2 * (columns + tensors) + 256 * 2**10, (peak, columns, tensors)
