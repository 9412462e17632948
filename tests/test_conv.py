"""Conv2D: forward, dL/dX, dL/dW, dL/db against three independent oracles.

1. :mod:`minidl.functional.conv_reference`: explicit Python loops straight from the
   definition (it re-derives the padding rules and the output size too);
2. central differences (:func:`minidl.gradcheck`) on the :class:`Conv2D` layer;
3. PyTorch autograd in float64 (skipped when torch is not installed).

A fixed grid guarantees the hard cases; hypothesis adds >= 200 random
configurations. The derivation these tests check is ``docs/conv_backprop.md``.
Every comparison asserts its own bound; the largest parity error seen against
PyTorch is printed in pytest's terminal summary (``tests/conftest.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import minidl
import minidl.functional.conv as conv_mod
from minidl.functional import (
    conv2d,
    conv2d_bias,
    conv2d_input,
    conv2d_output_size,
    conv2d_weight,
    resolve_padding,
)
from minidl.functional import conv_reference as ref
from minidl.layers import Conv2D
from minidl.testing import assert_gradients

try:
    import torch
except ImportError:  # pragma: no cover - torch is optional
    torch = None

TIGHT = 1e-10  # float64 parity: absolute tolerance for every comparison

# --------------------------------------------------------------------------
# Session-wide record of the largest parity error: every comparison asserts
# its own bound; tests/conftest.py prints this record in pytest's summary.
# --------------------------------------------------------------------------
PARITY = {
    "torch": 0.0,          # max |minidl - torch| over forward/dX/dW/db, every config
    "torch_where": None,
    "reference": 0.0,      # max |minidl - loop reference|
    "reference_where": None,
    "ref_vs_torch": 0.0,   # max |loop reference - torch| (validates the oracle itself)
    "torch_configs": 0,
    "reference_configs": 0,
    "hypothesis_parity_examples": 0,
    "hypothesis_gradcheck_examples": 0,
}


def _record(kind, errors, where):
    worst = max(errors.values())
    if worst >= PARITY[kind]:
        PARITY[kind] = worst
        if kind + "_where" in PARITY:
            PARITY[kind + "_where"] = (where, errors)


# --------------------------------------------------------------------------
# Configurations
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Cfg:
    name: str
    n: int
    c: int
    o: int
    hw: tuple
    k: object
    stride: object = 1
    padding: object = 0
    dilation: object = 1
    bias: bool = True
    seed: int = field(default=0, compare=False)

    @property
    def kernel(self):
        return ref.as_pair(self.k)

    @property
    def conv_kwargs(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation)

    def __str__(self):
        return self.name


GRID = [
    # even kernels with 'same' (the odd extra row/column goes bottom/right)
    Cfg("k2_same_6x6", 2, 2, 3, (6, 6), 2, padding="same"),
    Cfg("k4_same_8x8", 2, 2, 2, (8, 8), 4, padding="same"),
    Cfg("k4_same_7x5", 3, 1, 2, (7, 5), 4, padding="same"),
    # strides that drop input rows/columns (floor in the output size)
    Cfg("8x8_k3_s2_p0_drops_last_row", 2, 2, 2, (8, 8), 3, stride=2),
    Cfg("8x8_k3_s3_p0_drops_2_rows", 2, 1, 2, (8, 8), 3, stride=3),
    Cfg("5x5_k1_s2_skips_odd_rows", 2, 2, 2, (5, 5), 1, stride=2),
    # stride 2 and 3 with 'same'
    Cfg("k3_s2_same_8x8", 2, 2, 2, (8, 8), 3, stride=2, padding="same"),
    Cfg("k3_s3_same_7x7", 2, 2, 2, (7, 7), 3, stride=3, padding="same"),
    Cfg("k4_s2_same_7x9", 2, 2, 2, (7, 9), 4, stride=2, padding="same"),
    Cfg("k2_s3_same_8x6", 2, 1, 2, (8, 6), 2, stride=3, padding="same"),
    # dilation 2, alone and with 'same' (and with stride: odd total padding)
    Cfg("k3_d2_p0_9x9", 2, 2, 2, (9, 9), 3, dilation=2),
    Cfg("k3_d2_same_8x8", 2, 2, 2, (8, 8), 3, dilation=2, padding="same"),
    Cfg("k3_d2_s2_same_8x8_odd_total", 2, 1, 2, (8, 8), 3, stride=2, dilation=2, padding="same"),
    Cfg("k2_d2_p1_6x7", 2, 2, 1, (6, 7), 2, dilation=2, padding=1),
    # 1x1 outputs
    Cfg("1x1_out_k3_3x3", 3, 2, 2, (3, 3), 3),
    Cfg("1x1_out_k3_s2_4x4_drops", 2, 2, 3, (4, 4), 3, stride=2),
    Cfg("1x1_in_k3_same", 2, 2, 2, (1, 1), 3, padding="same"),
    # rectangular kernels, non-square inputs, (sh, sw) strides
    Cfg("k2x3_s1x2_p1x0_6x9", 2, 2, 2, (6, 9), (2, 3), stride=(1, 2), padding=(1, 0)),
    Cfg("k3x1_s2x1_same_7x5", 2, 2, 3, (7, 5), (3, 1), stride=(2, 1), padding="same"),
    Cfg("k2x3_s3x2_d1x2_9x8", 2, 2, 2, (9, 8), (2, 3), stride=(3, 2), dilation=(1, 2)),
    # no bias
    Cfg("no_bias_k3_p1_5x6", 2, 2, 2, (5, 6), 3, padding=1, bias=False),
    Cfg("no_bias_k2_s2_same", 2, 1, 2, (5, 5), 2, stride=2, padding="same", bias=False),
    # explicit ((top, bottom), (left, right)) padding
    Cfg("explicit_0_2_1_0_k3_s2", 2, 2, 2, (7, 6), 3, stride=2, padding=((0, 2), (1, 0))),
    Cfg("explicit_2_1_0_3_k2_d2", 2, 1, 2, (5, 4), 2, dilation=2, padding=((2, 1), (0, 3))),
    # padding wider than the kernel reach (dilation*(k-1) - pad < 0)
    Cfg("k1_p2_5x5", 2, 2, 2, (5, 5), 1, padding=2),
    Cfg("k2_p2_s3_5x7", 2, 1, 1, (5, 7), 2, stride=3, padding=2),
    # stride 1 with out_channels >= 4 * in_channels: dX by GEMM + col2im
    # (FULL_CORRELATION_MIN_RATIO = 16) instead of the full correlation
    Cfg("k5_same_c1_o16_col2im", 2, 1, 16, (7, 6), 5, padding="same"),
    Cfg("k3x2_d2_explicit_c1_o17_col2im", 2, 1, 17, (7, 8), (3, 2), dilation=2,
        padding=((1, 2), (0, 1))),
    Cfg("k3_valid_c2_o32_col2im", 2, 2, 32, (5, 6), 3),
    # 'valid', single channels, larger batch
    Cfg("valid_k3_c1_o1_n3", 3, 1, 1, (6, 6), 3, padding="valid"),
]
GRID = [Cfg(**{**cfg.__dict__, "seed": i}) for i, cfg in enumerate(GRID)]
grid = pytest.mark.parametrize("cfg", GRID, ids=str)


def _data(cfg, dtype=np.float64):
    """Random x, W, b, upstream G for ``cfg`` (G's shape from the loop reference)."""
    rng = np.random.default_rng(1000 + cfg.seed)
    kh, kw = cfg.kernel
    x = rng.standard_normal((cfg.n, cfg.c) + tuple(cfg.hw)).astype(dtype)
    w = rng.standard_normal((cfg.o, cfg.c, kh, kw)).astype(dtype)
    b = rng.standard_normal(cfg.o).astype(dtype) if cfg.bias else None
    ho, wo = ref.output_size(cfg.hw, cfg.kernel, cfg.stride, cfg.padding, cfg.dilation)
    g = rng.standard_normal((cfg.n, cfg.o, ho, wo)).astype(dtype)
    return x, w, b, g


def _minidl(cfg, x, w, b, g):
    kw = cfg.conv_kwargs
    y = conv2d(x, w, b, **kw)
    dx = conv2d_input(x.shape, w, g, **kw)
    dw = conv2d_weight(x, w.shape, g, **kw)
    db = conv2d_bias(g) if b is not None else None
    return y, dx, dw, db


def _reference(cfg, x, w, b, g):
    y = ref.conv2d_forward(x, w, b, cfg.stride, cfg.padding, cfg.dilation)
    dx, dw, db = ref.conv2d_backward(x, w, g, cfg.stride, cfg.padding, cfg.dilation)
    return y, dx, dw, (db if b is not None else None)


def _torch(cfg, x, w, b, g):
    """PyTorch autograd in float64; the padding is applied explicitly with F.pad.

    The explicit pads come from the loop reference (not from minidl), so the
    'same' rule of :func:`resolve_padding` is checked independently as well.
    """
    tf = torch.nn.functional
    top, bottom, left, right = ref.explicit_padding(
        cfg.padding, cfg.hw, cfg.kernel, cfg.stride, cfg.dilation)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bt = None if b is None else torch.tensor(b, dtype=torch.float64, requires_grad=True)
    xp = tf.pad(xt, (left, right, top, bottom))
    y = tf.conv2d(xp, wt, bt, stride=ref.as_pair(cfg.stride), dilation=ref.as_pair(cfg.dilation))
    y.backward(torch.tensor(g, dtype=torch.float64))
    db = None if bt is None else bt.grad.numpy()
    return y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), db


NAMES = ("forward", "dX", "dW", "db")


def _compare(got, expected, atol=TIGHT, label=""):
    """Shapes equal and max |got - expected| <= atol for each of the four tensors."""
    errors = {}
    for name, a, e in zip(NAMES, got, expected):
        if e is None:
            assert a is None, f"{label} {name}: expected no gradient"
            continue
        a = np.asarray(a)
        assert a.shape == e.shape, f"{label} {name}: shape {a.shape}, expected {e.shape}"
        err = float(np.max(np.abs(a - e))) if a.size else 0.0
        errors[name] = err
        assert err <= atol, f"{label} {name}: max abs error {err:.3e} > {atol:g}"
    return errors


def _layer(cfg, dtype=np.float64, cls=Conv2D):
    return cls(cfg.c, cfg.o, cfg.k, stride=cfg.stride, padding=cfg.padding,
               dilation=cfg.dilation, bias=cfg.bias, dtype=dtype,
               rng=np.random.default_rng(cfg.seed))


# --------------------------------------------------------------------------
# (a) grid vs the loop reference, (b) gradcheck, (c) PyTorch
# --------------------------------------------------------------------------
@grid
def test_grid_matches_loop_reference(cfg):
    x, w, b, g = _data(cfg)
    # the explicit padding and the output size agree with the independent rules
    top, bottom, left, right = ref.explicit_padding(cfg.padding, cfg.hw, cfg.kernel, cfg.stride, cfg.dilation)
    assert resolve_padding(cfg.padding, cfg.hw, cfg.kernel, cfg.stride, cfg.dilation) == ((top, bottom), (left, right))
    assert conv2d_output_size(cfg.hw, cfg.kernel, cfg.stride, cfg.padding, cfg.dilation) == g.shape[2:]
    errors = _compare(_minidl(cfg, x, w, b, g), _reference(cfg, x, w, b, g), label=cfg.name)
    PARITY["reference_configs"] += 1
    _record("reference", errors, cfg.name)


@grid
def test_grid_gradcheck_layer(cfg):
    layer = _layer(cfg)
    x = np.random.default_rng(2000 + cfg.seed).standard_normal((cfg.n, cfg.c) + tuple(cfg.hw))
    report = assert_gradients(layer, x)
    assert [t.name for t in report.tensors] == ["input", "weight"] + (["bias"] if cfg.bias else [])


@grid
def test_grid_matches_torch(cfg):
    pytest.importorskip("torch")
    x, w, b, g = _data(cfg)
    expected = _torch(cfg, x, w, b, g)
    errors = _compare(_minidl(cfg, x, w, b, g), expected, label=cfg.name)
    PARITY["torch_configs"] += 1
    _record("torch", errors, cfg.name)
    # the loop reference agrees with torch too: the oracle is validated
    ref_errors = _compare(_reference(cfg, x, w, b, g), expected, label="reference " + cfg.name)
    _record("ref_vs_torch", ref_errors, cfg.name)


@grid
def test_grid_layer_forward_backward_match_functional(cfg):
    """The layer wires the kernels correctly and *adds* into .grad (twice -> doubled)."""
    layer = _layer(cfg)
    x, _, _, g = _data(cfg)
    y = layer(x)
    w, b = layer.weight.data, None if layer.bias is None else layer.bias.data
    y_f, dx_f, dw_f, db_f = _minidl(cfg, x, w, b, g)
    np.testing.assert_array_equal(y, y_f)
    dx = layer.backward(g)
    np.testing.assert_array_equal(dx, dx_f)
    np.testing.assert_array_equal(layer.weight.grad, dw_f)
    layer.backward(g)
    np.testing.assert_allclose(layer.weight.grad, 2 * dw_f, rtol=1e-14, atol=1e-14)
    if cfg.bias:
        np.testing.assert_allclose(layer.bias.grad, 2 * db_f, rtol=1e-14, atol=1e-14)
    else:
        assert layer.bias is None


# --------------------------------------------------------------------------
# The floor in the output size: dX keeps the input's shape
# --------------------------------------------------------------------------
@pytest.mark.parametrize("stride, dropped", [(2, [7]), (3, [6, 7])], ids=["s2_drops_row7", "s3_drops_rows6_7"])
def test_stride_that_drops_rows_gives_dx_of_input_shape(stride, dropped):
    """8x8 input, 3x3 kernel, padding 0: dX is 8x8 (not 7x7), dropped rows/cols get 0."""
    cfg = Cfg("drop", 2, 2, 3, (8, 8), 3, stride=stride)
    x, w, b, g = _data(cfg)
    assert g.shape[2:] == {2: (3, 3), 3: (2, 2)}[stride]
    dx = conv2d_input(x.shape, w, g, stride=stride)
    assert dx.shape == (2, 2, 8, 8)
    assert np.all(dx[:, :, dropped, :] == 0) and np.all(dx[:, :, :, dropped] == 0)
    kept = [i for i in range(8) if i not in dropped]
    assert np.all(dx[:, :, kept][:, :, :, kept] != 0)
    layer = _layer(cfg)
    layer(x)
    assert layer.backward(g).shape == (2, 2, 8, 8)
    np.testing.assert_allclose(dx, ref.conv2d_backward(x, w, g, stride=stride)[0], rtol=0, atol=TIGHT)


def test_same_padding_rule_matches_independent_formula():
    """resolve_padding('same') == the Keras rule re-implemented in conv_reference, exhaustively."""
    assert resolve_padding("same", (8, 8), 4) == ((1, 2), (1, 2))
    assert resolve_padding("same", (8, 8), 3, stride=2) == ((0, 1), (0, 1))
    for size in range(1, 13):
        for k in range(1, 6):
            for s in range(1, 4):
                for d in range(1, 3):
                    expected = ref.same_padding(size, k, s, d)
                    got = resolve_padding("same", (size, size), k, s, d)
                    assert got == (expected, expected), (size, k, s, d)
                    out = conv2d_output_size((size, size), k, s, "same", d)
                    assert out == (math.ceil(size / s),) * 2, (size, k, s, d)


def test_output_size_matches_window_count():
    """floor((H + pt + pb - d(k-1) - 1)/s) + 1 == number of windows that fit (counted)."""
    for size in range(1, 10):
        for k in range(1, 5):
            for s in range(1, 4):
                for d in range(1, 3):
                    for p in range(0, 3):
                        expected = ref.output_size((size, size), k, s, p, d)
                        if expected[0] == 0:
                            with pytest.raises(ValueError, match="larger than the padded input"):
                                conv2d_output_size((size, size), k, s, p, d)
                        else:
                            assert conv2d_output_size((size, size), k, s, p, d) == expected


# --------------------------------------------------------------------------
# Hypothesis: >= 200 random configurations vs torch (or the loop reference)
# --------------------------------------------------------------------------
@st.composite
def conv_configs(draw, max_n=3, max_c=3, max_hw=9):
    n = draw(st.integers(1, max_n))
    c = draw(st.integers(1, max_c))
    # o = 16 c: stride-1 dX by GEMM + col2im (FULL_CORRELATION_MIN_RATIO)
    o = draw(st.sampled_from([1, 2, 3, 16] if c == 1 else [1, 2, 3]))
    h, w = draw(st.integers(1, max_hw)), draw(st.integers(1, max_hw))
    k = draw(st.one_of(st.integers(1, 4), st.tuples(st.integers(1, 4), st.integers(1, 4))))
    stride = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    dilation = draw(st.one_of(st.integers(1, 2), st.tuples(st.integers(1, 2), st.integers(1, 2))))
    padding = draw(st.one_of(
        st.integers(0, 2),
        st.sampled_from(["same", "valid"]),
        st.tuples(st.integers(0, 2), st.integers(0, 2)),
        st.tuples(st.tuples(st.integers(0, 2), st.integers(0, 2)),
                  st.tuples(st.integers(0, 2), st.integers(0, 2))),
    ))
    bias = draw(st.booleans())
    (kh, kw), (dh, dw) = ref.as_pair(k), ref.as_pair(dilation)
    top, bottom, left, right = ref.explicit_padding(padding, (h, w), k, stride, dilation)
    # the dilated kernel must fit in the padded input
    assume((kh - 1) * dh + 1 <= h + top + bottom and (kw - 1) * dw + 1 <= w + left + right)
    seed = draw(st.integers(0, 2**16))
    return Cfg(f"hyp_{n}x{c}x{h}x{w}_o{o}_k{k}_s{stride}_d{dilation}_p{padding}_b{int(bias)}",
               n, c, o, (h, w), k, stride, padding, dilation, bias, seed)


HYPOTHESIS = dict(deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])


def test_hypothesis_parity():
    """>= 200 random configurations: forward, dX, dW, db vs PyTorch float64 (vs the
    loop reference without torch), each then gradchecked."""
    ran = []

    @settings(max_examples=200, **HYPOTHESIS)
    @given(cfg=conv_configs())
    def check(cfg):
        x, w, b, g = _data(cfg)
        assert conv2d_output_size(cfg.hw, cfg.kernel, cfg.stride, cfg.padding, cfg.dilation) == g.shape[2:]
        got = _minidl(cfg, x, w, b, g)
        if torch is not None:
            errors = _compare(got, _torch(cfg, x, w, b, g), label=cfg.name)
            PARITY["torch_configs"] += 1
            _record("torch", errors, cfg.name)
        else:  # pragma: no cover - exercised only without torch
            errors = _compare(got, _reference(cfg, x, w, b, g), label=cfg.name)
            PARITY["reference_configs"] += 1
            _record("reference", errors, cfg.name)
        # and the same configuration gradchecked (central differences, float64)
        assert_gradients(_layer(cfg), x)
        ran.append(cfg)

    check()
    PARITY["hypothesis_parity_examples"] += len(ran)
    assert len(ran) >= 200, f"hypothesis ran only {len(ran)} examples"


def test_hypothesis_gradcheck_layer():
    ran = []

    @settings(max_examples=60, **HYPOTHESIS)
    @given(cfg=conv_configs(max_n=2, max_c=2, max_hw=7))
    def check(cfg):
        layer = _layer(cfg)
        x = np.random.default_rng(cfg.seed).standard_normal((cfg.n, cfg.c) + tuple(cfg.hw))
        assert_gradients(layer, x)
        ran.append(cfg)

    check()
    PARITY["hypothesis_gradcheck_examples"] += len(ran)
    assert len(ran) >= 60, f"hypothesis ran only {len(ran)} examples"


# --------------------------------------------------------------------------
# The doc's transposed-convolution formula for dX, literally
# --------------------------------------------------------------------------
def dx_by_transposed_convolution(weight, g, input_hw, stride, padding, dilation):
    """dL/dX as ``docs/conv_backprop.md`` writes it, built from the *forward* conv2d.

    1. stride-dilate G: insert s-1 zeros between its elements;
    2. pad it by d(k-1) on both sides (a "full" convolution), plus r extra
       zeros at the bottom/right, r = (H_pad - d(k-1) - 1) mod s being the
       input rows the floor in the output size dropped;
    3. correlate with the 180-degree rotated kernel, in/out channels swapped,
       with the same dilation d and stride 1: this is dL/dX_pad;
    4. crop the padding: rows p_top .. p_top + H - 1, columns likewise.
    """
    n, o, ho, wo = g.shape
    h, w = input_hw
    kh, kw = weight.shape[2:]
    (sh, sw), (dh, dw) = ref.as_pair(stride), ref.as_pair(dilation)
    top, bottom, left, right = ref.explicit_padding(padding, input_hw, (kh, kw), stride, dilation)
    hp, wp = h + top + bottom, w + left + right
    gs = np.zeros((n, o, (ho - 1) * sh + 1, (wo - 1) * sw + 1))
    gs[:, :, ::sh, ::sw] = g
    rh, rw = (hp - dh * (kh - 1) - 1) % sh, (wp - dw * (kw - 1) - 1) % sw
    gsp = np.pad(gs, ((0, 0), (0, 0), (dh * (kh - 1), dh * (kh - 1) + rh),
                      (dw * (kw - 1), dw * (kw - 1) + rw)))
    w_rot = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    dx_pad = conv2d(gsp, w_rot, dilation=(dh, dw))
    assert dx_pad.shape[2:] == (hp, wp)
    return dx_pad[:, :, top:top + h, left:left + w], (top, bottom, left, right), (rh, rw), gs, w_rot


TRANSPOSED = [
    Cfg("s1_p0", 2, 2, 3, (6, 7), 3, stride=1, padding=0),
    Cfg("s1_p1", 2, 2, 3, (6, 7), 3, stride=1, padding=1),
    Cfg("s2_p0", 2, 2, 3, (8, 8), 3, stride=2, padding=0),
    Cfg("s2_p1", 2, 2, 3, (8, 7), 3, stride=2, padding=1),
    Cfg("s2_p1_d2", 2, 2, 2, (9, 8), 3, stride=2, padding=1, dilation=2),
    Cfg("s3x2_k2x3_same", 2, 2, 2, (8, 7), (2, 3), stride=(3, 2), padding="same"),
    Cfg("k4_same", 2, 1, 2, (7, 7), 4, padding="same"),
    Cfg("k1_p2_crop_more_than_full", 2, 2, 2, (5, 5), 1, padding=2),
]


@pytest.mark.parametrize("cfg", TRANSPOSED, ids=str)
def test_dx_is_transposed_convolution_with_rotated_kernel(cfg):
    x, w, b, g = _data(cfg)
    expected = conv2d_input(x.shape, w, g, **cfg.conv_kwargs)
    dx, (top, bottom, left, right), (rh, rw), gs, w_rot = dx_by_transposed_convolution(
        w, g, cfg.hw, cfg.stride, cfg.padding, cfg.dilation)
    np.testing.assert_allclose(dx, expected, rtol=0, atol=TIGHT)
    np.testing.assert_allclose(dx, ref.conv2d_backward(x, w, g, **cfg.conv_kwargs)[0], rtol=0, atol=TIGHT)
    # the same thing written as one padded convolution: pad G_s by d(k-1) - p
    # (top/left) and d(k-1) - p + r (bottom/right), when those are >= 0
    (kh, kw), (dh, dw) = w.shape[2:], ref.as_pair(cfg.dilation)
    pads = ((dh * (kh - 1) - top, dh * (kh - 1) - bottom + rh),
            (dw * (kw - 1) - left, dw * (kw - 1) - right + rw))
    if min(min(p) for p in pads) >= 0:
        direct = conv2d(gs, w_rot, padding=pads, dilation=(dh, dw))
        np.testing.assert_allclose(direct, expected, rtol=0, atol=TIGHT)
    else:
        assert cfg.name.startswith("k1_p2")  # p > d(k-1): only the crop form applies


@pytest.mark.parametrize("cfg", TRANSPOSED, ids=str)
def test_dw_is_correlation_of_padded_input_with_stride_dilated_grad(cfg):
    """dW[o, c] = sum_n corr(X_pad[n, c], G[n, o]) with G as the kernel, dilated by the
    stride s, and the correlation strided by the dilation d; keep the first k_h x k_w."""
    x, w, b, g = _data(cfg)
    (kh, kw), (sh, sw), (dh, dw) = w.shape[2:], ref.as_pair(cfg.stride), ref.as_pair(cfg.dilation)
    top, bottom, left, right = ref.explicit_padding(cfg.padding, cfg.hw, (kh, kw), cfg.stride, cfg.dilation)
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    # batch <-> channels: the sum over n becomes the channel sum of conv2d
    full = conv2d(np.ascontiguousarray(xp.transpose(1, 0, 2, 3)),      # (C, N, Hp, Wp)
                  np.ascontiguousarray(g.transpose(1, 0, 2, 3)),       # (O, N, Ho, Wo)
                  stride=(dh, dw), dilation=(sh, sw))                  # (C, O, >=kh, >=kw)
    assert full.shape[2] >= kh and full.shape[3] >= kw
    dw_corr = full.transpose(1, 0, 2, 3)[:, :, :kh, :kw]
    np.testing.assert_allclose(dw_corr, conv2d_weight(x, w.shape, g, **cfg.conv_kwargs), rtol=0, atol=TIGHT)


def test_non_contiguous_inputs_match_reference():
    """Strided views, negative strides, Fortran order: im2col reads the real strides."""
    base = np.random.default_rng(5).standard_normal((2, 3, 10, 12))
    views = {"step": base[:, :, ::2, ::3], "negative": base[:, ::-1, ::-1, :],
             "fortran": np.asfortranarray(base), "transposed": base.transpose(0, 1, 3, 2)}
    w = np.random.default_rng(6).standard_normal((2, 3, 3, 2))
    b = np.array([0.5, -1.0])
    kw = dict(stride=(2, 1), padding=((1, 0), (0, 2)), dilation=(1, 2))
    for name, x in views.items():
        cfg = Cfg(name, x.shape[0], 3, 2, x.shape[2:], (3, 2), **kw)
        y = conv2d(x, w, b, **kw)
        g = np.asfortranarray(np.random.default_rng(7).standard_normal(y.shape))
        _compare((y, conv2d_input(x.shape, w, g, **kw), conv2d_weight(x, w.shape, g, **kw), conv2d_bias(g)),
                 _reference(cfg, x, w, b, g), label=name)


# --------------------------------------------------------------------------
# Chunking over the batch under MAX_COLUMN_BYTES
# --------------------------------------------------------------------------
@pytest.mark.parametrize("budget", ["one_sample_per_chunk", "two_samples_uneven_last_chunk"])
def test_chunking_matches_unchunked(monkeypatch, budget):
    """The results under a small MAX_COLUMN_BYTES (the public knob) equal the
    unchunked ones. The memory bounds themselves are in tests/test_memory.py."""
    cfg = Cfg("chunk", 5, 2, 3, (7, 6), 3, stride=2, padding="same", dilation=1)
    x, w, b, g = _data(cfg)
    kw = cfg.conv_kwargs
    full = (conv2d(x, w, b, **kw), conv2d_input(x.shape, w, g, **kw), conv2d_weight(x, w.shape, g, **kw))

    ho, wo = g.shape[2:]
    per_sample = ho * wo * cfg.c * 9 * x.itemsize
    limit = per_sample if budget == "one_sample_per_chunk" else 2 * per_sample + 1
    monkeypatch.setattr(conv_mod, "MAX_COLUMN_BYTES", limit)
    chunked = (conv2d(x, w, b, **kw), conv2d_input(x.shape, w, g, **kw),
               conv2d_weight(x, w.shape, g, **kw))
    for name, a, e in zip(NAMES, chunked, full):
        assert a.shape == e.shape, name
        np.testing.assert_allclose(a, e, rtol=1e-13, atol=1e-13, err_msg=name)
    np.testing.assert_array_equal(chunked[1], full[1])  # dX: per-sample rows, same sums
    assert conv2d_output_size(cfg.hw, 3, 2, "same") == (4, 3)


@pytest.mark.parametrize("padding", ["same", 0, ((2, 0), (1, 2))])
def test_chunking_stride_one_input_grad_full_correlation(monkeypatch, padding):
    """Stride 1 takes the im2col full-correlation path for dX; it is split too
    (here down to one output pixel per piece) and gives the same numbers."""
    cfg = Cfg("chunk1", 5, 2, 3, (7, 6), 3, stride=1, padding=padding, dilation=(1, 2))
    x, w, b, g = _data(cfg)
    kw = cfg.conv_kwargs
    full = conv2d_input(x.shape, w, g, **kw)
    monkeypatch.setattr(conv_mod, "MAX_COLUMN_BYTES", 1)
    chunked = conv2d_input(x.shape, w, g, **kw)
    np.testing.assert_allclose(chunked, full, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(chunked, _reference(cfg, x, w, b, g)[1], rtol=1e-12, atol=1e-12)


def test_forward_columns_reused_in_backward(monkeypatch):
    cfg = Cfg("cols", 3, 2, 4, (6, 5), 3, stride=2, padding="same")
    x, w, b, g = _data(cfg)
    kw = cfg.conv_kwargs
    y, cols = conv2d(x, w, b, **kw, return_columns=True)
    np.testing.assert_array_equal(y, conv2d(x, w, b, **kw))
    assert cols.shape == (3 * 3 * 3, 2 * 3 * 3)
    _, dw, _ = conv_mod.conv2d_backward(x, w, g, **kw, columns=cols)
    np.testing.assert_array_equal(dw, conv2d_weight(x, w.shape, g, **kw))
    with pytest.raises(ValueError, match="columns must be the"):
        conv_mod.conv2d_backward(x, w, g, **kw, columns=cols[:-1])
    # chunked or too large: nothing is handed back, backward recomputes
    monkeypatch.setattr(conv_mod, "MAX_CACHED_COLUMN_BYTES", cols.nbytes - 1)
    assert conv2d(x, w, b, **kw, return_columns=True)[1] is None


def test_conv2d_backward_equals_the_three_kernels():
    cfg = Cfg("fused", 3, 2, 4, (6, 5), (3, 2), stride=(2, 1), padding="same", dilation=1)
    x, w, b, g = _data(cfg)
    kw = cfg.conv_kwargs
    dx, dw, db = conv_mod.conv2d_backward(x, w, g, **kw)
    np.testing.assert_array_equal(dx, conv2d_input(x.shape, w, g, **kw))
    np.testing.assert_array_equal(dw, conv2d_weight(x, w.shape, g, **kw))
    np.testing.assert_array_equal(db, conv2d_bias(g))
    assert conv_mod.conv2d_backward(x, w, g, **kw, bias=False)[2] is None


# --------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------
def test_float32_in_float32_out():
    cfg = Cfg("f32", 2, 2, 3, (7, 6), 3, stride=2, padding="same")
    layer = _layer(cfg, dtype=np.float32)
    x, _, _, g = _data(cfg, dtype=np.float32)
    y = layer(x)
    dx = layer.backward(g)
    assert y.dtype == dx.dtype == np.float32
    assert layer.weight.data.dtype == layer.weight.grad.dtype == np.float32
    assert layer.bias.grad.dtype == np.float32
    w, b = layer.weight.data, layer.bias.data
    for a in (conv2d(x, w, b, **cfg.conv_kwargs), conv2d_input(x.shape, w, g, **cfg.conv_kwargs),
              conv2d_weight(x, w.shape, g, **cfg.conv_kwargs), conv2d_bias(g)):
        assert a.dtype == np.float32
    # and the float32 numbers are the float64 numbers, rounded
    x64, g64, w64, b64 = (a.astype(np.float64) for a in (x, g, w, b))
    ref_cfg = Cfg(**{**cfg.__dict__, "name": "f64"})
    expected = _reference(ref_cfg, x64, w64, b64, g64)
    for name, a, e in zip(NAMES, (y, dx, layer.weight.grad, layer.bias.grad), expected):
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-4, err_msg=name)


def test_float64_input_to_float32_layer_raises():
    layer = Conv2D(2, 3, 3, rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="float64"):
        layer(np.zeros((1, 2, 5, 5), np.float64))


@pytest.mark.parametrize("kwargs", [dict(stride=1.0), dict(stride=True), dict(padding=True)],
                         ids=["stride_1.0", "stride_True", "padding_True"])
def test_invalid_geometry_rejected_even_after_a_valid_call(kwargs):
    x, w = np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3))
    valid = {k: 1 for k in kwargs}
    with pytest.raises(TypeError):  # cold: rejected
        conv2d(np.ones((1, 1, 5, 6)), w, **kwargs)
    conv2d(x, w, **valid)  # warm the geometry for (5, 5)
    with pytest.raises(TypeError):
        conv2d(x, w, **kwargs)


# --------------------------------------------------------------------------
# gradcheck catches wrong conv gradients
# --------------------------------------------------------------------------
class WeightGradScaled(Conv2D):
    """Bug: the weight gradient is 1% too large (everything else is right)."""

    def backward(self, grad_output):
        before = self.weight.grad.copy()
        dx = super().backward(grad_output)
        self.weight.grad[...] = before + 1.01 * (self.weight.grad - before)
        return dx


class BiasGradAveraged(Conv2D):
    """Bug: the bias gradient is averaged over the batch instead of summed."""

    def backward(self, grad_output):
        before = self.bias.grad.copy()
        dx = super().backward(grad_output)
        n = grad_output.shape[0]
        self.bias.grad[...] = before + (self.bias.grad - before) / n
        return dx


class WeightGradAveraged(Conv2D):
    """Bug of the original notebook: dW divided by the batch size inside the layer."""

    def backward(self, grad_output):
        before = self.weight.grad.copy()
        dx = super().backward(grad_output)
        self.weight.grad[...] = before + (self.weight.grad - before) / grad_output.shape[0]
        return dx


class InputGradKernelNotRotated(Conv2D):
    """Bug: dX computed without rotating the kernel by 180 degrees."""

    def backward(self, grad_output):
        x = self.saved_values[0]
        super().backward(grad_output)
        flipped = np.ascontiguousarray(self.weight.data[:, :, ::-1, ::-1])
        return conv2d_input(x.shape, flipped, grad_output, stride=self.stride, padding=self.padding,
                            dilation=self.dilation)


BUG_CFG = Cfg("bug", 3, 2, 2, (6, 5), 3, stride=2, padding="same")


def _rows(report):
    return {t.name: t.passed for t in report.tensors}


def test_gradcheck_passes_on_the_correct_layer():
    x = np.random.default_rng(7).standard_normal((3, 2, 6, 5))
    report = minidl.gradcheck(_layer(BUG_CFG), x)
    assert report.passed is True and _rows(report) == {"input": True, "weight": True, "bias": True}


def test_gradcheck_catches_weight_gradient_scaled_by_1_01():
    x = np.random.default_rng(7).standard_normal((3, 2, 6, 5))
    report = minidl.gradcheck(_layer(BUG_CFG, cls=WeightGradScaled), x)
    assert report.passed is False
    assert _rows(report) == {"input": True, "weight": False, "bias": True}
    row = next(t for t in report.tensors if t.name == "weight")
    assert row.worst_analytic == pytest.approx(1.01 * row.worst_numeric, rel=1e-6)
    with pytest.raises(AssertionError, match="weight"):
        assert_gradients(_layer(BUG_CFG, cls=WeightGradScaled), x)


def test_gradcheck_catches_bias_gradient_averaged_over_batch():
    x = np.random.default_rng(7).standard_normal((3, 2, 6, 5))
    report = minidl.gradcheck(_layer(BUG_CFG, cls=BiasGradAveraged), x)
    assert report.passed is False
    assert _rows(report) == {"input": True, "weight": True, "bias": False}
    row = next(t for t in report.tensors if t.name == "bias")
    assert row.worst_analytic == pytest.approx(row.worst_numeric / 3, rel=1e-6)
    assert "FAIL" in str(report)


def test_gradcheck_catches_weight_gradient_averaged_over_batch():
    x = np.random.default_rng(7).standard_normal((3, 2, 6, 5))
    report = minidl.gradcheck(_layer(BUG_CFG, cls=WeightGradAveraged), x)
    assert report.passed is False
    assert _rows(report) == {"input": True, "weight": False, "bias": True}
    row = next(t for t in report.tensors if t.name == "weight")
    assert row.worst_analytic == pytest.approx(row.worst_numeric / 3, rel=1e-6)


def test_gradcheck_catches_unrotated_kernel_in_dx():
    x = np.random.default_rng(7).standard_normal((3, 2, 6, 5))
    report = minidl.gradcheck(_layer(BUG_CFG, cls=InputGradKernelNotRotated), x)
    assert report.passed is False
    assert _rows(report) == {"input": False, "weight": True, "bias": True}


# --------------------------------------------------------------------------
# Memory layout and empty batches
# --------------------------------------------------------------------------
def test_outputs_are_nchw_with_channels_last_memory_and_layout_does_not_change_values():
    cfg = Cfg("layout", 2, 3, 4, (6, 5), 3, stride=1, padding="same")
    x, w, b, g = _data(cfg)
    kw = cfg.conv_kwargs
    y = conv2d(x, w, b, **kw)
    assert y.shape == (2, 4, 6, 5) and y.transpose(0, 2, 3, 1).flags.c_contiguous
    dx = conv2d_input(x.shape, w, g, **kw)
    assert dx.shape == x.shape
    # channels-last inputs and gradients give the same numbers as C-order ones
    x_cl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    g_cl = np.ascontiguousarray(g.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(conv2d(x_cl, w, b, **kw), y)
    np.testing.assert_array_equal(conv2d_input(x.shape, w, g_cl, **kw), dx)
    np.testing.assert_array_equal(conv2d_weight(x_cl, w.shape, g_cl, **kw), conv2d_weight(x, w.shape, g, **kw))
    np.testing.assert_allclose(y, _reference(cfg, x, w, b, g)[0], rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------
# Empty batches flow through (as in torch); zero channels are refused
# --------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [dict(padding=1), dict(stride=2, padding="same"),
                                dict(stride=(2, 1), padding=((2, 0), (1, 2)), dilation=2)])
def test_empty_batch_gives_empty_outputs_like_torch(kw):
    w = np.ones((4, 3, 3, 3), np.float32)
    b = np.ones(4, np.float32)
    x = np.zeros((0, 3, 9, 8), np.float32)
    y = conv2d(x, w, b, **kw)
    g = np.zeros(y.shape, np.float32)
    dx, dw, db = conv_mod.conv2d_backward(x, w, g, **kw)
    assert y.dtype == dx.dtype == dw.dtype == db.dtype == np.float32
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == (4,)
    assert not dw.any() and not db.any()
    assert conv2d_input(x.shape, w, g, **kw).shape == x.shape
    assert conv2d_weight(x, w.shape, g, **kw).shape == w.shape
    layer = Conv2D(3, 4, 3, **kw, rng=0)
    out = layer(x)
    assert out.shape == y.shape
    assert layer.backward(g).shape == x.shape and not layer.weight.grad.any()
    if torch is not None:
        padding = kw["padding"]
        if isinstance(padding, tuple) or kw.get("stride", 1) != 1 and padding == "same":
            return  # torch has no asymmetric padding nor strided 'same'; shapes checked above
        yt = torch.nn.functional.conv2d(torch.zeros(0, 3, 9, 8), torch.ones(4, 3, 3, 3),
                                        torch.ones(4), stride=kw.get("stride", 1), padding=padding)
        assert tuple(yt.shape) == y.shape


def test_empty_batch_through_a_model_and_flatten():
    model = minidl.Sequential(Conv2D(1, 2, 3, padding=1, rng=0), minidl.layers.ReLU(),
                              minidl.layers.MaxPool2D(2), minidl.layers.Flatten(),
                              minidl.layers.Dense(2 * 4 * 4, 3, rng=0))
    x = np.zeros((0, 1, 8, 8), np.float32)
    out = model(x)
    assert out.shape == (0, 3) and out.dtype == np.float32
    assert model.backward(np.zeros((0, 3), np.float32)).shape == x.shape
    assert minidl.layers.Flatten()(np.zeros((0, 3, 4, 4))).shape == (0, 48)  # torch: (0, 48)


@pytest.mark.parametrize("x_shape, w_shape", [((2, 0, 5, 5), (4, 0, 3, 3)),
                                              ((2, 3, 5, 5), (0, 3, 3, 3))],
                         ids=["in_channels=0", "out_channels=0"])
def test_zero_channels_raise_value_error(x_shape, w_shape):
    x, w = np.zeros(x_shape), np.zeros(w_shape)
    g = np.zeros((2, w_shape[0], 3, 3))
    for call in (lambda: conv2d(x, w), lambda: conv2d_input(x.shape, w, g),
                 lambda: conv2d_weight(x, w.shape, g), lambda: conv_mod.conv2d_backward(x, w, g)):
        with pytest.raises(ValueError, match="at least one input and one output channel"):
            call()
    with pytest.raises(ValueError, match="must be >= 1"):
        Conv2D(w_shape[1], w_shape[0], 3)


def test_arguments_checked_once_per_shape_yet_a_cached_call_lets_no_bad_argument_through():
    """conv_geometry is cached per (shapes, arguments) made of plain ints and strings, so a layer's fixed
    arguments are validated once; 1.0, True or a numpy int equal to a cached 1 still go through the checks."""
    from minidl.functional import conv_args

    x, w = np.ones((2, 2, 6, 6)), np.ones((4, 1, 3, 3))
    minidl.functional.conv2d(x, w, stride=1, groups=2)
    assert any(key[2] == 1 and key[5] == 2 for key in conv_args._CHECKED)
    for bad in (dict(stride=True, groups=2), dict(stride=1.0, groups=2), dict(stride=1, groups=2.0),
                dict(stride=1, groups=True)):
        with pytest.raises(TypeError):
            minidl.functional.conv2d(x, w, **bad)
    calls = []
    real = conv_args.check_conv_args
    conv_args.check_conv_args = lambda *a, **k: calls.append(a) or real(*a, **k)
    try:
        minidl.functional.conv2d(x, w, stride=1, groups=2)  # cached: not checked again
        minidl.functional.conv2d(x, w, stride=np.int64(1), groups=2)  # not plain: checked
    finally:
        conv_args.check_conv_args = real
    assert len(calls) == 1
