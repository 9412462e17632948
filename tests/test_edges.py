"""Right answers at the edges: NaN through ReLU, wrong-shaped gradients into Add/Concat,
lists into the functional kernels."""

from __future__ import annotations

import re

import numpy as np
import pytest

from minidl import functional as F
from minidl import layers as L

NAN, INF = np.nan, np.inf


# ------------------------------------------------------------- ReLU backward
RELU_X = [NAN, -1.0, 0.0, -0.0, 2.0, -INF, INF, NAN, -3.0, 1e-30]
RELU_UPSTREAM = {
    "ones": [1.0] * 10,
    "negative": [-2.0] * 10,  # torch gives +0.0 where x <= 0, not -0.0
    "non_finite": [NAN, NAN, INF, -INF, NAN, INF, -INF, 5.0, NAN, INF],
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("upstream", list(RELU_UPSTREAM), ids=list(RELU_UPSTREAM))
def test_relu_backward_torch_parity_at_nan_and_inf(upstream, dtype):
    """torch: threshold_backward selects ``x <= 0 ? 0 : grad``: a NaN input passes the
    gradient (NaN <= 0 is false) and a non-finite gradient where x <= 0 becomes 0."""
    torch = pytest.importorskip("torch")
    x = np.array(RELU_X, dtype)
    g = np.array(RELU_UPSTREAM[upstream], dtype)
    xt = torch.tensor(x, requires_grad=True)
    torch.relu(xt).backward(torch.tensor(g))
    expected = xt.grad.numpy()
    for got in (F.relu_backward(g, x), _layer_backward(x, g)):
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, expected)  # nan where torch has nan
        np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))
    np.testing.assert_array_equal(F.relu(x), torch.relu(torch.tensor(x)).numpy())


def _layer_backward(x, g):
    relu = L.ReLU()
    relu(x)
    return relu.backward(g)


def test_relu_backward_random_4d_matches_mask_product():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    out = F.relu_backward(g, x)
    np.testing.assert_array_equal(out, g * (x > 0))
    assert out.dtype == np.float32 and out.shape == x.shape
    # non-contiguous inputs
    np.testing.assert_array_equal(F.relu_backward(g[:, ::2], x[:, ::2]), (g * (x > 0))[:, ::2])
    np.testing.assert_array_equal(F.relu_backward(g.transpose(0, 2, 3, 1), x.transpose(0, 2, 3, 1)),
                                  (g * (x > 0)).transpose(0, 2, 3, 1))


def test_relu_backward_memory_is_output_plus_a_byte_mask():
    import tracemalloc

    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 32, 32, 32)).astype(np.float32)  # 2 MiB: ufunc buffers negligible
    g = rng.standard_normal(x.shape).astype(np.float32)
    tracemalloc.start()
    try:
        F.relu_backward(g, x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.3 * g.nbytes, peak / g.nbytes  # output (4 bytes) + int8 mask (1 byte)


# ---------------------------------------------- Add / Concat upstream gradient
def _merge_cases():
    f32 = np.float32
    return [
        pytest.param(L.Add(), (np.ones((2, 3, 4), f32), np.ones((2, 3, 4), f32)), id="Add"),
        pytest.param(L.Add(), (np.ones((2, 3), f32),) * 3, id="Add3"),
        pytest.param(L.Concat(), (np.ones((2, 1, 3), f32), np.ones((2, 2, 3), f32)), id="Concat"),
        pytest.param(L.Concat(axis=-1), (np.ones((2, 3, 1), f32), np.ones((2, 3, 4), f32)),
                     id="Concat-1"),
    ]


@pytest.mark.parametrize("layer, inputs", _merge_cases())
@pytest.mark.parametrize("change", ["drop_axis", "longer", "extra_axis", "transposed"])
def test_merge_backward_rejects_wrong_shaped_gradient(layer, inputs, change):
    out = layer(*inputs)
    bad = {
        "drop_axis": np.ones(out.shape[:-1], out.dtype),
        "longer": np.ones(out.shape[:-1] + (out.shape[-1] + 1,), out.dtype),
        "extra_axis": np.ones(out.shape + (1,), out.dtype),
        "transposed": np.ones(out.shape[::-1], out.dtype),
    }[change]
    if bad.shape == out.shape:
        bad = np.ones(out.shape + (2,), out.dtype)
    name = type(layer).__name__
    with pytest.raises(ValueError, match=rf"{name}\(.*\).*{re.escape(str(out.shape))}.*{re.escape(str(bad.shape))}"):
        layer.backward(bad)


@pytest.mark.parametrize("layer, inputs", _merge_cases())
def test_merge_backward_refuses_gradient_of_another_dtype_or_a_list(layer, inputs):
    """As every other layer (the Layer backward rule): the upstream gradient is checked as forward
    checks its inputs (issue 11; it was cast before), and the right one still works."""
    out = layer(*inputs)
    g = np.arange(out.size, dtype=np.float64).reshape(out.shape)
    with pytest.raises(TypeError, match=r"dtype float32 .*got float64.*astype\(np\.float32\)"):
        layer.backward(g)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        layer.backward(g.tolist())
    grads = layer.backward(g.astype(np.float32))
    assert len(grads) == len(inputs)
    for gi, x in zip(grads, inputs):
        assert gi.dtype == x.dtype and gi.shape == x.shape
    np.testing.assert_array_equal(
        np.concatenate(grads, axis=layer.axis) if isinstance(layer, L.Concat) else grads[0],
        g.astype(np.float32))


@pytest.mark.parametrize("axis", [1.7, 1.0, True, False, np.bool_(True), "1", None, (1,), np.float64(1)])
def test_concat_axis_must_be_an_int(axis):
    with pytest.raises(TypeError, match=rf"Concat: axis must be an int.*Received: axis={re.escape(repr(axis))}"):
        L.Concat(axis=axis)


@pytest.mark.parametrize("axis", [np.int64(2), np.int8(-1), np.uint16(0), 2])
def test_concat_numpy_integer_axis(axis):
    import json

    layer = L.Concat(axis=axis)
    assert type(layer.axis) is int and layer.axis == int(axis)
    json.dumps(layer.get_config())
    x = np.ones((2, 3, 4), np.float32)
    assert layer(x, x).shape == tuple(s * 2 if i == int(axis) % 3 else s for i, s in enumerate(x.shape))


# ------------------------------------------------- functional kernels and lists
def _kernel_calls():
    """(name, function, args): every array argument is an ndarray here (float64)."""
    rng = np.random.default_rng(2)
    x4 = rng.standard_normal((2, 2, 5, 5))
    w4 = rng.standard_normal((3, 2, 3, 3))
    g4 = rng.standard_normal((2, 3, 5, 5))
    xp = rng.standard_normal((2, 2, 4, 4))
    _, idx = F.max_pool2d(xp, 2, return_indices=True)
    gp = rng.standard_normal((2, 2, 2, 2))
    x3, w3, g3 = rng.standard_normal((2, 2, 6)), rng.standard_normal((3, 2, 3)), rng.standard_normal((2, 3, 6))
    _, idx1 = F.max_pool1d(x3, 2, return_indices=True)
    _, idx_a = F.adaptive_max_pool2d(xp, 2, return_indices=True)
    x2, w2, b2, g2 = (rng.standard_normal(s) for s in [(4, 5), (3, 5), (3,), (4, 3)])
    z = rng.standard_normal((4, 3))
    y = np.array([0, 2, 1, 1])
    p = rng.dirichlet(np.ones(3), 4)
    gu = rng.standard_normal((2, 2, 7, 10))  # upsampled from 5 x 5
    return [
        ("conv2d", F.conv2d, (x4, w4, rng.standard_normal(3), 1, 1)),
        ("conv2d_input", F.conv2d_input, ((2, 2, 5, 5), w4, g4, 1, 1)),
        ("conv2d_weight", F.conv2d_weight, (x4, (3, 2, 3, 3), g4, 1, 1)),
        ("conv2d_bias", F.conv2d_bias, (g4,)),
        ("conv2d_backward", F.conv2d_backward, (x4, w4, g4, 1, 1)),
        ("conv_transpose2d", F.conv_transpose2d, (g4, w4, b2[:2], 1, 1)),  # w4 as (C_in 3, C_out 2, 3, 3)
        ("conv_transpose2d_input", F.conv_transpose2d_input, ((2, 3, 5, 5), w4, x4, 1, 1)),
        ("conv_transpose2d_weight", F.conv_transpose2d_weight, (g4, (3, 2, 3, 3), x4, 1, 1)),
        ("conv_transpose2d_backward", F.conv_transpose2d_backward, (g4, w4, x4, 1, 1)),
        ("max_pool2d", F.max_pool2d, (xp, 2)),
        ("max_pool2d_indices", lambda *a: F.max_pool2d(*a, return_indices=True), (xp, 2)),
        ("max_pool2d_backward", F.max_pool2d_backward, ((2, 2, 4, 4), gp, idx, 2)),
        ("avg_pool2d", F.avg_pool2d, (xp, 2)),
        ("avg_pool2d_backward", F.avg_pool2d_backward, ((2, 2, 4, 4), gp, 2)),
        ("global_avg_pool2d", F.global_avg_pool2d, (xp,)),
        ("global_avg_pool2d_backward", F.global_avg_pool2d_backward, ((2, 2, 4, 4), gp[:, :, :1, :1].copy())),
        ("conv1d", F.conv1d, (x3, w3, rng.standard_normal(3), 1, 1)),
        ("conv1d_input", F.conv1d_input, ((2, 2, 6), w3, g3, 1, 1)),
        ("conv1d_weight", F.conv1d_weight, (x3, (3, 2, 3), g3, 1, 1)),
        ("conv1d_backward", F.conv1d_backward, (x3, w3, g3, 1, 1)),
        ("max_pool1d", F.max_pool1d, (x3, 2)),
        ("max_pool1d_indices", lambda *a: F.max_pool1d(*a, return_indices=True), (x3, 2)),
        ("max_pool1d_backward", F.max_pool1d_backward, ((2, 2, 6), g3[:, :2, :3].copy(), idx1, 2)),
        ("avg_pool1d", F.avg_pool1d, (x3, 2)),
        ("avg_pool1d_backward", F.avg_pool1d_backward, ((2, 2, 6), g3[:, :2, :3].copy(), 2)),
        ("adaptive_avg_pool2d", F.adaptive_avg_pool2d, (xp, (3, 2))),
        ("adaptive_avg_pool2d_backward", F.adaptive_avg_pool2d_backward, ((2, 2, 4, 4), gp)),
        ("adaptive_max_pool2d", F.adaptive_max_pool2d, (xp, 3)),
        ("adaptive_max_pool2d_indices", lambda *a: F.adaptive_max_pool2d(*a, return_indices=True), (xp, 3)),
        ("adaptive_max_pool2d_backward", F.adaptive_max_pool2d_backward, ((2, 2, 4, 4), gp, idx_a)),
        ("relu", F.relu, (x4,)),
        ("relu_backward", F.relu_backward, (g4, rng.standard_normal(g4.shape))),
        ("leaky_relu", F.leaky_relu, (x4, 0.1)),
        ("leaky_relu_backward", F.leaky_relu_backward, (g4, rng.standard_normal(g4.shape), 0.1)),
        ("sigmoid", F.sigmoid, (x4,)),
        ("sigmoid_backward", F.sigmoid_backward, (g4, F.sigmoid(rng.standard_normal(g4.shape)))),
        ("tanh", F.tanh, (x4,)),
        ("tanh_backward", F.tanh_backward, (g4, np.tanh(rng.standard_normal(g4.shape)))),
        ("gelu", F.gelu, (x4,)),
        ("gelu_backward", F.gelu_backward, (g4, rng.standard_normal(g4.shape))),
        ("silu", F.silu, (x4,)),
        ("silu_backward", F.silu_backward, (g4, rng.standard_normal(g4.shape))),
        ("softmax_backward", F.softmax_backward, (g2, F.softmax(z))),
        ("elu", F.elu, (x4, 0.5)),
        ("elu_backward", F.elu_backward, (g4, rng.standard_normal(g4.shape), 0.5)),
        ("softplus", F.softplus, (x4, 2.0, 1.0)),
        ("softplus_backward", F.softplus_backward, (g4, rng.standard_normal(g4.shape), 2.0, 1.0)),
        ("hardswish", F.hardswish, (4 * x4,)),
        ("hardswish_backward", F.hardswish_backward, (g4, 4 * rng.standard_normal(g4.shape))),
        ("mish", F.mish, (x4,)),
        ("mish_backward", F.mish_backward, (g4, rng.standard_normal(g4.shape))),
        ("prelu", F.prelu, (x4, b2[:2])),
        ("prelu_backward", F.prelu_backward, (g4, rng.standard_normal(g4.shape), b2)),
        ("linear", F.linear, (x2, w2, b2)),
        ("linear_input", F.linear_input, (g2, w2)),
        ("linear_weight", F.linear_weight, (x2, g2)),
        ("linear_bias", F.linear_bias, (g2,)),
        ("flatten", F.flatten, (x4,)),
        ("log_softmax", F.log_softmax, (z,)),
        ("log_softmax_backward", F.log_softmax_backward, (g2, F.log_softmax(z))),
        ("softmax", F.softmax, (z,)),
        ("cross_entropy", F.cross_entropy, (z, y)),
        ("cross_entropy_probs", F.cross_entropy, (z, p, 0.1)),
        ("cross_entropy_backward", F.cross_entropy_backward, (z, y)),
        ("cross_entropy_backward_probs", F.cross_entropy_backward, (z, p, 0.1)),
        ("batch_norm", F.batch_norm, (x4, np.zeros(2), np.ones(2), b2[:2], b2[1:])),  # eval: pure
        ("batch_norm_backward", F.batch_norm_backward, (x4, xp[:, :, :1, :1] + x4, b2[:2], np.ones(2), b2[1:])),
        ("layer_norm", F.layer_norm, (x4, (5, 5), x4[0, 0], x4[1, 1])),
        ("layer_norm_backward", F.layer_norm_backward, (g4[:, :2], x4, (5, 5), *F.layer_norm(
            x4, (5, 5), return_stats=True)[1:], x4[0, 0])),
        ("group_norm", F.group_norm, (x4, 1, b2[:2], b2[1:])),
        ("group_norm_backward", F.group_norm_backward, (g4[:, :2], x4, *F.group_norm(
            x4, 2, return_stats=True)[1:], b2[:2])),
        ("instance_norm", F.instance_norm, (x4, np.zeros(2), np.ones(2), b2[:2], b2[1:], False)),  # eval: pure
        ("instance_norm_backward", F.instance_norm_backward, (g4[:, :2], x4, *F.instance_norm(
            x4, return_stats=True)[1:], b2[:2])),
        ("dropout", F.dropout, (x4, x4 > 0, 0.5)),
        ("dropout_backward", F.dropout_backward, (x4, x4 < 0, 0.25)),
        ("mse_loss", F.mse_loss, (z, p)),
        ("mse_loss_backward", F.mse_loss_backward, (z, p)),
        ("l1_loss", F.l1_loss, (z, p)),
        ("l1_loss_backward", F.l1_loss_backward, (z, p)),
        ("smooth_l1_loss", F.smooth_l1_loss, (z, p)),
        ("smooth_l1_loss_backward", F.smooth_l1_loss_backward, (z, p)),
        ("huber_loss", F.huber_loss, (z, p)),
        ("huber_loss_backward", F.huber_loss_backward, (z, p)),
        ("nll_loss", F.nll_loss, (F.log_softmax(z), y)),
        ("nll_loss_backward", F.nll_loss_backward, (F.log_softmax(z), y)),
        ("kl_div", F.kl_div, (F.log_softmax(z), p, "batchmean")),
        ("kl_div_backward", F.kl_div_backward, (F.log_softmax(z), p, "batchmean")),
        ("binary_cross_entropy", F.binary_cross_entropy, (p, p.round(), p[:1])),
        ("binary_cross_entropy_backward", F.binary_cross_entropy_backward, (p, p.round(), p[:1])),
        ("binary_cross_entropy_with_logits", F.binary_cross_entropy_with_logits, (z, p, p[0], "sum", p[1])),
        ("binary_cross_entropy_with_logits_backward", F.binary_cross_entropy_with_logits_backward,
         (z, p, p[0], "sum", p[1])),
        ("upsample_nearest2d", F.upsample_nearest2d, (x4, (7, 10))),
        ("upsample_nearest2d_backward", F.upsample_nearest2d_backward, (gu, (2, 2, 5, 5))),
        ("upsample_bilinear2d", F.upsample_bilinear2d, (x4, (7, 10), True)),
        ("upsample_bilinear2d_backward", F.upsample_bilinear2d_backward, (gu, (2, 2, 5, 5), False, 1.5)),
    ]


def _list_variants():
    for name, fn, args in _kernel_calls():
        positions = [i for i, a in enumerate(args) if isinstance(a, (np.ndarray, tuple))]
        for i in positions:
            yield pytest.param(fn, args, (i,), id=f"{name}-arg{i}")
        if len(positions) > 1:
            yield pytest.param(fn, args, tuple(positions), id=f"{name}-all")


def test_every_public_kernel_is_audited():
    audited = {name.split("_indices")[0].split("_probs")[0] for name, _, _ in _kernel_calls()}
    shape_helpers = {"conv2d_output_size", "resolve_padding", "MAX_COLUMN_BYTES", "MAX_CACHED_COLUMN_BYTES"}
    assert set(F.__all__) - shape_helpers == audited


def _assert_same(got, expected):
    if isinstance(expected, tuple):
        assert isinstance(got, tuple) and len(got) == len(expected)
        for g, e in zip(got, expected):
            _assert_same(g, e)
    elif expected is None:
        assert got is None
    else:
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("fn, args, as_list", list(_list_variants()))
def test_functional_kernel_given_lists_works_or_raises_type_error(fn, args, as_list):
    """A list (or a tuple shape given as a list) either gives the ndarray answer or a
    TypeError that names the fix; never an AttributeError or a wrong answer."""
    expected = fn(*args)
    listed = [a.tolist() if i in as_list and hasattr(a, "tolist") else
              list(a) if i in as_list else a for i, a in enumerate(args)]
    try:
        got = fn(*listed)
    except TypeError as exc:
        assert "np.asarray" in str(exc) or "ndarray" in str(exc), exc
        return
    _assert_same(got, expected)
