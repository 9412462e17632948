"""minidl.functional.conv_reference: the loop form of the convolution, and the engine checked against it.

The reference is the lesson (``docs/conv_backprop.md``) in code, and an independent oracle: it
imports nothing from minidl. These tests check that it stays independent, that it refuses bad
input with a clear error, and that the engine equals it.
"""

from __future__ import annotations

import ast
import functools
import inspect
from dataclasses import dataclass

import numpy as np
import pytest

import minidl.functional as F
import minidl.functional.conv as conv_mod
from minidl.functional import conv_reference as ref
from minidl.functional._engine import blas, conv_grads
from minidl.layers import Conv2D


def test_reference_imports_only_numpy_and_math():
    """An oracle that imported the engine would check the engine against itself."""
    tree = ast.parse(inspect.getsource(ref))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import: the reference must not import minidl"
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "math", "numpy"}, imported


def test_nested_lists_are_read_as_arrays():
    x, w = np.arange(16.0).reshape(1, 1, 4, 4), np.ones((1, 1, 2, 2))
    np.testing.assert_array_equal(ref.conv2d_forward(x.tolist(), w.tolist(), [0.5]), ref.conv2d_forward(x, w, [0.5]))
    g = np.ones((1, 1, 3, 3))
    for got, expected in zip(ref.conv2d_backward(x.tolist(), w.tolist(), g.tolist()), ref.conv2d_backward(x, w, g)):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("call, message", [
    (lambda: ref.conv2d_forward(np.ones((1, 2, 5, 5)), np.ones((1, 3, 3, 3))), "input channels"),
    (lambda: ref.conv2d_forward(np.ones((2, 5, 5)), np.ones((1, 2, 3, 3))), "(N, C, H, W)"),
    (lambda: ref.conv2d_forward(np.ones((1, 1, 2, 2)), np.ones((1, 1, 3, 3))), "larger than the padded input"),
    (lambda: ref.conv2d_forward(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), stride=0), "stride"),
    (lambda: ref.conv2d_forward(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), dilation=(1, 0)), "dilation"),
    (lambda: ref.conv2d_forward(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), padding=-1), ">= 0"),
    (lambda: ref.conv2d_forward(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), padding="full"), "'same', 'valid'"),
    (lambda: ref.conv2d_backward(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2))),
     "output's shape"),
    (lambda: ref.as_pair((1, 2, 3)), "pair"),
    (lambda: ref.conv2d_forward(np.ones((1, 1, 5, 5)), np.ones((2, 1, 3, 3)), np.ones(3)), "bias must have shape"),
], ids=["channels", "ndim", "kernel_too_large", "stride_0", "dilation_0", "negative_padding", "padding_string",
        "grad_output_shape", "triple", "bias_shape"])
def test_bad_input_raises_value_error_naming_the_function(call, message):
    """Before the module was public these were asserts (or, for stride 0, an endless loop)."""
    with pytest.raises(ValueError, match="conv_reference") as info:
        call()
    assert message in str(info.value)


# --------------------------------------------------------------------------
# The engine equals the reference, in float64
# --------------------------------------------------------------------------
ATOL = 1e-12  # float64: the engine sums in another order (GEMMs, pieces), nothing more


@dataclass(frozen=True)
class Case:
    name: str
    n: int
    c: int
    o: int
    hw: tuple
    k: object
    stride: object = 1
    padding: object = 0
    dilation: object = 1
    groups: int = 1
    bias: bool = True

    @property
    def kwargs(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)

    def __str__(self):
        return self.name


CASES = [
    # stride 1 (dX by the full correlation), odd sizes, rectangular inputs
    Case("k3_p1_7x5", 2, 3, 4, (7, 5), 3, padding=1),
    Case("k4_same_even_kernel_6x7", 2, 2, 3, (6, 7), 4, padding="same"),
    Case("k1_p2_beyond_the_kernel_reach", 2, 2, 3, (5, 5), 1, padding=2),
    Case("c1_o16_col2im_by_channel_ratio", 2, 1, 16, (6, 5), 3, padding="same"),
    # strides (dX by GEMM + col2im), including rows the floor drops
    Case("k3_s2_same_8x8", 2, 2, 3, (8, 8), 3, stride=2, padding="same"),
    Case("k3_s2_same_7x9_odd", 2, 3, 2, (7, 9), 3, stride=2, padding="same"),
    Case("k3_s3_valid_drops_2_rows", 3, 2, 2, (8, 8), 3, stride=3, padding="valid"),
    Case("pair_padding_1x0_s1x2_k2x3", 2, 2, 3, (6, 9), (2, 3), stride=(1, 2), padding=(1, 0)),
    Case("k5_1x1_output", 2, 2, 3, (5, 5), 5),
    # asymmetric explicit padding, dilations
    Case("explicit_0_2_1_0_s2", 2, 2, 3, (7, 6), 3, stride=2, padding=((0, 2), (1, 0))),
    Case("explicit_2_1_0_3_d2", 2, 1, 2, (5, 4), 2, dilation=2, padding=((2, 1), (0, 3))),
    Case("k2x3_s3x2_d1x2_9x8", 2, 2, 2, (9, 8), (2, 3), stride=(3, 2), dilation=(1, 2)),
    Case("k3_d2_s2_same_odd_total", 2, 2, 2, (8, 8), 3, stride=2, dilation=2, padding="same"),
    # groups
    Case("groups2_k3_p1", 2, 4, 6, (6, 5), 3, padding=1, groups=2),
    Case("groups2_s2_d2_same_9x7", 2, 4, 4, (9, 7), 3, stride=2, dilation=2, padding="same", groups=2),
    Case("groups3_no_bias_explicit", 2, 6, 3, (5, 6), (3, 2), padding=((1, 0), (0, 1)), groups=3, bias=False),
    # depthwise (groups = C): direct kernels up to depthwise.MAX_MULTIPLIER outputs per channel, GEMMs beyond
    Case("depthwise_m1_k3_p1", 2, 3, 3, (7, 6), 3, padding=1, groups=3),
    Case("depthwise_m2_s2_same", 2, 2, 4, (7, 7), 3, stride=2, padding="same", groups=2),
    Case("depthwise_m1_d2_explicit", 2, 2, 2, (8, 7), 3, dilation=2, padding=((2, 1), (0, 2)), groups=2),
    Case("depthwise_m9_grouped_gemm", 2, 2, 18, (6, 6), 3, padding=1, groups=2),
    Case("depthwise_m5_s2_grouped_gemm", 2, 2, 10, (7, 6), 3, stride=2, groups=2),
]


@functools.lru_cache(maxsize=None)
def _case_data(case):
    """x, W, b, G for ``case`` (seeded by its position), and the reference's Y, dX, dW, db."""
    rng = np.random.default_rng(CASES.index(case))
    kh, kw = ref.as_pair(case.k)
    x = rng.standard_normal((case.n, case.c) + case.hw)
    w = rng.standard_normal((case.o, case.c // case.groups, kh, kw))
    b = rng.standard_normal(case.o) if case.bias else None
    ho, wo = ref.output_size(case.hw, (kh, kw), case.stride, case.padding, case.dilation)
    g = rng.standard_normal((case.n, case.o, ho, wo))
    y = ref.conv2d_forward(x, w, b, **case.kwargs)
    dx, dw, db = ref.conv2d_backward(x, w, g, **case.kwargs)
    return (x, w, b, g), (y, dx, dw, db if case.bias else None)


def _close(name, got, expected):
    assert got.shape == expected.shape, f"{name}: shape {got.shape}, expected {expected.shape}"
    err = float(np.max(np.abs(got - expected)))
    assert err <= ATOL, f"{name}: max |engine - reference| = {err:.3g} > {ATOL:g}"


def _check_functional(case):
    (x, w, b, g), (y, dx, dw, db) = _case_data(case)
    _close("forward", F.conv2d(x, w, b, **case.kwargs), y)
    _close("dX", F.conv2d_input(x.shape, w, g, **case.kwargs), dx)
    _close("dW", F.conv2d_weight(x, w.shape, g, **case.kwargs), dw)
    if db is not None:
        _close("db", F.conv2d_bias(g), db)
    both = conv_mod.conv2d_backward(x, w, g, **case.kwargs, bias=case.bias)
    for name, got, expected in zip(("dX", "dW", "db"), both, (dx, dw, db)):
        if expected is not None:
            _close(f"{name} of conv2d_backward", got, expected)


def _check_layer(case):
    (x, w, b, g), (y, dx, dw, db) = _case_data(case)
    layer = Conv2D(case.c, case.o, case.k, **case.kwargs, bias=case.bias, dtype=np.float64)
    layer.weight.data[...] = w
    if b is not None:
        layer.bias.data[...] = b
    _close("Conv2D forward", layer(x), y)
    _close("Conv2D dX", layer.backward(g), dx)
    _close("Conv2D dW", layer.weight.grad, dw)
    if db is not None:
        _close("Conv2D db", layer.bias.grad, db)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_functional_kernels_equal_the_reference(case):
    _check_functional(case)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_functional_kernels_equal_the_reference_in_pieces(case, monkeypatch):
    """With a column budget of a few hundred bytes the engine cuts the work into rows and runs of pixels."""
    monkeypatch.setattr(conv_mod, "MAX_COLUMN_BYTES", 256)
    _check_functional(case)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_conv2d_layer_equals_the_reference(case):
    _check_layer(case)


def _drop_last_sample_from_dw(original):
    def weight_grad(rows, x_nhwc, weight_size, geo, *args, **kwargs):
        rows = rows.copy()
        rows[-geo.out[0] * geo.out[1]:] = 0  # the n = N - 1 terms of the sum over the batch
        return original(rows, x_nhwc, weight_size, geo, *args, **kwargs)
    return weight_grad


def _drop_last_tap_from_dx(original):
    def input_grad(rows, weight, *args, **kwargs):
        weight = weight.copy()
        weight[:, :, -1, -1] = 0  # the (p, q) = (kh - 1, kw - 1) terms
        return original(rows, weight, *args, **kwargs)
    return input_grad


BREAKAGES = {  # (module, attribute, wrapper of the original, the gradient that must fail)
    "dW_without_the_last_sample": (conv_grads, "weight_grad", _drop_last_sample_from_dw, "dW"),
    "dX_without_the_last_kernel_tap": (conv_grads, "input_grad", _drop_last_tap_from_dx, "dX"),
    "db_without_the_last_pixel": (blas, "column_sums", lambda sums: lambda rows: sums(rows[:-1]), "db"),
    "forward_without_the_bias": (blas, "add_row_vector", lambda add: lambda out, bias: None, "forward"),
}


@pytest.mark.parametrize("broken", BREAKAGES)
@pytest.mark.parametrize("case", [CASES[0], CASES[4], CASES[16]], ids=str)
@pytest.mark.parametrize("check", [_check_functional, _check_layer], ids=["functional", "layer"])
def test_an_engine_that_drops_one_term_fails(case, broken, check, monkeypatch):
    """The negative control: a gradient missing one term of its sum is caught, and named."""
    module, attribute, wrap, gradient = BREAKAGES[broken]
    monkeypatch.setattr(module, attribute, wrap(getattr(module, attribute)))
    with pytest.raises(AssertionError, match=rf"^(Conv2D )?{gradient}\b"):
        check(case)
