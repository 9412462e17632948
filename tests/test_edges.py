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
def test_merge_backward_casts_gradient_to_the_inputs_dtype(layer, inputs):
    """As every other layer (Layer._check_grad): the upstream gradient is cast to the dtype
    of the forward inputs, and a nested list is accepted as an array."""
    out = layer(*inputs)
    g = np.arange(out.size, dtype=np.float64).reshape(out.shape)
    for upstream in (g, g.tolist()):
        grads = layer.backward(upstream)
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
