"""MaxPool2D and minidl.functional.max_pool2d / max_pool2d_backward.

* parity with torch (float64, forward and autograd backward) on tie-free inputs,
  and on heavily tied inputs (both use the first maximum in row-major order);
* the tie rule, -inf padding and overlapping windows tested exactly on small
  hand-worked examples, in both backward code paths (the one-hot scatter used
  when non-overlapping windows tile the input, and the general bincount path);
* an independent loop reference for random tied inputs (hypothesis);
* gradcheck on tie-free inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl as mdl
from minidl import functional as F
from minidl.layers import MaxPool2D
from minidl.testing import tie_free


def pool(x, kernel_size, stride=None, padding=0, grad=None):
    """Layer forward + backward; returns (out, dx)."""
    layer = MaxPool2D(kernel_size, stride, padding)
    out = layer(x)
    g = np.ones_like(out) if grad is None else grad
    return out, layer.backward(g)


def reference_pool(x, kernel_size, stride=None, padding=0, grad=None):
    """Plain loops: max over each window (padding = -inf, never chosen over a real value);
    the gradient goes to the FIRST maximum in row-major window order."""
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    if stride is None:
        sh, sw = kh, kw
    else:
        sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    n, c, h, w = x.shape
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    out = np.empty((n, c, ho, wo), x.dtype)
    g = np.ones_like(out) if grad is None else grad
    dx = np.zeros_like(x)
    for b in range(n):
        for ch in range(c):
            for i in range(ho):
                for j in range(wo):
                    best, arg = None, None
                    for p in range(kh):
                        for q in range(kw):
                            r, s = i * sh - ph + p, j * sw - pw + q
                            if 0 <= r < h and 0 <= s < w and (best is None or x[b, ch, r, s] > best):
                                best, arg = x[b, ch, r, s], (r, s)
                    out[b, ch, i, j] = best
                    dx[b, ch, arg[0], arg[1]] += g[b, ch, i, j]
    return out, dx


def torch_pool(x, kernel_size, stride, padding, grad):
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.max_pool2d(xt, kernel_size, stride, padding)
    yt.backward(torch.tensor(grad))
    return yt.detach().numpy(), xt.grad.numpy()


# (kernel_size, stride, padding, input shape)
TORCH_CONFIGS = [
    (2, 2, 0, (2, 3, 8, 8)),
    (2, None, 0, (2, 2, 7, 9)),  # odd sizes: last row/column dropped
    (3, 2, 1, (2, 2, 7, 7)),
    (3, 2, 1, (1, 3, 8, 6)),
    (3, 1, 0, (2, 2, 6, 7)),  # overlapping
    (3, 1, 1, (1, 2, 5, 5)),  # overlapping + padding ('same'-sized output)
    ((2, 3), (2, 3), 0, (2, 2, 6, 9)),  # rectangular, tiling
    ((2, 3), 1, (1, 1), (1, 2, 5, 7)),  # rectangular, overlapping, padded
    ((2, 3), (1, 2), 0, (2, 1, 7, 8)),
    (2, 1, 1, (1, 1, 4, 5)),  # padding = k/2 exactly
    (5, 3, 2, (1, 2, 11, 9)),
]
config_ids = [f"k{k}-s{s}-p{p}-{'x'.join(map(str, shape))}" for k, s, p, shape in TORCH_CONFIGS]


@pytest.mark.parametrize("k,s,p,shape", TORCH_CONFIGS, ids=config_ids)
def test_torch_parity_tie_free(k, s, p, shape):
    pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = tie_free(shape, rng)
    layer = MaxPool2D(k, s, p)
    out = layer(x)
    g = rng.standard_normal(out.shape)
    dx = layer.backward(g)
    out_t, dx_t = torch_pool(x, k, s, p, g)
    assert out.shape == out_t.shape
    np.testing.assert_array_equal(out, out_t)  # a max is exact
    np.testing.assert_allclose(dx, dx_t, rtol=1e-13, atol=1e-15)
    # the functional API gives the same
    out_f, idx = F.max_pool2d(x, k, s, p, return_indices=True)
    np.testing.assert_array_equal(out_f, out)
    np.testing.assert_array_equal(F.max_pool2d(x, k, s, p), out)
    np.testing.assert_array_equal(F.max_pool2d_backward(x.shape, g, idx, k, s, p), dx)


@pytest.mark.parametrize("k,s,p,shape", TORCH_CONFIGS, ids=config_ids)
def test_torch_parity_with_ties(k, s, p, shape):
    """Small-integer inputs: many tied windows; torch's CPU kernel also takes the first max."""
    pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.integers(-1, 2, shape).astype(np.float64)
    g = rng.standard_normal(F.max_pool2d(x, k, s, p).shape)
    out, dx = pool(x, k, s, p, g)
    out_t, dx_t = torch_pool(x, k, s, p, g)
    np.testing.assert_array_equal(out, out_t)
    np.testing.assert_allclose(dx, dx_t, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("k,s,p,shape", TORCH_CONFIGS, ids=config_ids)
def test_loop_reference_tie_free_and_tied(k, s, p, shape):
    rng = np.random.default_rng(2)
    for x in (tie_free(shape, rng), rng.integers(0, 2, shape).astype(np.float64)):
        g = rng.standard_normal(F.max_pool2d(x, k, s, p).shape)
        out, dx = pool(x, k, s, p, g)
        out_r, dx_r = reference_pool(x, k, s, p, g)
        np.testing.assert_array_equal(out, out_r)
        np.testing.assert_allclose(dx, dx_r, rtol=1e-13, atol=1e-15)


# ------------------------------------------------------------ tie rule, exactly
def test_all_equal_window_sends_gradient_to_top_left():
    x = np.full((1, 1, 2, 2), 5.0)
    out, dx = pool(x, 2, grad=np.full((1, 1, 1, 1), 3.0))
    assert out[0, 0, 0, 0] == 5.0
    np.testing.assert_array_equal(dx[0, 0], [[3.0, 0.0], [0.0, 0.0]])


def test_all_equal_rectangular_window_top_left():
    x = np.zeros((1, 1, 2, 3))
    _, dx = pool(x, (2, 3))
    np.testing.assert_array_equal(dx[0, 0], [[1, 0, 0], [0, 0, 0]])


def test_tie_between_01_and_10_goes_to_01():
    x = np.array([[[[1.0, 3.0], [3.0, 0.0]]]])
    out, dx = pool(x, 2)
    assert out[0, 0, 0, 0] == 3.0
    np.testing.assert_array_equal(dx[0, 0], [[0.0, 1.0], [0.0, 0.0]])
    _, idx = F.max_pool2d(x, 2, return_indices=True)
    assert idx[0, 0, 0, 0] == 1  # flat index p * kw + q


def test_tie_in_second_row_goes_to_first_column():
    x = np.array([[[[0.0, 1.0], [7.0, 7.0]]]])
    _, dx = pool(x, 2)
    np.testing.assert_array_equal(dx[0, 0], [[0.0, 0.0], [1.0, 0.0]])


@pytest.mark.parametrize("shape", [(1, 1, 4, 4), (1, 1, 5, 5)],
                         ids=["tiling(one-hot path)", "odd(bincount path)"])
def test_tie_rule_in_both_backward_paths(shape):
    """Each 2x2 window of the constant input sends its gradient to its own top-left element."""
    x = np.ones(shape, np.float32)
    g = np.arange(1, 5, dtype=np.float32).reshape(1, 1, 2, 2)
    out, dx = pool(x, 2, grad=g)
    assert dx.dtype == np.float32 and dx.shape == shape
    expected = np.zeros(shape, np.float32)
    expected[0, 0, 0:4:2, 0:4:2] = g[0, 0]
    np.testing.assert_array_equal(dx, expected)


def test_overlapping_windows_add_up_unique_max():
    # the centre is the maximum of all four 2x2 windows (stride 1)
    x = np.array([[[[0.0, 1.0, 0.5], [2.0, 9.0, 3.0], [0.1, 0.2, 0.3]]]])
    g = np.array([[[[1.0, 10.0], [100.0, 1000.0]]]])
    out, dx = pool(x, 2, stride=1, grad=g)
    np.testing.assert_array_equal(out[0, 0], [[9.0, 9.0], [9.0, 9.0]])
    expected = np.zeros((3, 3))
    expected[1, 1] = 1111.0
    np.testing.assert_array_equal(dx[0, 0], expected)


def test_overlapping_windows_with_ties():
    # constant 3x3, k=2, s=1: each window's top-left wins -> (0,0),(0,1),(1,0),(1,1)
    x = np.ones((1, 1, 3, 3))
    g = np.array([[[[1.0, 10.0], [100.0, 1000.0]]]])
    _, dx = pool(x, 2, stride=1, grad=g)
    np.testing.assert_array_equal(dx[0, 0], [[1.0, 10.0, 0.0], [100.0, 1000.0, 0.0], [0.0, 0.0, 0.0]])
    # constant 1x4 with k=(1,3), s=1: windows start at col 0 and 1, each wins its first element
    _, dx = pool(np.ones((1, 1, 1, 4)), (1, 3), stride=1, grad=np.array([[[[2.0, 5.0]]]]))
    np.testing.assert_array_equal(dx[0, 0], [[2.0, 5.0, 0.0, 0.0]])


def test_tied_maximum_shared_between_overlapping_windows():
    # 1x5 row, k=3, s=1: windows [0..2], [1..3], [2..4]; value 4 at cols 1 and 3
    x = np.array([[[[0.0, 4.0, 1.0, 4.0, 2.0]]]])
    _, dx = pool(x, (1, 3), stride=1, grad=np.array([[[[1.0, 10.0, 100.0]]]]))
    # window0 -> col1, window1 (cols 1,2,3) -> col1 (first), window2 (cols 2,3,4) -> col3
    np.testing.assert_array_equal(dx[0, 0], [[0.0, 11.0, 0.0, 100.0, 0.0]])


# ---------------------------------------------------------------- -inf padding
@pytest.mark.parametrize("k,s,p", [(3, 2, 1), (3, 1, 1), (2, 1, 1), (2, 2, 1), ((3, 2), 1, (1, 1))])
def test_padding_is_minus_inf(k, s, p):
    rng = np.random.default_rng(3)
    x = -rng.uniform(1.0, 5.0, (2, 2, 5, 6))  # all negative: zero padding would win
    out, dx = pool(x, k, s, p)
    assert np.all(out < 0), "padding won a window: it must be -inf, not 0"
    assert np.all(np.isfinite(out))
    out_r, dx_r = reference_pool(x, k, s, p)
    np.testing.assert_array_equal(out, out_r)
    np.testing.assert_array_equal(dx, dx_r)
    assert dx.sum() == out.size  # no gradient is lost to the padding


def test_padding_with_constant_negative_input_ties():
    # every window ties; the gradient must land on the first REAL element, never on padding
    x = np.full((1, 1, 3, 3), -1.0)
    out, dx = pool(x, 3, stride=2, padding=1)
    np.testing.assert_array_equal(out, np.full((1, 1, 2, 2), -1.0))
    np.testing.assert_array_equal(dx[0, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])


def test_padding_minus_inf_input_keeps_gradient():
    x = np.full((1, 1, 3, 3), -np.inf)
    out, dx = pool(x, 3, stride=2, padding=1)
    assert np.all(out == -np.inf)
    assert dx.sum() == out.size  # each window's gradient lands somewhere real
    np.testing.assert_array_equal(dx[0, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])  # torch's answer


def test_padding_more_than_half_kernel_rejected():
    with pytest.raises(ValueError, match=r"at most half the kernel.*padding=2.*kernel_size=\(2, 2\)"):
        MaxPool2D(2, padding=2)(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="at most half the kernel"):
        F.max_pool2d(np.zeros((1, 1, 4, 4)), 3, 1, 2)


# --------------------------------------------------------------------- misc
def test_nan_propagates():
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = np.nan
    out = F.max_pool2d(x, 2)
    assert np.isnan(out[0, 0, 0, 0])
    np.testing.assert_array_equal(out[0, 0].ravel()[1:], [7.0, 13.0, 15.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 1, 1)], ids=["tiling", "overlap"])
def test_dtype_kept(dtype, k, s, p):
    x = tie_free((2, 2, 6, 6), np.random.default_rng(4)).astype(dtype)
    out, dx = pool(x, k, s, p, grad=np.ones(F.max_pool2d(x, k, s, p).shape, dtype))
    assert out.dtype == dtype and dx.dtype == dtype


def test_default_stride_is_kernel_size():
    x = tie_free((1, 1, 6, 6), np.random.default_rng(5))
    np.testing.assert_array_equal(MaxPool2D(3)(x), MaxPool2D(3, stride=3)(x))
    assert MaxPool2D(3).stride == (3, 3)


def test_same_padding_output_size():
    x = tie_free((1, 1, 7, 8), np.random.default_rng(6))
    assert MaxPool2D(3, stride=1, padding="same")(x).shape == (1, 1, 7, 8)
    assert MaxPool2D(2, stride=2, padding="same")(x).shape == (1, 1, 4, 4)


@pytest.mark.parametrize("k,s,p,shape", [(2, 2, 0, (1, 2, 4, 5)), (3, 2, 1, (2, 1, 5, 5)),
                                         (3, 1, 0, (1, 1, 5, 6)), ((2, 3), (1, 2), 1, (1, 1, 4, 7))])
def test_gradcheck_tie_free(k, s, p, shape):
    x = tie_free(shape, np.random.default_rng(7))
    report = mdl.gradcheck(MaxPool2D(k, s, p), x)
    assert report.passed, "\n" + str(report)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.sampled_from([1, 2, 3, (2, 3), (3, 1)]),
       s=st.sampled_from([None, 1, 2, (1, 2)]), h=st.integers(3, 7), w=st.integers(3, 7),
       pad=st.booleans(), levels=st.integers(1, 4))
def test_random_tied_inputs_match_loop_reference(seed, k, s, h, w, pad, levels):
    rng = np.random.default_rng(seed)
    kh, kw = (k, k) if isinstance(k, int) else k
    p = (kh // 2, kw // 2) if pad else 0
    x = rng.integers(-levels, levels, (2, 2, h, w)).astype(np.float64)
    g = rng.standard_normal(F.max_pool2d(x, k, s, p).shape)
    out, dx = pool(x, k, s, p, g)
    out_r, dx_r = reference_pool(x, k, s, p, g)
    np.testing.assert_array_equal(out, out_r)
    np.testing.assert_allclose(dx, dx_r, rtol=1e-13, atol=1e-15)


def _channels_last_copy(a):
    """Same values, NCHW shape, channels-last memory (what Conv2D hands to the next layer)."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("k, s, p", [(2, None, 0), (3, 1, 1), (3, 2, 1), ((2, 3), (2, 1), (1, 0))])
@pytest.mark.parametrize("special", ["plain", "ties", "nan", "neginf"])
def test_channels_last_input_gives_identical_results(k, s, p, special):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 7, 6))
    if special == "ties":
        x = np.round(x)  # many equal values per window
    elif special == "nan":
        x[0, 1, 2, 3] = np.nan
    elif special == "neginf":
        x[1, 2, :3, :3] = -np.inf
    x_cl = _channels_last_copy(x)
    assert not x_cl.flags.c_contiguous and x_cl.shape == x.shape
    out, idx = F.max_pool2d(x, k, s, p, return_indices=True)
    out_cl, idx_cl = F.max_pool2d(x_cl, k, s, p, return_indices=True)
    np.testing.assert_array_equal(out_cl, out)
    np.testing.assert_array_equal(idx_cl, idx)
    assert out_cl.shape == out.shape and idx_cl.shape == idx.shape
    g = rng.standard_normal(out.shape)
    dx = F.max_pool2d_backward(x.shape, g, idx, k, s, p)
    for g_in in (g, _channels_last_copy(g)):  # upstream gradient in either layout
        np.testing.assert_array_equal(F.max_pool2d_backward(x.shape, g_in, idx_cl, k, s, p), dx)


def test_nan_gradient_goes_to_the_last_nan_of_the_window_as_in_torch():
    x = np.array([[[[np.nan, 1.0], [np.nan, 2.0]]]])
    out, idx = F.max_pool2d(x, 2, return_indices=True)
    assert np.isnan(out).all() and idx.item() == 2  # torch's indices give 2 as well
    dx = F.max_pool2d_backward(x.shape, np.ones_like(out), idx, 2)
    np.testing.assert_array_equal(dx, [[[[0.0, 0.0], [1.0, 0.0]]]])
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(xt, 2).sum().backward()
    np.testing.assert_array_equal(dx, xt.grad.numpy())


def test_layer_rejects_too_much_padding_at_construction():
    with pytest.raises(ValueError, match="at most half the kernel size"):
        MaxPool2D(2, padding=2)
    MaxPool2D(3, padding=1)  # k // 2 is fine


def test_empty_batch_gives_empty_outputs_and_zero_channels_raise():
    x = np.zeros((0, 3, 7, 7), np.float32)
    out, idx = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    assert out.shape == (0, 3, 4, 4) and idx.shape == out.shape  # torch: (0, 3, 4, 4)
    dx = F.max_pool2d_backward(x.shape, out, idx, 3, 2, 1)
    assert dx.shape == x.shape and dx.dtype == np.float32
    layer = MaxPool2D(3, 2, 1)
    assert layer.backward(layer(x)).shape == x.shape
    with pytest.raises(ValueError, match="at least one channel"):
        F.max_pool2d(np.zeros((2, 0, 4, 4), np.float32), 2)  # torch raises too


def test_backward_accepts_small_indices_and_rejects_float_ones():
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    out, idx = F.max_pool2d(x, 3, 1, 1, return_indices=True)
    assert idx.dtype == np.uint8
    g = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    dx = F.max_pool2d_backward(x.shape, g, idx, 3, 1, 1)
    assert dx.dtype == np.float32
    np.testing.assert_array_equal(dx, F.max_pool2d_backward(x.shape, g, idx.astype(np.int64), 3, 1, 1))
    with pytest.raises(TypeError, match="indices must be integers"):
        F.max_pool2d_backward(x.shape, g, idx.astype(np.float32), 3, 1, 1)
