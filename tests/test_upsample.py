"""Upsample and its kernels against torch.nn.Upsample (values and input gradient, every dtype), the
backward as the transpose of the forward, and the errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import minidl as mdl
from minidl import functional as F
from minidl import layers as L

torch = pytest.importorskip("torch")

MODES = [("nearest", None), ("bilinear", False), ("bilinear", True)]
# integer and float factors (torch reads floor(u / factor) then, not floor(u * H / H_out): 1.7 and 2.3 tell
# them apart), shrinking ones, one that keeps a size (1.1 on 5 rows: torch copies), and sizes
RESIZES = [dict(scale_factor=2), dict(scale_factor=3), dict(scale_factor=1.5), dict(scale_factor=(1.7, 0.6)),
           dict(scale_factor=2.3), dict(scale_factor=0.5), dict(scale_factor=1.1), dict(scale_factor=2.05),
           dict(size=(9, 3)), dict(size=1), dict(size=(10, 8)), dict(size=(3, 13))]
SHAPES = [(5, 4), (1, 3), (7, 7), (2, 10)]
GRID = [(hw, r, m, a) for hw, r, (m, a) in itertools.product(SHAPES, RESIZES, MODES)
        if min(np.floor(np.multiply(hw, r.get("scale_factor", 1)))) >= 1]


def _run(layer, module, x, g):
    """(ours, theirs): output and input gradient."""
    xt = torch.tensor(x, requires_grad=True)
    yt = module(xt)
    y = layer(x)
    yt.backward(torch.from_numpy(g if g is not None else np.ones(y.shape, x.dtype)))
    dx = layer.backward(g if g is not None else np.ones_like(y))
    return (y, dx), (yt.detach().numpy(), xt.grad.numpy())


@pytest.mark.parametrize("hw, resize, mode, align", GRID)
def test_matches_torch_float64(hw, resize, mode, align):
    rng = np.random.default_rng(0)
    layer = L.Upsample(**resize, mode=mode, align_corners=align)
    module = torch.nn.Upsample(**resize, mode=mode, align_corners=align)
    x = rng.standard_normal((2, 3, *hw))
    g = rng.standard_normal(tuple(module(torch.from_numpy(x)).shape))
    (y, dx), (yt, dxt) = _run(layer, module, x, g)
    assert y.shape == yt.shape
    np.testing.assert_allclose(y, yt, rtol=0, atol=1e-12)
    np.testing.assert_allclose(dx, dxt, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype, tol", [(np.float16, 2e-3), (np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("mode, align", MODES)
def test_every_dtype_kept_and_close_to_torch(dtype, tol, mode, align):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 5, 6)).astype(dtype)
    layer = L.Upsample(scale_factor=(1.7, 2), mode=mode, align_corners=align)
    (y, dx), (yt, dxt) = _run(layer, torch.nn.Upsample(scale_factor=(1.7, 2), mode=mode, align_corners=align), x,
                              None)
    assert y.dtype == dx.dtype == dtype and yt.dtype == dtype
    np.testing.assert_allclose(y.astype(np.float64), yt.astype(np.float64), rtol=tol, atol=tol)
    np.testing.assert_allclose(dx.astype(np.float64), dxt.astype(np.float64), rtol=tol, atol=tol)


@pytest.mark.parametrize("mode, align", MODES)
def test_backward_is_the_transpose_of_forward(mode, align):
    """<A x, g> = <x, A^T g> for random x and g: the backward is the forward's adjoint, exactly."""
    rng = np.random.default_rng(2)
    x, resize = rng.standard_normal((2, 2, 6, 5)), dict(size=(9, 4))
    layer = L.Upsample(**resize, mode=mode, align_corners=align)
    y = layer(x)
    g = rng.standard_normal(y.shape)
    assert np.isclose(np.vdot(y, g), np.vdot(x, layer.backward(g)), rtol=1e-12)


def test_nearest_scatter_adds_and_leaves_unread_rows_zero():
    """Upsampling by 2 adds four gradients onto each pixel; shrinking by 2 reads every other row: the rest get 0."""
    up = F.upsample_nearest2d_backward(np.ones((1, 1, 4, 6)), (1, 1, 2, 3))
    np.testing.assert_array_equal(up, np.full((1, 1, 2, 3), 4.0))
    down = F.upsample_nearest2d_backward(np.ones((1, 1, 2, 2)), (1, 1, 4, 4))
    np.testing.assert_array_equal(down[0, 0], [[1, 0, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(), ValueError, "give exactly one of size and scale_factor.*got neither"),
    (dict(size=4, scale_factor=2), ValueError, "give exactly one of size and scale_factor.*got both"),
    (dict(scale_factor=2, align_corners=True), ValueError, "align_corners option can only be set with"),
    (dict(scale_factor=2, mode="bicubic"), ValueError, r"mode must be one of \('nearest', 'bilinear'\)"),
    (dict(scale_factor=-1), ValueError, "scale_factor must be a positive finite number"),
    (dict(size=(4, 0)), ValueError, "size must be a positive int or a pair"),
    (dict(size=2.5), ValueError, "size must be a positive int"),
    (dict(scale_factor=2, mode="bilinear", align_corners=1), TypeError, "align_corners must be True, False or None"),
])
def test_bad_arguments_say_what_and_how(kwargs, error, match):
    with pytest.raises(error, match="^Upsample: " + match):
        L.Upsample(**kwargs)


def test_bad_inputs_name_the_layer():
    layer = L.Upsample(scale_factor=0.3)
    with pytest.raises(ValueError, match=r"^Upsample\(scale_factor=0.3.*expected input with 4 dimensions"):
        layer(np.zeros((3, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"^Upsample\(scale_factor=0.3.*output would be empty.*\(0, 0\)"):
        layer(np.zeros((1, 1, 3, 3), np.float32))
    with pytest.raises(TypeError, match=r"floating"):
        layer(np.zeros((1, 1, 8, 8), np.int64))
    with pytest.raises(ValueError, match=r"upsample_bilinear2d_backward: input_size must be \(N, C, H, W\)"):
        F.upsample_bilinear2d_backward(np.ones((1, 2, 4, 4)), (2, 2, 2, 2))


def test_config_round_trip_and_torch_refusals():
    layer = L.Upsample(size=(5, 6), mode="bilinear", align_corners=False)
    assert type(layer)(**layer.get_config()).get_config() == layer.get_config()
    with pytest.raises(TypeError, match="mode='bicubic'"):
        mdl.interop.from_torch(torch.nn.Upsample(scale_factor=2, mode="bicubic"))
    with pytest.raises(TypeError, match="recompute_scale_factor=True"):
        mdl.interop.from_torch(torch.nn.Upsample(scale_factor=2, recompute_scale_factor=True))
