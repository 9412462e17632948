"""Fuzz the layer constructors: any argument values give a layer or a ValueError/TypeError.

For Conv2D, MaxPool2D, Dense, Flatten, ReLU, Add, Concat and SoftmaxCrossEntropy,
hypothesis draws each constructor argument either from the valid range or from
arbitrary values (ints including 0, negative and huge; floats including nan and
inf; bools; numpy integers and floats; strings; None; tuples and lists of any
length, nested). The contract:

* construction succeeds or raises ValueError / TypeError (never AssertionError,
  ZeroDivisionError, OverflowError, MemoryError, IndexError, KeyError, ...);
* a layer that was built runs forward on a small input of a valid shape, or
  raises ValueError / TypeError (e.g. a kernel larger than the input);
* after a successful forward, backward with a gradient of the output's shape
  raises nothing.

Every ValueError/TypeError must be minidl's own, naming the layer or kernel
(``Conv2D``/``conv2d``, ...), not a numpy message leaking through.

Nothing large is allocated: a configuration whose parameters would exceed
``MAX_PARAMS`` is not built (its huge sizes are still fuzzed whenever another
argument is invalid, since every check runs before any allocation), and forward
runs only when the padded input and the unfolded columns stay small
(:func:`_small_forward`); huge strides and dilations (which shrink the output)
do go through forward.

``MINIDL_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz_layers.py`` runs a longer,
randomised fuzz; the default is 200 derandomized examples per layer.
"""

from __future__ import annotations

import os
import traceback

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from minidl import layers as L
from minidl.losses import SoftmaxCrossEntropy
from minidl.validation import is_int as _is_int

EXAMPLES = int(os.environ.get("MINIDL_FUZZ_EXAMPLES", "0")) or 200
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES == 200,
                database=None)
MAX_PARAMS = 10**6  # a configuration with more parameters is not built
MAX_PAD = 16  # forward only when every padding is at most this ('same': the kernel extent - 1 <= 2x)
MAX_WINDOW = 1024  # ... and kernel height * width * in_channels is at most this

# ----------------------------------------------------------------- strategies
HUGE = [2**31, 2**31 - 1, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30, -(2**63), -(10**30)]
ints = st.one_of(st.integers(-3, 8), st.sampled_from(HUGE))
numpy_ints = st.one_of(
    st.integers(-3, 8).map(np.int64),
    st.sampled_from([np.int8(3), np.uint8(2), np.int16(-1), np.int32(0), np.uint64(2**63),
                     np.int64(2**62), np.intp(1)]),
)
floats = st.one_of(
    st.sampled_from([0.0, 1.0, 2.0, 0.5, 1.7, -1.0, 1e30, float("nan"), float("inf"), -float("inf")]),
    st.floats(),
    st.sampled_from([np.float32(2.0), np.float64(1.5), np.float16(3.0), np.float64("nan")]),
)
strings = st.sampled_from(["same", "valid", "SAME", "Valid", "", "3", "x", "float32", "same "])
misc = st.sampled_from([None, True, False, np.bool_(True), np.array(2), np.array([2, 2]),
                        np.array([]), np.float32, np.int32, object(), b"3", 1j, {"a": 1},
                        np.complex64, "i4", "f", (np.float32, 2), [("a", np.float32)], np.bool_])
atoms = st.one_of(ints, numpy_ints, floats, strings, misc)
anything = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.tuples(), st.tuples(inner), st.tuples(inner, inner), st.tuples(inner, inner, inner),
        st.lists(inner, max_size=3),
    ),
    max_leaves=6,
)


@st.composite
def arguments(draw, **valid):
    """One value per argument name: each from its valid strategy, except 0, 1 or 2 of them
    (chosen at random) drawn from ``anything``, so every check is reached and passed."""
    names = list(valid)
    k = min(draw(st.sampled_from([0, 0, 0, 1, 1, 2])), len(names))  # half fully valid
    bad = set(draw(st.lists(st.sampled_from(names), min_size=k, max_size=k, unique=True)))
    return {name: draw(anything if name in bad else strategy) for name, strategy in valid.items()}


def sometimes_huge(strategy):
    """Mostly ``strategy``, 1 time in 16 a huge positive int (valid, but must not allocate)."""
    huge = st.sampled_from([h for h in HUGE if h > 0])
    return st.integers(0, 15).flatmap(lambda i: huge if i == 0 else strategy)


def no_args_or(strategy, max_size=2):
    """About half the time no extra positional argument, else 1..max_size of them."""
    return st.booleans().flatmap(
        lambda none: st.just([]) if none else st.lists(strategy, min_size=1, max_size=max_size))


small_or_huge = sometimes_huge(st.integers(1, 4))
pair_of = lambda s: st.one_of(s, st.tuples(s, s), st.lists(s, min_size=2, max_size=2))  # noqa: E731
paddings = st.one_of(sometimes_huge(st.integers(0, 2)), st.tuples(st.integers(0, 2), st.integers(0, 2)),
                     st.sampled_from(["same", "valid", "SAME"]),
                     st.tuples(st.tuples(st.integers(0, 2), st.integers(0, 2)),
                               st.tuples(st.integers(0, 2), st.integers(0, 2))))
dtypes = st.sampled_from([np.float32, np.float64, "float32", np.dtype("float64"), np.float16,
                          np.longdouble, "f8"])
rngs = st.one_of(st.none(), st.integers(0, 2**70), st.just(np.random.default_rng(0)), st.integers(0, 5).map(np.int64))
hws = st.tuples(st.integers(1, 8), st.integers(1, 8))


# -------------------------------------------------------------------- helpers
def _size(value):
    """The number of entries a size argument stands for (int or pair), else None."""
    if _is_int(value):
        return int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        return int(value[0]) * int(value[1])
    return None


def _too_many_params(*sizes) -> bool:
    """True when every size is an int (or pair) and the product exceeds MAX_PARAMS."""
    counts = [_size(s) for s in sizes]
    if any(c is None for c in counts):
        return False  # some argument is invalid: the constructor must refuse before allocating
    prod = 1
    for c in counts:
        prod *= abs(c)
    return prod > MAX_PARAMS


def _ints_in(value):
    if _is_int(value):
        yield int(value)
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _ints_in(v)


def _small_forward(layer, channels=None) -> bool:
    """True when forward on an 8x8 input allocates little (padding and im2col columns)."""
    kh, kw = layer.kernel_size
    dh, dw = getattr(layer, "dilation", (1, 1))
    if layer.padding == "same":
        pads = [(kh - 1) * dh, (kw - 1) * dw]  # the total 'same' padding is at most this
        limit = 2 * MAX_PAD
    else:
        pads, limit = list(_ints_in(layer.padding)), MAX_PAD
    # a conv kernel wider than the input is refused before unfolding; so is a pooling window
    return all(p <= limit for p in pads) and (channels is None or kh * kw * channels <= MAX_WINDOW)


# each layer's errors name it (its repr or class) or the kernel it calls
NAMES = {"Conv2D": "conv2d", "MaxPool2D": "max_pool2d", "Dense": "linear", "Flatten": "flatten",
         "ReLU": "relu", "Add": "Add", "Concat": "Concat", "SoftmaxCrossEntropy": "cross_entropy"}


# Found by this fuzz in files owned elsewhere, reported, tolerated here until fixed:
# (layer, the minidl function a numpy error escapes from) -> a failing example.
REPORTED: dict = {}  # (layer, function) -> example, for refusals known to leak numpy's message;
# the helper's six entries (huge strides in the im2col/pool views, rng=-1, odd dtype tuples)
# were fixed in minidl and removed


def _escaped_from(exc) -> str:
    """The innermost minidl function in the traceback of ``exc``."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f"{os.sep}minidl{os.sep}" in f.filename]
    return frames[-1].name if frames else ""


def check_message(cls, exc):
    """A refusal must be minidl's: its message names the layer or its kernel."""
    names = (cls.__name__, NAMES[cls.__name__])
    message = str(exc)
    if not any(name in message for name in names) and (cls.__name__, _escaped_from(exc)) in REPORTED:
        event(f"REPORTED: {cls.__name__}: {message}")
        return
    if isinstance(exc, TypeError) and ("positional argument" in message or "keyword argument" in message):
        return  # Python's own wrong-call TypeError, naming __init__ / the layer's method
    assert any(name in message for name in names), f"{type(exc).__name__} not naming {names}: {message}"


def build(cls, *args, **kwargs):
    """Construct, or return None on ValueError/TypeError (any other exception fails the test)."""
    try:
        layer = cls(*args, **kwargs)
    except (ValueError, TypeError) as exc:
        event(f"refused: {type(exc).__name__}")
        check_message(cls, exc)
        return None
    event("built")
    return layer


def forward_backward(layer, *inputs):
    """Forward may raise ValueError/TypeError; when it works, backward must work too."""
    try:
        out = layer(*inputs)
    except (ValueError, TypeError) as exc:
        event(f"forward refused: {type(exc).__name__}")
        check_message(type(layer), exc)
        return
    event("forward and backward ran")
    if isinstance(out, float):  # a loss
        grads = layer.backward()
        assert grads.shape == inputs[0].shape
        return
    grads = layer.backward(np.ones_like(out))
    grads = grads if isinstance(grads, tuple) else (grads,)
    assert [g.shape for g in grads] == [x.shape for x in inputs]


def image(rng, n, c, h, w, dtype=np.float32):
    return rng.standard_normal((n, c, h, w)).astype(dtype)


# ---------------------------------------------------------------------- fuzz
@FUZZ
@given(a=arguments(in_channels=small_or_huge, out_channels=small_or_huge, kernel_size=pair_of(small_or_huge),
                   stride=pair_of(sometimes_huge(st.integers(1, 3))), padding=paddings,
                   dilation=pair_of(sometimes_huge(st.integers(1, 3))), bias=st.booleans(),
                   dtype=dtypes, rng=rngs),
       hw=hws)
def test_fuzz_conv2d(a, hw):
    if _too_many_params(a["in_channels"], a["out_channels"], a["kernel_size"]):
        event("not built: too many parameters")
        return
    layer = build(L.Conv2D, a.pop("in_channels"), a.pop("out_channels"), a.pop("kernel_size"), **a)
    if layer is None or not _small_forward(layer, layer.in_channels):
        event("built, forward not run: large geometry") if layer is not None else None
        return
    x = image(np.random.default_rng(0), 2, layer.in_channels, *hw, layer.weight.data.dtype)
    forward_backward(layer, x)


@FUZZ
@given(a=arguments(kernel_size=pair_of(small_or_huge), stride=st.one_of(st.none(), pair_of(small_or_huge)),
                   padding=paddings),
       hw=hws)
def test_fuzz_max_pool2d(a, hw):
    layer = build(L.MaxPool2D, a.pop("kernel_size"), **a)
    if layer is None or not _small_forward(layer):
        event("built, forward not run: large geometry") if layer is not None else None
        return
    forward_backward(layer, image(np.random.default_rng(1), 2, 3, *hw))


@FUZZ
@given(a=arguments(in_features=small_or_huge, out_features=small_or_huge, bias=st.booleans(), dtype=dtypes, rng=rngs))
def test_fuzz_dense(a):
    if _too_many_params(a["in_features"], a["out_features"]):
        event("not built: too many parameters")
        return
    layer = build(L.Dense, a.pop("in_features"), a.pop("out_features"), **a)
    if layer is None:
        return
    x = np.random.default_rng(2).standard_normal((3, layer.in_features)).astype(layer.weight.data.dtype)
    forward_backward(layer, x)


@FUZZ
@given(a=arguments(start_dim=sometimes_huge(st.integers(1, 3))), ndim=st.integers(1, 4))
def test_fuzz_flatten(a, ndim):
    layer = build(L.Flatten, a["start_dim"])
    if layer is not None:
        forward_backward(layer, np.ones((2, 3, 4, 5)[:ndim], np.float32))


@FUZZ
@given(args=no_args_or(anything), shape=st.sampled_from([(3,), (2, 3), (2, 1, 3, 3)]))
def test_fuzz_relu(args, shape):
    layer = build(L.ReLU, *args)
    if layer is not None:
        forward_backward(layer, np.linspace(-1, 1, int(np.prod(shape)), dtype=np.float32).reshape(shape))


@FUZZ
@given(args=no_args_or(anything), n_inputs=st.integers(1, 3))
def test_fuzz_add(args, n_inputs):
    layer = build(L.Add, *args)
    if layer is not None:
        forward_backward(layer, *[np.full((2, 3), i, np.float32) for i in range(n_inputs)])


@FUZZ
@given(a=arguments(axis=st.one_of(st.integers(-4, 3), st.integers(-4, 3).map(np.int64),
                                  st.sampled_from(HUGE))),
       extra=no_args_or(anything, 1), n_inputs=st.integers(1, 3))
def test_fuzz_concat(a, extra, n_inputs):
    layer = build(L.Concat, a["axis"], *extra)
    if layer is not None:
        forward_backward(layer, *[np.full((2, 3, 4), i, np.float32) for i in range(n_inputs)])


@FUZZ
@given(a=arguments(label_smoothing=st.one_of(st.floats(0.0, 1.0), st.sampled_from([0, 1, np.float32(0.1)]))),
       extra=no_args_or(anything, 1), dtype=st.sampled_from([np.float32, np.float64]))
def test_fuzz_softmax_cross_entropy(a, extra, dtype):
    # label_smoothing is keyword-only since issue 8 (weight comes first, as torch's); extra fuzzes the weight
    layer = build(SoftmaxCrossEntropy, *extra, label_smoothing=a["label_smoothing"])
    if layer is not None:
        logits = np.linspace(-2, 2, 12, dtype=dtype).reshape(3, 4)
        forward_backward(layer, logits, np.array([0, 3, 1]))


def test_fuzz_helpers():
    """The guards that keep the fuzz small do what they say."""
    assert _too_many_params(10**4, 10**4, 3) and not _too_many_params(4, 4, (3, 3))
    assert not _too_many_params(10**12, "x", 3)  # invalid: must be refused before allocation
    assert _size(True) is None and _size((2, 3)) == 6 and _size(np.int64(5)) == 5
    assert _small_forward(L.Conv2D(2, 1, 3, stride=2**63, dilation=2**40, padding=((1, 0), (16, 2))), 2)
    assert not _small_forward(L.Conv2D(1, 1, 3, dilation=17, padding="same"))
    assert not _small_forward(L.Conv2D(1, 1, 3, padding=17))
    assert not _small_forward(L.Conv2D(1, 1, (30, 35)), 1) and _small_forward(L.Conv2D(1, 1, (30, 34)), 1)
    assert _small_forward(L.MaxPool2D(2**40, stride=2**63)) and not _small_forward(L.MaxPool2D(40, padding=20))
    with pytest.raises(ZeroDivisionError):  # build() lets anything but ValueError/TypeError through
        build(lambda: 1 // 0)
