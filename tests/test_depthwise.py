"""Depthwise convolutions (one input channel per group, ``m`` outputs per channel):
the direct per-offset kernels of ``minidl.functional._engine.depthwise`` against two oracles --
the same convolution with ``groups=1`` and a block-diagonal dense weight (numpy only:
the GEMM path), and PyTorch in float64 -- for channel multipliers 1 to 3, strides,
dilations, asymmetric padding, the padding modes, pieces and the memory they use."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

import minidl.functional.conv as conv_mod
from minidl import functional as F
from minidl.functional._engine import depthwise

TIGHT = 1e-11

# (name, n, c, m, hw, k, stride, padding, dilation)
CASES = [
    ("m1_same", 2, 3, 1, (7, 6), 3, 1, "same", 1),
    ("m2_same", 2, 3, 2, (7, 6), 3, 1, "same", 1),
    ("m3_s2_same_asym", 2, 2, 3, (8, 7), 3, 2, "same", 1),  # 'same' at stride 2: ((0, 1), (1, 1))
    ("m2_d2_same", 2, 3, 2, (9, 8), 3, 1, "same", 2),
    ("m3_s2_d2", 2, 2, 3, (11, 10), 3, 2, 2, 2),
    ("m2_k4_same_asym", 1, 2, 2, (6, 7), 4, 1, "same", 1),  # even kernel: pads (1, 2)
    ("m2_k32_s21_explicit", 2, 3, 2, (8, 9), (3, 2), (2, 1), ((2, 0), (1, 3)), (1, 2)),
    ("m3_s12_d21", 2, 2, 3, (9, 9), (2, 3), (1, 2), ((1, 1), (0, 2)), (2, 1)),
    ("m2_s3_d2_k4", 2, 2, 2, (6, 13), (2, 4), (1, 3), "same", (1, 2)),  # columns in 3 phases
    ("m1_s2_d4", 1, 3, 1, (5, 14), 3, 2, 3, 4),  # every column in one phase, 2 apart
    ("m2_pad_beyond_reach", 2, 2, 2, (5, 6), 3, 1, 4, 1),  # stride 1, padding > d (k - 1)
    ("m2_s2_pad_beyond_reach", 1, 2, 2, (3, 4), 3, 2, 4, 1),
    ("m1_k1_s2_pad3", 2, 2, 1, (1, 3), 1, 2, 3, 1),  # outputs reading only padding, input rows unread
    ("m2_k1_input_unread", 1, 2, 2, (1, 4), 1, (3, 2), ((5, 0), (0, 1)), 1),  # every output in the padding
    ("m8_direct_limit", 1, 2, 8, (5, 6), 3, 1, 1, 1),  # depthwise.MAX_MULTIPLIER at stride 1
    ("m9_gemm", 1, 2, 9, (5, 6), 3, 1, 1, 1),  # beyond it: the grouped GEMM paths
    ("m4_s2_direct_limit", 1, 2, 4, (7, 6), 3, 2, "same", 1),
    ("m5_s2_gemm", 1, 2, 5, (7, 6), 3, 2, "same", 1),
    ("m1_s3_skips_rows", 2, 3, 1, (9, 10), 2, 3, 0, 1),  # the floor skips inner and last rows
    ("m3_k1", 2, 2, 3, (4, 5), 1, 1, 0, 1),
]
IDS = [c[0] for c in CASES]
BY_NAME = {c[0]: c for c in CASES}


def _data(case, seed=0, dtype=np.float64):
    _, n, c, m, hw, k, stride, padding, dilation = case
    kh, kw = (k, k) if isinstance(k, int) else k
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c) + hw).astype(dtype)
    w = rng.standard_normal((c * m, 1, kh, kw)).astype(dtype)
    b = rng.standard_normal(c * m).astype(dtype)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=c)
    g = rng.standard_normal(F.conv2d(x, w, **kwargs).shape).astype(dtype)
    return x, w, b, g, kwargs


def _dense(w, c):
    """The block-diagonal ``groups=1`` weight of a depthwise ``w``: ``(C m, C, kh, kw)``."""
    o = w.shape[0]
    dense = np.zeros((o, c) + w.shape[2:], w.dtype)
    dense[np.arange(o), np.arange(o) // (o // c)] = w[:, 0]
    return dense


def _minidl(x, w, b, g, kwargs, **extra):
    y = F.conv2d(x, w, b, **kwargs, **extra)
    dx, dw, db = conv_mod.conv2d_backward(x, w, g, **kwargs, **extra)
    return y, dx, dw, db


def _check(got, expected, tol):
    for name, a, e in zip(("forward", "dX", "dW", "db"), got, expected):
        assert a.shape == e.shape and a.dtype == e.dtype, (name, a.shape, e.shape)
        np.testing.assert_allclose(a, e, rtol=0, atol=tol, err_msg=name)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_the_block_diagonal_dense_convolution(case):
    """Numpy-only oracle: groups=1 with the block-diagonal weight runs the im2col GEMMs."""
    x, w, b, g, kwargs = _data(case)
    c = x.shape[1]
    dense = dict(kwargs, groups=1)
    y, dx, dw_dense, db = _minidl(x, _dense(w, c), b, g, dense)
    dw = dw_dense[np.arange(w.shape[0]), np.arange(w.shape[0]) // (w.shape[0] // c)][:, None]
    _check(_minidl(x, w, b, g, kwargs), (y, dx, dw, db), TIGHT)


@pytest.mark.parametrize("c, groups, padding, dilation", [(4, 2, 1, 1), (6, 3, "same", 2), (6, 2, ((2, 0), (1, 2)), 1)])
def test_one_output_per_group_input_gradient(c, groups, padding, dilation):
    """One output channel per group (C / groups inputs): at stride 1, dX is a depthwise
    correlation of G (one channel per group) with C / groups outputs per channel -- the
    same forward kernel. Checked against groups=1 with the block-diagonal weight."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, c, 7, 8))
    w = rng.standard_normal((groups, c // groups, 3, 3))
    kwargs = dict(padding=padding, dilation=dilation, groups=groups)
    g = rng.standard_normal(F.conv2d(x, w, **kwargs).shape)
    dense = np.zeros((groups, c, 3, 3))
    for o in range(groups):
        dense[o, o * (c // groups) : (o + 1) * (c // groups)] = w[o]
    expected = conv_mod.conv2d_backward(x, dense, g, **dict(kwargs, groups=1))[0]
    np.testing.assert_allclose(F.conv2d_input(x.shape, w, g, **kwargs), expected, rtol=0, atol=TIGHT)


def _torch(x, w, b, g, kwargs, mode="zeros"):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    (top, bottom), (left, right) = F.resolve_padding(
        kwargs["padding"], x.shape[2:], w.shape[2:], kwargs["stride"], kwargs["dilation"])
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    pads = (left, right, top, bottom)
    xp = tf.pad(xt, pads) if mode == "zeros" else tf.pad(xt, pads, mode=mode)
    y = tf.conv2d(xp, wt, bt, stride=kwargs["stride"], dilation=kwargs["dilation"], groups=kwargs["groups"])
    y.backward(torch.tensor(g))
    return y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_torch(case):
    x, w, b, g, kwargs = _data(case, seed=1)
    _check(_minidl(x, w, b, g, kwargs), _torch(x, w, b, g, kwargs), TIGHT)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes_match_torch(mode):
    """The non-zero padding is applied before (and its adjoint after) the depthwise kernels."""
    case = ("m2_s2_same", 2, 3, 2, (7, 8), 3, 2, "same", 1)
    x, w, b, g, kwargs = _data(case, seed=2)
    _check(_minidl(x, w, b, g, kwargs, padding_mode=mode), _torch(x, w, b, g, kwargs, mode), TIGHT)
    case = ("m3_d2", 1, 2, 3, (7, 7), 3, 1, 2, 2)
    x, w, b, g, kwargs = _data(case, seed=3)
    _check(_minidl(x, w, b, g, kwargs, padding_mode=mode), _torch(x, w, b, g, kwargs, mode), TIGHT)


@pytest.mark.parametrize("cap", [4096, 700, 1], ids=["rows", "columns_of_a_row", "one_pixel"])
@pytest.mark.parametrize("case", [BY_NAME[k] for k in ("m2_same", "m3_s2_d2", "m2_k32_s21_explicit",
                                                       "m2_s3_d2_k4", "m2_pad_beyond_reach",
                                                       "m2_s2_pad_beyond_reach")], ids=lambda c: c[0])
def test_pieces_give_the_unsplit_result(case, cap, monkeypatch):
    """Split into bands of rows, runs of one row's pixels or single pixels: the same numbers
    (the separate kernels too)."""
    x, w, b, g, kwargs = _data(case, seed=4)
    whole = _minidl(x, w, b, g, kwargs)
    monkeypatch.setattr(conv_mod, "MAX_COLUMN_BYTES", cap)
    _check(_minidl(x, w, b, g, kwargs), whole, 1e-12)
    np.testing.assert_allclose(F.conv2d_input(x.shape, w, g, **kwargs), whole[1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(F.conv2d_weight(x, w.shape, g, **kwargs), whole[2], rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", [BY_NAME["m2_same"], BY_NAME["m3_s2_same_asym"]], ids=lambda c: c[0])
def test_layouts_and_float32(case):
    """A channels-last input (read without a copy where unpadded) gives the NCHW input's
    result; float32 stays float32, channels-last as the rest of conv2d returns it."""
    x, w, b, g, kwargs = _data(case, seed=5)
    expected = _minidl(x, w, b, g, kwargs)
    x_cl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    g_cl = np.ascontiguousarray(g.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    _check(_minidl(x_cl, w, b, g_cl, kwargs), expected, 1e-12)
    valid = dict(kwargs, padding=0)  # no padding: the unpadded channels-last input is used in place
    g_valid = np.ones(F.conv2d(x, w, **valid).shape)
    _check(_minidl(x_cl, w, b, g_valid, valid), _minidl(x, w, b, g_valid, valid), 1e-12)
    f32 = [a.astype(np.float32) for a in (x, w, b, g)]
    got = _minidl(*f32, kwargs)
    for a, e in zip(got, expected):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-4)
    y, dx = got[0], got[1]
    for a in (y, dx):  # NCHW shape, channels-last memory
        assert a.transpose(0, 2, 3, 1).flags.c_contiguous


@pytest.mark.parametrize("case", [BY_NAME[k] for k in ("m3_s2_same_asym", "m2_s3_d2_k4", "m2_pad_beyond_reach",
                                                       "m2_s2_pad_beyond_reach", "m1_k1_s2_pad3",
                                                       "m2_k1_input_unread", "m1_s3_skips_rows")], ids=lambda c: c[0])
def test_every_input_gradient_is_written(case):
    """dX is allocated without zeros at stride > 1: the rows and columns no output reads
    (outside the padding's reach, or skipped by the floor) are zeroed explicitly. The
    allocator is handed freed NaN-filled blocks of dX's size first."""
    x, w, b, g, kwargs = _data(case, seed=7)
    expected = _minidl(x, w, b, g, kwargs)[1]
    for _ in range(3):
        poison = np.full(x.shape, np.nan)
        del poison
        dx = F.conv2d_input(x.shape, w, g, **kwargs)
        assert np.isfinite(dx).all()
        np.testing.assert_allclose(dx, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("m, stride, direct", [(8, 1, True), (9, 1, False), (4, 2, True), (5, 2, False)])
def test_many_outputs_per_channel_take_the_gemm_paths(m, stride, direct):
    """Up to depthwise.MAX_MULTIPLIER outputs per channel the direct kernels run (no
    columns); beyond, the grouped im2col GEMMs (whose columns the forward pass returns)."""
    x, w, b, g, kwargs = _data(("", 1, 2, m, (6, 6), 3, stride, 1, 1))
    _, cols = F.conv2d(x, w, b, **kwargs, return_columns=True)
    assert (cols is None) == direct
    assert depthwise.direct(m, (stride, stride)) == direct


def _peak(fn):
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        return result, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("stride", [1, 2], ids=["full_correlation", "scatter"])
def test_memory_stays_within_the_tensors_and_one_piece(stride, monkeypatch):
    """Peaks: forward = its output + one piece; backward = dX, G re-laid out, one piece --
    no buffer of kh * kw (or m) times the input."""
    cap = 128 * 2**10
    monkeypatch.setattr(conv_mod, "MAX_COLUMN_BYTES", cap)
    rng = np.random.default_rng(6)
    c, m = 16, 2
    x = rng.standard_normal((4, c, 48, 48)).astype(np.float32)  # 576 KiB
    w = rng.standard_normal((c * m, 1, 3, 3)).astype(np.float32)
    kwargs = dict(stride=stride, padding=1, groups=c)
    y, peak = _peak(lambda: F.conv2d(x, w, **kwargs))
    slack = 64 * 2**10
    assert peak < y.nbytes + cap + slack, (peak, y.nbytes)
    g = np.ones_like(y)
    _, peak = _peak(lambda: conv_mod.conv2d_backward(x, w, g, **kwargs))
    assert peak < x.nbytes + g.nbytes + cap + slack, (peak, x.nbytes, g.nbytes)
