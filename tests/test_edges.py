"""Issue 6: right answers at the edges (masked logits, nan, wrong-shaped gradients, lists)."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as mdl
from minidl import functional as F
from minidl import layers, losses

RNG = np.random.default_rng
INF = np.inf


# ------------------------------------------------------ cross-entropy extremes
CASES = [
    ([[-INF, 1.0, 2.0]], [1], 0.0),            # a masked class
    ([[-INF, 1.0, 2.0]], [0], 0.0),            # the target is masked: inf, as torch
    ([[-INF, 1.0, 2.0]], [1], 0.1),            # smoothing over a masked class: inf
    ([[-INF, -INF, 2.0], [0.5, -INF, 1.0]], [2, 0], 0.0),
    ([[-INF, 1.0, 2.0]], [[0.0, 0.5, 0.5]], 0.0),   # soft targets: 0 * -inf is nan in torch too
    ([[-INF, 1.0, 2.0]], [[0.1, 0.4, 0.5]], 0.0),
    ([[3e38, -3e38, 0.0]], [0], 0.0),          # float32 extremes: x - max overflows to -inf
    ([[3e38, -3e38, 0.0]], [1], 0.0),
    ([[3e38, 3e38, 0.0]], [1], 0.0),
    ([[-3e38, -3e38, -3e38]], [1], 0.0),
    ([[3e38, -3e38, 0.0]], [0], 0.1),
    ([[-INF, -INF]], [1], 0.0),                # nothing left: nan, as torch
    ([[INF, 0.0]], [0], 0.0),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("logits, targets, smoothing", CASES)
def test_cross_entropy_matches_torch_at_the_extremes(logits, targets, smoothing, dtype):
    torch = pytest.importorskip("torch")
    z = np.array(logits, dtype=dtype)
    t = np.array(targets, dtype=np.int64 if np.ndim(targets) == 1 else dtype)
    loss = losses.SoftmaxCrossEntropy(label_smoothing=smoothing)
    with np.errstate(all="raise"):  # no floating-point warnings either
        value = loss(z, t)
        grad = loss.backward()
    tz = torch.tensor(z, requires_grad=True)
    tl = torch.nn.functional.cross_entropy(tz, torch.tensor(t), label_smoothing=smoothing)
    tl.backward()
    np.testing.assert_allclose(value, tl.item(), rtol=1e-6 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(grad, tz.grad.numpy(), rtol=1e-6, atol=1e-7 if dtype == np.float32 else 1e-15)
    assert grad.dtype == dtype


def test_masked_logit_loss_is_finite_and_ignores_the_masked_class():
    z = np.array([[-INF, 1.0, 2.0], [0.0, -INF, 3.0]])
    y = np.array([1, 2])
    unmasked = np.array([[1.0, 2.0], [0.0, 3.0]])
    assert F.cross_entropy(z, y) == pytest.approx(F.cross_entropy(unmasked, np.array([0, 1])))


# ----------------------------------------------------------------- ReLU at nan
def test_relu_backward_follows_torch_at_nan_and_non_finite_gradients():
    torch = pytest.importorskip("torch")
    x = np.array([np.nan, -1.0, 2.0, 0.0, -0.0, np.inf, -np.inf, 3.0], np.float32)
    g = np.array([1.0, np.nan, 3.0, np.inf, 2.0, 5.0, -np.inf, np.nan], np.float32)
    relu = layers.ReLU()
    out = relu(x)
    dx = relu.backward(g)
    tx = torch.tensor(x, requires_grad=True)
    tout = torch.relu(tx)
    tout.backward(torch.tensor(g))
    np.testing.assert_array_equal(out, tout.detach().numpy())
    np.testing.assert_array_equal(dx, tx.grad.numpy())  # nan where torch has nan, and only there
    assert dx.dtype == np.float32


def test_relu_backward_keeps_layout_and_values_on_channels_last_views():
    x = RNG(0).standard_normal((2, 3, 4, 5)).astype(np.float32).transpose(0, 3, 1, 2)
    g = RNG(1).standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(F.relu_backward(g, x), g * (x > 0))


# ------------------------------------------------- merge layers' gradients
@pytest.mark.parametrize("layer, inputs", [
    (layers.Add(), [np.ones((2, 3)), np.ones((2, 3))]),
    (layers.Concat(axis=1), [np.ones((2, 3)), np.ones((2, 4))]),
])
def test_merge_backward_rejects_a_wrong_shaped_gradient(layer, inputs):
    out = layer(*inputs)
    for bad in (np.ones((2,)), np.ones(out.shape + (1,)), np.ones((out.shape[0] + 1,) + out.shape[1:])):
        with pytest.raises(ValueError, match=r"expected grad_output of shape"):
            layer.backward(bad)
    grads = layer.backward(np.ones(out.shape))
    assert [g.shape for g in grads] == [x.shape for x in inputs]


@pytest.mark.parametrize("axis", [1.7, 1.0, True, "1", None])
def test_concat_axis_must_be_an_int(axis):
    with pytest.raises(TypeError, match="axis"):
        layers.Concat(axis=axis)
    assert layers.Concat(axis=np.int64(1)).axis == 1


# ---------------------------------------------------- the loss's backward
def test_loss_backward_with_the_logits_as_argument_is_a_clear_error():
    loss = losses.SoftmaxCrossEntropy()
    z = RNG(0).standard_normal((4, 3))
    loss(z, np.array([0, 1, 2, 0]))
    with pytest.raises(TypeError, match="takes no array argument.*Call loss.backward\\(\\)"):
        loss.backward(z)
    for bad in (np.nan, np.inf, "1", None, True):
        with pytest.raises(ValueError, match="grad_output must be a finite real number"):
            loss.backward(bad)
    np.testing.assert_allclose(loss.backward(2.0), 2 * loss.backward())
    np.testing.assert_allclose(loss.backward(np.float32(2.0)), 2 * loss.backward())
    np.testing.assert_allclose(loss.backward(np.array(2.0)), 2 * loss.backward())


# ------------------------------------------- functional kernels given lists
def _kernel_calls():
    rng = RNG(0)
    x = rng.standard_normal((2, 2, 5, 5))
    w = rng.standard_normal((3, 2, 3, 3))
    b = rng.standard_normal(3)
    g = rng.standard_normal((2, 3, 3, 3))
    pooled, idx = F.max_pool2d(x, 2, return_indices=True)
    gp = rng.standard_normal(pooled.shape)
    z = rng.standard_normal((4, 3))
    y = np.array([0, 1, 2, 0])
    d = rng.standard_normal((4, 6))
    dw = rng.standard_normal((3, 6))
    return [
        ("conv2d", F.conv2d, (x, w, b)),
        ("conv2d_input", lambda w, g: F.conv2d_input(x.shape, w, g), (w, g)),
        ("conv2d_weight", lambda x, g: F.conv2d_weight(x, w.shape, g), (x, g)),
        ("conv2d_bias", F.conv2d_bias, (g,)),
        ("conv2d_backward", F.conv2d_backward, (x, w, g)),
        ("max_pool2d", lambda x: F.max_pool2d(x, 2), (x,)),
        ("max_pool2d_backward", lambda g, i: F.max_pool2d_backward(x.shape, g, i, 2), (gp, idx)),
        ("relu", F.relu, (x,)),
        ("relu_backward", F.relu_backward, (g, g)),
        ("log_softmax", F.log_softmax, (z,)),
        ("softmax", F.softmax, (z,)),
        ("cross_entropy", F.cross_entropy, (z, y)),
        ("cross_entropy_backward", F.cross_entropy_backward, (z, y)),
        ("linear", F.linear, (d, dw, b)),
        ("linear_input", F.linear_input, (z, dw)),
        ("linear_weight", F.linear_weight, (d, z)),
        ("linear_bias", F.linear_bias, (z,)),
        ("flatten", F.flatten, (x,)),
    ]


@pytest.mark.parametrize("name, fn, args", _kernel_calls(), ids=[c[0] for c in _kernel_calls()])
def test_functional_kernels_given_lists_work_or_raise_type_error(name, fn, args):
    expected = fn(*args)
    for i in range(len(args)):
        listed = [a.tolist() if j == i else a for j, a in enumerate(args)]
        try:
            got = fn(*listed)
        except TypeError as exc:
            assert "numpy" in str(exc) or "ndarray" in str(exc), exc
        else:
            for e, r in zip(expected if isinstance(expected, tuple) else (expected,),
                            got if isinstance(got, tuple) else (got,)):
                np.testing.assert_array_equal(r, e, err_msg=f"{name} with argument {i} as a list")
