"""Memory is part of correctness: peaks measured with tracemalloc against tensor sizes.

numpy reports its array allocations to :mod:`tracemalloc`, so the peak
measured around a call is what that call allocated on top of what existed
before (the input, the weights). Each bound below is a sum of the sizes of the
tensors the call must produce or hold, plus the documented im2col budget
``minidl.functional.MAX_COLUMN_BYTES`` (lowered here, through the public module
constant, so that the tests stay small and fast), plus a small slack for
Python objects.

* conv2d and its three backward paths (dL/dW, the stride-1 full-correlation
  dL/dX, the col2im dL/dX) keep their unfolded columns under the budget even
  for ONE sample whose columns are many times the budget (split over output
  rows, and over columns when a single row is too large);
* max pooling does not copy the input once per kernel offset, and keeps its
  argmax in the smallest unsigned integer type that fits the window;
* in eval mode (``model.eval()``, ``Trainer.predict``/``evaluate``) layers keep
  no backward caches, and an eval-mode forward drops the caches of an earlier
  training-mode forward.
"""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

import minidl as mdl
import minidl.functional.conv as conv_mod
from minidl import functional as F
from minidl import layers as L

KIB = 2**10
SLACK = 64 * KIB  # Python objects, small temporaries (shapes, geometry, bias broadcasts)


def measure(fn):
    """``(result, peak_bytes)``: the tracemalloc peak of ``fn()`` above what existed before."""
    gc.collect()
    started = tracemalloc.is_tracing()
    if not started:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        if not started:
            tracemalloc.stop()
    return result, peak


def held_by(fn):
    """Bytes still allocated after ``fn()`` returned and its result was dropped."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fn()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()


# --------------------------------------------------------------------------
# im2col budget for one large sample
# --------------------------------------------------------------------------
CAP = 128 * KIB


@pytest.fixture
def small_cap(monkeypatch):
    monkeypatch.setattr(conv_mod, "MAX_COLUMN_BYTES", CAP)
    return CAP


def _big_sample(c=16, hw=64, o=8, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, c, hw, hw)).astype(dtype)
    w = rng.standard_normal((o, c, 3, 3)).astype(dtype)
    return x, w


def test_conv2d_forward_one_sample_stays_under_the_column_budget(small_cap):
    x, w = _big_sample()  # input 256 KiB; its columns (9 x input = 2.25 MiB) are 18x the budget
    b = np.ones(w.shape[0], x.dtype)
    y, peak = measure(lambda: F.conv2d(x, w, b, padding=1))
    columns = 64 * 64 * 9 * 16 * x.itemsize
    assert columns > 16 * small_cap
    # the output and one piece of columns (with the few padded input rows it reads)
    bound = y.nbytes + small_cap + SLACK
    assert peak < bound, (peak, bound)


@pytest.mark.parametrize("stride, path", [(1, "full correlation"), (2, "col2im")])
def test_conv2d_backward_one_sample_stays_under_the_column_budget(small_cap, stride, path):
    x, w = _big_sample()
    g = np.random.default_rng(1).standard_normal(
        F.conv2d(x, w, stride=stride, padding=1).shape).astype(x.dtype)
    _, peak = measure(lambda: mdl.functional.conv.conv2d_backward(x, w, g, stride=stride, padding=1))
    # dX, the upstream gradient re-laid out, one piece of columns (with its
    # padded band); col2im also scatters into a zero-padded dX before cropping
    padded = 66 * 66 * 16 * x.itemsize if path == "col2im" else 0
    bound = padded + x.nbytes + g.nbytes + small_cap + SLACK
    assert peak < bound, (path, peak, bound)


@pytest.mark.parametrize("cap", [4 * KIB, 700, 1], ids=["rows", "columns_of_a_row", "one_pixel"])
@pytest.mark.parametrize("kw", [dict(stride=1, padding=1), dict(stride=2, padding=(1, 2)),
                                dict(stride=(1, 2), padding="same", dilation=2),
                                dict(stride=1, padding=((2, 0), (1, 2)), dilation=(1, 2))])
def test_split_over_rows_and_columns_matches_unsplit(monkeypatch, cap, kw):
    """A single sample split over output rows (or columns of a row) gives the same numbers."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 9, 11))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    y = F.conv2d(x, w, b, **kw)
    g = rng.standard_normal(y.shape)
    whole = (y, *conv_mod.conv2d_backward(x, w, g, **kw))
    monkeypatch.setattr(conv_mod, "MAX_COLUMN_BYTES", cap)
    split = (F.conv2d(x, w, b, **kw), *conv_mod.conv2d_backward(x, w, g, **kw),
             F.conv2d_input(x.shape, w, g, **kw), F.conv2d_weight(x, w.shape, g, **kw))
    for name, a, e in zip(["y", "dx", "dw", "db", "dx (conv2d_input)", "dw (conv2d_weight)"],
                          split, whole + whole[1:3]):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12, err_msg=name)


def test_conv2d_layer_keeps_no_columns_beyond_the_cache_budget(small_cap):
    x, _ = _big_sample()
    layer = L.Conv2D(16, 8, 3, padding=1, rng=0)
    held = held_by(lambda: layer(x))
    assert held < 64 * 64 * 8 * 4 + SLACK  # the output is dropped; only small bookkeeping stays


# --------------------------------------------------------------------------
# Max pooling
# --------------------------------------------------------------------------
def test_max_pool_does_not_copy_the_input_per_kernel_offset():
    x = np.random.default_rng(0).standard_normal((2, 8, 128, 128)).astype(np.float32)  # 1 MiB
    # a copy of the input per kernel offset would be 25 x input
    (out, idx), peak = measure(lambda: F.max_pool2d(x, 5, 1, 2, return_indices=True))
    assert out.shape == x.shape and idx.dtype == np.uint8
    # output (1 x input), uint8 argmax (1/4), one uint8 buffer (1/4), numpy's small loop buffers
    assert peak < 1.75 * x.nbytes, peak / x.nbytes
    _, peak = measure(lambda: F.max_pool2d(x, 5, 1, 2))
    assert peak < 1.25 * x.nbytes, peak / x.nbytes  # the output only
    # layer forward + backward in training mode: the argmax kept, the upstream
    # gradient, dL/dx with its padding, one product buffer and one mask for backward
    layer = L.MaxPool2D(5, 1, 2)
    _, peak = measure(lambda: layer.backward(np.ones_like(layer(x))))
    assert peak < 4 * x.nbytes, peak / x.nbytes


@pytest.mark.parametrize("kernel, dtype", [(2, np.uint8), (16, np.uint8), ((16, 17), np.uint16),
                                           ((1, 256), np.uint8), ((1, 257), np.uint16)])
def test_max_pool_argmax_in_the_smallest_unsigned_type(kernel, dtype):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    x = np.random.default_rng(0).standard_normal((1, 2, kh, kw)).astype(np.float32)
    out, idx = F.max_pool2d(x, kernel, return_indices=True)
    assert idx.dtype == dtype
    flat = x.reshape(1, 2, -1)
    np.testing.assert_array_equal(idx.reshape(1, 2), flat.argmax(axis=-1))
    dx = F.max_pool2d_backward(x.shape, np.ones_like(out), idx, kernel)
    assert dx.dtype == np.float32
    np.testing.assert_array_equal(dx.reshape(1, 2, -1).argmax(axis=-1), flat.argmax(axis=-1))
    assert dx.sum() == 2


# --------------------------------------------------------------------------
# Eval mode keeps no backward caches
# --------------------------------------------------------------------------
def _deep_convnet(depth=20, c=8):
    rng = np.random.default_rng(0)
    stack = []
    for _ in range(depth):
        stack += [L.Conv2D(c, c, 3, padding=1, rng=rng), L.ReLU()]
    return mdl.Sequential(*stack, L.MaxPool2D(2), L.Flatten(), L.Dense(c * 8 * 8, 10, rng=rng))


def _trainer(model):
    return mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(),
                       mdl.optim.SGD(model.parameters(), lr=0.01))


def test_predict_keeps_no_caches_in_a_20_conv_model():
    model = _deep_convnet()
    X = np.random.default_rng(1).standard_normal((64, 8, 16, 16)).astype(np.float32)  # 512 KiB
    trainer = _trainer(model)
    trainer.predict(X[:2])  # warm-up: caches of first calls (geometry) are not the point
    held = held_by(lambda: trainer.predict(X, batch_size=32))
    # before: every conv kept its input and its columns (20 x 2.5 MiB)
    assert held < 64 * KIB, held
    held = held_by(lambda: trainer.evaluate(X, np.zeros(64, np.int64), batch_size=32))
    assert held < 64 * KIB, held


def test_eval_forward_drops_the_caches_of_an_earlier_training_forward():
    model = _deep_convnet(depth=4)
    X = np.random.default_rng(1).standard_normal((32, 8, 16, 16)).astype(np.float32)
    model(X[:1])  # warm-up
    gc.collect()
    tracemalloc.start()
    try:
        model(X)  # training mode: caches held, as backward needs them
        gc.collect()
        after_train = tracemalloc.get_traced_memory()[0]
        model.eval()
        model(X[:1])  # predict-like call: must release what the training step kept
        gc.collect()
        after_eval = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after_train > 4 * X.nbytes  # each conv kept its input (and columns)
    assert after_eval < 64 * KIB, (after_train, after_eval)


@pytest.mark.parametrize("make, x", [
    (lambda: L.Conv2D(2, 3, 3, rng=0), np.ones((2, 2, 5, 5), np.float32)),
    (lambda: L.ReLU(), np.ones((2, 3), np.float32)),
    (lambda: L.MaxPool2D(2), np.ones((2, 2, 4, 4), np.float32)),
    (lambda: L.Dense(3, 2, rng=0), np.ones((2, 3), np.float32)),
    (lambda: L.Flatten(), np.ones((2, 3, 2), np.float32)),
], ids=["Conv2D", "ReLU", "MaxPool2D", "Dense", "Flatten"])
def test_backward_after_an_eval_forward_names_the_cause(make, x):
    layer = make()
    y = layer(x)
    layer.backward(np.ones_like(y))  # training mode: fine
    layer.eval()
    y = layer(x)
    with pytest.raises(RuntimeError, match=r"eval mode.*train\(\)"):
        layer.backward(np.ones_like(y))
    with pytest.raises(RuntimeError, match="eval mode"):
        layer.backward_params(np.ones_like(y))
    layer.train()
    layer(x)
    layer.backward(np.ones_like(y))  # training again: caches are kept again
    fresh = make()
    with pytest.raises(RuntimeError, match="before forward"):
        fresh.backward(np.ones_like(y))


# --------------------------------------------------------------------------
# grouped convolutions: no copy of the input beyond the columns
# --------------------------------------------------------------------------
@pytest.mark.parametrize("k, stride, padding, mode", [(1, 1, 0, "zeros"), (1, 2, 0, "zeros"), (3, 1, 0, "zeros"),
                                                      (3, 1, 1, "reflect")])
def test_grouped_conv_without_zero_padding_copies_no_band(k, stride, padding, mode):
    """With nothing to zero-pad, the columns are copied straight from the (channels-last)
    input, as for one group: the group-major band must not add a copy of the whole input
    (it did: 1x1 stride 2, peak 3x the old one)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 16, 16, 32), dtype=np.float32).transpose(0, 3, 1, 2)  # channels-last memory
    w = rng.standard_normal((32, 8, k, k), dtype=np.float32)
    kw = dict(stride=stride, padding=padding, groups=4, padding_mode=mode)
    y, peak = measure(lambda: F.conv2d(x, w, **kw))
    ho, wo = y.shape[2:]
    columns = x.shape[0] * ho * wo * k * k * x.shape[1] * x.itemsize
    padded = 0 if mode == "zeros" else x.nbytes * (18 * 18) // (16 * 16)  # reflect: the padded copy
    assert columns + y.nbytes <= conv_mod.MAX_COLUMN_BYTES  # one piece
    bound = padded + columns + y.nbytes + SLACK
    assert peak < bound, ("forward", peak, bound)
    g = rng.standard_normal(y.shape, dtype=np.float32)
    _, peak = measure(lambda: F.conv2d_weight(x, w.shape, g, **kw))
    bound = padded + columns + g.nbytes + SLACK  # G re-laid out as rows, the columns
    assert peak < bound, ("dW", peak, bound)


# --------------------------------------------------------------------------
# LayerNorm, GroupNorm, InstanceNorm2D: the output, then dL/dx in x_hat's memory
# --------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: L.LayerNorm((16, 16)), lambda: L.LayerNorm(16, elementwise_affine=False),
                                  lambda: L.GroupNorm(4, 16), lambda: L.InstanceNorm2D(16, affine=True)],
                         ids=["layernorm", "layernorm_rows", "groupnorm", "instancenorm"])
def test_normalization_peaks_against_the_input_size(make):
    """Forward: the output (x_hat, scaled in place) and per-row statistics. Backward: x_hat recomputed
    in one array and dL/dx_hat becoming dL/dx in place, about 2 inputs (3 with a temporary for
    x_hat * mean(dx_hat * x_hat), before it was done in place)."""
    layer = make()
    x = np.random.default_rng(0).standard_normal((8, 16, 16, 16)).astype(np.float32)
    g = np.ones_like(x)
    y, forward = measure(lambda: layer(x))
    del y
    _, backward = measure(lambda: layer.backward(g))
    assert forward <= 1.5 * x.nbytes + SLACK, forward / x.nbytes
    assert backward <= 2.5 * x.nbytes + SLACK, backward / x.nbytes
