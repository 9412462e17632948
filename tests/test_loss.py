"""SoftmaxCrossEntropy and minidl.functional.cross_entropy(_backward)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl as mdl
from minidl import functional as F
from minidl.losses import SoftmaxCrossEntropy


def loss_and_grad(logits, targets, label_smoothing=0.0):
    loss = SoftmaxCrossEntropy(label_smoothing=label_smoothing)
    value = loss(logits, targets)
    return value, loss.backward()


def torch_loss_and_grad(logits, targets, label_smoothing):
    torch = pytest.importorskip("torch")
    zt = torch.tensor(logits, requires_grad=True)
    tt = torch.tensor(targets)
    lt = torch.nn.functional.cross_entropy(zt, tt, label_smoothing=label_smoothing)
    lt.backward()
    return lt.item(), zt.grad.numpy()


def make_targets(kind, n, k, rng):
    if kind == "labels":
        return rng.integers(0, k, n)
    if kind == "probs":
        p = rng.uniform(0.0, 1.0, (n, k))
        return p / p.sum(axis=1, keepdims=True)
    if kind == "unnormalised":  # torch accepts any non-negative weights as "probabilities"
        return rng.uniform(0.0, 2.0, (n, k))
    if kind == "onehot":
        return np.eye(k)[rng.integers(0, k, n)]
    raise AssertionError(kind)


# ---------------------------------------------------------------- torch parity
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("kind", ["labels", "probs", "onehot", "unnormalised"])
@pytest.mark.parametrize("n,k,scale", [(6, 5, 1.0), (1, 2, 3.0), (16, 10, 30.0)])
def test_torch_parity(kind, label_smoothing, n, k, scale):
    pytest.importorskip("torch")
    rng = np.random.default_rng(n * 100 + k)
    logits = rng.standard_normal((n, k)) * scale
    targets = make_targets(kind, n, k, rng)
    value, grad = loss_and_grad(logits, targets, label_smoothing)
    value_t, grad_t = torch_loss_and_grad(logits, targets, label_smoothing)
    assert isinstance(value, float)
    assert value == pytest.approx(value_t, rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(grad, grad_t, rtol=1e-10, atol=1e-15)
    # the functional API agrees with the layer
    assert F.cross_entropy(logits, targets, label_smoothing) == value
    np.testing.assert_array_equal(F.cross_entropy_backward(logits, targets, label_smoothing), grad)


def test_labels_and_onehot_probs_agree():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 4))
    labels = rng.integers(0, 4, 5)
    for ls in (0.0, 0.1):
        a = loss_and_grad(logits, labels, ls)
        b = loss_and_grad(logits, np.eye(4)[labels], ls)
        assert a[0] == pytest.approx(b[0], rel=1e-14)
        np.testing.assert_allclose(a[1], b[1], rtol=1e-14, atol=1e-16)


def test_known_value():
    # uniform logits: loss = log K, gradient = (1/K - onehot) / N
    value, grad = loss_and_grad(np.zeros((2, 4)), np.array([0, 3]))
    assert value == pytest.approx(np.log(4), rel=1e-15)
    expected = (np.full((2, 4), 0.25) - np.eye(4)[[0, 3]]) / 2
    np.testing.assert_allclose(grad, expected, rtol=1e-15)


# ------------------------------------------------------------ extreme logits
def no_float_trouble():
    """Overflow / divide-by-zero / invalid raise, and any warning is an error.

    Underflow is left at numpy's default (ignore): exp(-1e4) -> 0 is exact enough.
    (see test_extreme_logits_with_all_floating_point_errors_raised for all='raise')
    """
    return np.errstate(over="raise", divide="raise", invalid="raise")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_logits_1e4(dtype):
    logits = np.array([[1e4, 0.0, -1e4]], dtype)
    with warnings.catch_warnings(), no_float_trouble():
        warnings.simplefilter("error")
        value, grad = loss_and_grad(logits, np.array([1]))
        value0, grad0 = loss_and_grad(logits, np.array([0]))
        value2, grad2 = loss_and_grad(logits, np.array([2]))
    assert value == pytest.approx(1e4, rel=1e-12)
    assert value0 == 0.0
    assert value2 == pytest.approx(2e4, rel=1e-12)
    for g in (grad, grad0, grad2):
        assert np.all(np.isfinite(g)) and g.dtype == dtype
    np.testing.assert_array_equal(grad, np.array([[1.0, -1.0, 0.0]], dtype))
    np.testing.assert_array_equal(grad0, np.zeros((1, 3), dtype))
    np.testing.assert_array_equal(grad2, np.array([[1.0, 0.0, -1.0]], dtype))


def test_logits_minus_1000():
    logits = np.array([[-1000.0, 1.0]])
    with warnings.catch_warnings(), no_float_trouble():
        warnings.simplefilter("error")
        value0, grad0 = loss_and_grad(logits, np.array([0]))
        value1, grad1 = loss_and_grad(logits, np.array([1]))
        value_p, grad_p = loss_and_grad(logits, np.array([[0.5, 0.5]]))
    assert value0 == pytest.approx(1001.0, rel=1e-12)
    assert value1 == pytest.approx(0.0, abs=1e-300) and np.isfinite(value1)
    assert value_p == pytest.approx(500.5, rel=1e-12)
    for g in (grad0, grad1, grad_p):
        assert np.all(np.isfinite(g))
    np.testing.assert_allclose(grad0, [[-1.0, 1.0]], atol=1e-300)
    np.testing.assert_allclose(grad1, [[0.0, 0.0]], atol=1e-300)
    np.testing.assert_allclose(grad_p, [[-0.5, 0.5]], atol=1e-300)


def test_large_logits_torch_parity():
    pytest.importorskip("torch")
    logits = np.array([[1e4, 0.0, -1e4], [-1000.0, 1.0, 3.0], [500.0, 500.0, -500.0]])
    targets = np.array([1, 0, 2])
    for ls in (0.0, 0.1):
        value, grad = loss_and_grad(logits, targets, ls)
        value_t, grad_t = torch_loss_and_grad(logits, targets, ls)
        assert value == pytest.approx(value_t, rel=1e-12)
        np.testing.assert_allclose(grad, grad_t, rtol=1e-12, atol=1e-300)


def test_extreme_logits_with_all_floating_point_errors_raised():
    with np.errstate(all="raise"):
        value, grad = loss_and_grad(np.array([[1e4, 0.0, -1e4]]), np.array([1]))
    assert value == pytest.approx(1e4, rel=1e-12) and np.all(np.isfinite(grad))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 6), k=st.integers(2, 6),
       log_scale=st.floats(-2, 5), ls=st.sampled_from([0.0, 0.1]))
def test_any_magnitude_is_finite(seed, n, k, log_scale, ls):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, k)) * 10.0**log_scale
    labels = rng.integers(0, k, n)
    with warnings.catch_warnings(), no_float_trouble():
        warnings.simplefilter("error")
        value, grad = loss_and_grad(logits, labels, ls)
    assert np.isfinite(value) and value >= -1e-12
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-14)  # rows sum to zero
    assert np.all(np.abs(grad) <= 1.0 / n + 1e-15)


# ------------------------------------------------------------------ gradcheck
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("kind", ["labels", "probs", "unnormalised"])
def test_gradcheck(kind, label_smoothing):
    rng = np.random.default_rng(11)
    logits = rng.standard_normal((4, 5)) * 2
    targets = make_targets(kind, 4, 5, rng)
    report = mdl.gradcheck(SoftmaxCrossEntropy(label_smoothing=label_smoothing), logits, targets)
    assert report.passed, "\n" + str(report)
    assert [t.name for t in report.tensors] == ["input[0]"]  # logits only; targets aren't checked


def test_gradcheck_float32_loss_layer():
    rng = np.random.default_rng(12)
    logits = rng.standard_normal((3, 4)).astype(np.float32)
    report = mdl.gradcheck(SoftmaxCrossEntropy(), logits, rng.integers(0, 4, 3))
    assert report.passed, "\n" + str(report)  # gradcheck works in float64 regardless


# ----------------------------------------------------------------------- 1/N
@pytest.mark.parametrize("kind", ["labels", "probs"])
def test_mean_over_batch_one_over_n(kind):
    rng = np.random.default_rng(13)
    logits = rng.standard_normal((4, 6))
    targets = make_targets(kind, 4, 6, rng)
    value, grad = loss_and_grad(logits, targets, 0.1)
    singles = [loss_and_grad(logits[i : i + 1], targets[i : i + 1], 0.1) for i in range(4)]
    assert value == pytest.approx(np.mean([v for v, _ in singles]), rel=1e-14)
    summed = np.concatenate([g for _, g in singles])  # each per-sample gradient, stacked
    np.testing.assert_allclose(grad, summed / 4, rtol=1e-14, atol=1e-17)
    # and the gradient of the total over the batch is 4x the mean's
    np.testing.assert_allclose(grad.sum(0) * 4, summed.sum(0), rtol=1e-12, atol=1e-16)


def test_backward_scales_by_upstream_gradient():
    rng = np.random.default_rng(14)
    loss = SoftmaxCrossEntropy()
    loss(rng.standard_normal((3, 4)), np.array([0, 1, 2]))
    np.testing.assert_allclose(loss.backward(2.5), 2.5 * loss.backward(), rtol=1e-15)
    np.testing.assert_array_equal(loss.backward(1.0), loss.backward())


# --------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("kind", ["labels", "probs"])
def test_float32_kept(kind):
    rng = np.random.default_rng(15)
    logits = rng.standard_normal((5, 3)).astype(np.float32)
    targets = make_targets(kind, 5, 3, rng)
    value, grad = loss_and_grad(logits, targets)
    assert isinstance(value, float)
    assert grad.dtype == np.float32 and grad.shape == (5, 3)
    value64, grad64 = loss_and_grad(logits.astype(np.float64), targets)
    assert value == pytest.approx(value64, rel=1e-5)
    np.testing.assert_allclose(grad, grad64, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("labels_dtype", [np.int8, np.int32, np.int64, np.uint8])
def test_any_integer_label_dtype(labels_dtype):
    logits = np.random.default_rng(16).standard_normal((3, 4))
    labels = np.array([0, 3, 1], labels_dtype)
    value, grad = loss_and_grad(logits, labels)
    ref_value, ref_grad = loss_and_grad(logits, labels.astype(np.int64))
    assert value == ref_value
    np.testing.assert_array_equal(grad, ref_grad)


def test_inputs_not_modified():
    rng = np.random.default_rng(17)
    logits = rng.standard_normal((4, 3))
    probs = make_targets("probs", 4, 3, rng)
    before = logits.copy(), probs.copy()
    loss_and_grad(logits, probs, 0.1)
    np.testing.assert_array_equal(logits, before[0])
    np.testing.assert_array_equal(probs, before[1])


def test_label_smoothing_rejected_out_of_range():
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"label_smoothing must be a float in \[0, 1\]"):
            SoftmaxCrossEntropy(label_smoothing=bad)


# ------------------------------------------------- -inf (masking) and +-3e38
INF = np.inf
EXTREME_CASES = [
    # (id, logits, targets, label_smoothing, dtype)
    ("one_minus_inf", [[1.0, -INF, 2.0], [0.5, 0.0, -INF]], [0, 1], 0.0, np.float64),
    ("several_minus_inf", [[1.0, -INF, -INF, 2.0], [-INF, -INF, 3.0, -INF]], [3, 2], 0.0, np.float64),
    ("target_at_minus_inf", [[1.0, -INF, 2.0], [1.0, 2.0, 3.0]], [1, 0], 0.0, np.float64),  # inf
    ("smoothing_minus_inf", [[1.0, -INF, 2.0]], [0], 0.1, np.float64),  # inf: eps/K * inf
    ("smoothing_target_minus_inf", [[1.0, -INF, 2.0]], [1], 0.1, np.float64),
    ("smoothing_1_target_minus_inf", [[1.0, -INF, 2.0]], [1], 1.0, np.float64),  # torch: 0 * inf = nan
    ("smoothing_1_minus_inf", [[1.0, -INF, 2.0]], [0], 1.0, np.float64),
    ("probs_zero_at_minus_inf", [[1.0, -INF, 2.0]], [[0.25, 0.0, 0.75]], 0.0, np.float64),  # torch: nan
    ("probs_nonzero_at_minus_inf", [[1.0, -INF, 2.0]], [[0.25, 0.25, 0.5]], 0.0, np.float64),
    ("probs_smoothing_minus_inf", [[1.0, -INF, 2.0]], [[0.25, 0.0, 0.75]], 0.1, np.float64),
    ("all_minus_inf", [[-INF, -INF], [0.0, 1.0]], [0, 1], 0.0, np.float64),  # nan, as torch
    ("plus_inf", [[INF, 1.0], [0.0, 1.0]], [0, 1], 0.0, np.float64),  # nan, as torch
    ("f32_3e38", [[3e38, -3e38, 0.0], [3e38, 3e38, -3e38]], [0, 0], 0.0, np.float32),
    ("f32_3e38_target_low", [[3e38, -3e38, 0.0]], [1], 0.0, np.float32),  # inf
    ("f32_3e38_rows_overflow_sum", [[2e38, 0.0], [2e38, 0.0]], [1, 1], 0.0, np.float32),  # inf
    ("f32_3e38_smoothing", [[3e38, -3e38, 0.0]], [0], 0.1, np.float32),
    ("f32_3e38_smoothing_half", [[3e38, 0.0]], [0], 0.5, np.float32),  # 7.5e37
    ("f32_3e38_probs", [[3e38, 0.0, -3e38]], [[0.5, 0.5, 0.0]], 0.0, np.float32),
    ("f32_3e38_probs_zero_at_overflow", [[3e38, -3e38, 0.0]], [[0.5, 0.0, 0.5]], 0.0, np.float32),
    ("f32_minus_inf_and_3e38", [[3e38, -INF, -3e38]], [0], 0.0, np.float32),
    ("f64_1e308", [[1.7e308, -1.7e308, 0.0], [1e308, 1e308, -1e308]], [0, 1], 0.0, np.float64),
    ("f64_1e308_target_low", [[1.7e308, -1.7e308, 0.0]], [1], 0.0, np.float64),
    ("f64_1e308_smoothing", [[1.7e308, 0.0, -1e308]], [0], 0.1, np.float64),
]


@pytest.mark.parametrize("logits, targets, ls, dtype",
                         [pytest.param(*c[1:], id=c[0]) for c in EXTREME_CASES])
def test_extreme_logits_torch_parity(logits, targets, ls, dtype):
    """-inf (masked) logits and logits near the dtype's maximum give torch's loss and gradient
    (finite where torch's is, inf/nan where torch's is), without any numpy warning."""
    torch = pytest.importorskip("torch")
    logits = np.array(logits, dtype)
    targets = np.array(targets, dtype if isinstance(targets[0], list) else np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, grad = loss_and_grad(logits, targets, ls)
        value_f = F.cross_entropy(logits, targets, ls)
        grad_f = F.cross_entropy_backward(logits, targets, ls)
    zt = torch.tensor(logits, requires_grad=True)
    lt = torch.nn.functional.cross_entropy(zt, torch.tensor(targets), label_smoothing=ls)
    lt.backward()
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    assert value == pytest.approx(lt.item(), rel=rtol, nan_ok=True)
    assert np.isnan(value) == np.isnan(lt.item()) and np.isinf(value) == np.isinf(lt.item())
    assert grad.dtype == dtype and grad.shape == logits.shape
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=rtol, atol=1e-7 if dtype == np.float32 else 1e-15)
    assert np.array_equal(grad, zt.grad.numpy(), equal_nan=True) or np.isfinite(grad).all()
    assert value_f == value or (np.isnan(value_f) and np.isnan(value))
    np.testing.assert_array_equal(grad_f, grad)


def test_masked_logits_give_the_unmasked_answer():
    """Masking a class with -inf is the same as dropping its column (labels elsewhere)."""
    rng = np.random.default_rng(21)
    logits = rng.standard_normal((6, 5))
    labels = rng.integers(0, 4, 6)
    masked = np.concatenate([logits[:, :4], np.full((6, 1), -np.inf)], axis=1)
    value, grad = loss_and_grad(masked, labels)
    value4, grad4 = loss_and_grad(logits[:, :4], labels)
    assert value == pytest.approx(value4, rel=1e-14)
    np.testing.assert_allclose(grad[:, :4], grad4, rtol=1e-14, atol=1e-17)
    assert np.all(grad[:, 4] == 0.0)


@pytest.mark.parametrize("kind", ["labels", "probs"])
def test_memory_peak_within_two_logits(kind):
    """Forward holds log_softmax and one temporary; backward only its result (labels)."""
    import tracemalloc

    rng = np.random.default_rng(22)
    logits = rng.standard_normal((512, 200)).astype(np.float32)
    targets = make_targets(kind, 512, 200, rng).astype(np.float32 if kind == "probs" else np.int64)
    peaks = []
    for f in (F.cross_entropy, F.cross_entropy_backward):
        tracemalloc.start()
        try:
            f(logits, targets, 0.1)
            peaks.append(tracemalloc.get_traced_memory()[1] / logits.nbytes)
        finally:
            tracemalloc.stop()
    assert peaks[0] < 2.1, peaks  # was 3.0 (a one-hot T, the product, log_softmax)
    assert peaks[1] < (1.1 if kind == "labels" else 2.1), peaks  # was 4.0


# ------------------------------------------------- backward's grad_output
@pytest.mark.parametrize("bad, exc, match", [
    (np.zeros((3, 4)), ValueError, r"scalar.*Received: an array of shape \(3, 4\)"),
    (np.ones(1), ValueError, r"scalar.*Received: an array of shape \(1,\)"),
    ([1.0, 2.0], ValueError, r"scalar.*Received: .*shape \(2,\)"),
    (np.nan, ValueError, r"finite.*Received: grad_output=nan"),
    (np.float32(np.inf), ValueError, r"finite.*Received: grad_output=np.float32\(inf\)"),
    (10**400, ValueError, r"finite in the logits. dtype \(float64\).*Received: grad_output=1000"),
    ("2", TypeError, r"real number.*Received: grad_output='2'"),
    (None, TypeError, r"real number.*Received: grad_output=None"),
    (True, TypeError, r"real number.*Received: grad_output=True"),
    (1j, TypeError, r"real number.*Received: grad_output=1j"),
])
def test_backward_refuses_an_array_or_a_bad_scalar(bad, exc, match):
    loss = SoftmaxCrossEntropy()
    logits = np.zeros((3, 4))
    loss(logits, np.array([0, 1, 2]))
    with pytest.raises(exc, match=match) as info:
        loss.backward(bad)
    assert "SoftmaxCrossEntropy" in str(info.value)
    if isinstance(bad, np.ndarray) and bad.ndim:
        assert "loss.backward()" in str(info.value)  # says how to use it


@pytest.mark.parametrize("good", [2, 2.0, np.float32(2.0), np.int64(2), np.array(2.0), np.array(2, np.int8)])
def test_backward_accepts_any_real_scalar(good):
    loss = SoftmaxCrossEntropy()
    loss(np.random.default_rng(23).standard_normal((3, 4)), np.array([0, 1, 2]))
    g = loss.backward(good)
    assert g.dtype == np.float64
    np.testing.assert_array_equal(g, loss.backward() * 2.0)


def test_backward_scale_must_be_finite_in_the_logits_dtype():
    loss = SoftmaxCrossEntropy()
    loss(np.zeros((2, 3), np.float32), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"finite in the logits' dtype \(float32\).*Received: grad_output=1e\+39"):
        loss.backward(1e39)
    assert np.isfinite(loss.backward(3e38)).all()


def test_empty_batch_is_nan_as_torch_and_no_classes_is_refused():
    torch = pytest.importorskip("torch")
    z = np.zeros((0, 3))
    lt = torch.nn.functional.cross_entropy(torch.tensor(z), torch.zeros(0, dtype=torch.long))
    assert np.isnan(lt.item())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(F.cross_entropy(z, np.zeros(0, np.int64)))
        assert F.cross_entropy_backward(z, np.zeros(0, np.int64)).shape == (0, 3)
    with pytest.raises(ValueError, match=r"at least one class. Received: shape \(2, 0\)"):
        F.cross_entropy(np.zeros((2, 0)), np.array([0, 0]))
