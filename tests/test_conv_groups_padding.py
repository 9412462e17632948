"""Grouped convolutions and padding modes: forward, dL/dX, dL/dW, dL/db against
PyTorch in float64 (its ``F.pad`` in the same mode, then ``F.conv2d`` with
``groups``), and the three backward kernels against ``conv2d_backward``."""

from __future__ import annotations

import numpy as np
import pytest

from minidl import functional as F
from minidl.functional import conv as conv_mod
from minidl.functional._engine import padding as padding_mod

torch = pytest.importorskip("torch")

TIGHT = 1e-10

# (name, n, c, o, hw, k, stride, padding, dilation, groups, padding_mode)
CASES = [
    ("g2_same", 2, 4, 6, (7, 6), 3, 1, "same", 1, 2, "zeros"),
    ("g3_s2_explicit", 2, 6, 3, (8, 7), (3, 2), 2, ((1, 2), (0, 1)), 1, 3, "zeros"),
    ("depthwise", 2, 5, 5, (6, 6), 3, 1, 1, 1, 5, "zeros"),
    ("depthwise_x2_d2", 2, 3, 6, (9, 8), 3, 1, "same", 2, 3, "zeros"),
    ("g2_c2i_ratio", 2, 2, 32, (5, 6), 3, 1, 1, 1, 2, "zeros"),  # o >= 16 c: col2im at stride 1
    ("reflect_same", 2, 3, 4, (6, 7), 3, 1, "same", 1, 1, "reflect"),
    ("reflect_k5_s2", 2, 2, 3, (9, 8), 5, 2, 2, 1, 1, "reflect"),
    ("replicate_asym", 2, 2, 3, (5, 6), (2, 3), 1, ((2, 0), (1, 3)), 1, 1, "replicate"),
    ("replicate_pad_gt_input", 1, 1, 2, (2, 3), 3, 1, 3, 1, 1, "replicate"),
    ("circular_same_d2", 2, 2, 2, (7, 7), 3, 1, "same", 2, 1, "circular"),
    ("circular_pad_eq_input", 1, 2, 2, (3, 3), 3, (2, 1), 3, 1, 1, "circular"),
    ("reflect_groups_s2", 2, 4, 4, (8, 8), 3, 2, "same", 1, 2, "reflect"),
    ("circular_depthwise", 2, 3, 3, (6, 5), 3, 1, 1, 1, 3, "circular"),
    ("replicate_c2i_ratio", 1, 1, 16, (5, 5), 3, 1, 1, 1, 1, "replicate"),
]
IDS = [c[0] for c in CASES]


def _data(case, seed=0):
    _, n, c, o, hw, k, stride, padding, dilation, groups, mode = case
    kh, kw = (k, k) if isinstance(k, int) else k
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c) + hw)
    w = rng.standard_normal((o, c // groups, kh, kw))
    b = rng.standard_normal(o)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=mode)
    y = F.conv2d(x, w, b, **kwargs)
    g = rng.standard_normal(y.shape)
    return x, w, b, g, kwargs


def _torch(x, w, b, g, kwargs):
    tf = torch.nn.functional
    (top, bottom), (left, right) = F.resolve_padding(
        kwargs["padding"], x.shape[2:], w.shape[2:], kwargs["stride"], kwargs["dilation"])
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    mode = kwargs["padding_mode"]
    pads = (left, right, top, bottom)
    xp = tf.pad(xt, pads) if mode == "zeros" else tf.pad(xt, pads, mode=mode)
    y = tf.conv2d(xp, wt, bt, stride=kwargs["stride"], dilation=kwargs["dilation"],
                  groups=kwargs["groups"])
    y.backward(torch.tensor(g))
    return y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


def _errors(got, expected):
    out = {}
    for name, a, e in zip(("forward", "dX", "dW", "db"), got, expected):
        assert a.shape == e.shape, (name, a.shape, e.shape)
        out[name] = float(np.max(np.abs(a - e))) if a.size else 0.0
    return out


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_torch(case):
    x, w, b, g, kwargs = _data(case)
    y = F.conv2d(x, w, b, **kwargs)
    dx, dw, db = conv_mod.conv2d_backward(x, w, g, **kwargs)
    errors = _errors((y, dx, dw, db), _torch(x, w, b, g, kwargs))
    assert max(errors.values()) < TIGHT, errors


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_separate_kernels_equal_conv2d_backward(case):
    x, w, b, g, kwargs = _data(case, seed=1)
    dx, dw, db = conv_mod.conv2d_backward(x, w, g, **kwargs)
    np.testing.assert_allclose(F.conv2d_input(x.shape, w, g, **kwargs), dx, rtol=0, atol=1e-13)
    np.testing.assert_allclose(F.conv2d_weight(x, w.shape, g, **kwargs), dw, rtol=0, atol=1e-13)
    np.testing.assert_allclose(F.conv2d_bias(g), db, rtol=0, atol=1e-13)


@pytest.mark.parametrize("case", [c for c in CASES if c[10] == "zeros"][:3], ids=IDS[:3])
def test_pieces_and_columns_give_the_same_result(case, monkeypatch):
    """Grouped columns returned by the forward pass are reused by backward; split
    into pieces (a tiny MAX_COLUMN_BYTES) the results are unchanged."""
    x, w, b, g, kwargs = _data(case, seed=2)
    y, cols = F.conv2d(x, w, b, **kwargs, return_columns=True)
    whole = conv_mod.conv2d_backward(x, w, g, **kwargs, columns=cols)
    if case[0] == "depthwise":  # one input channel per group: computed without columns
        assert cols is None
    else:
        assert cols.shape[0] == kwargs["groups"]
    monkeypatch.setattr(conv_mod, "MAX_COLUMN_BYTES", 200)
    split = (F.conv2d(x, w, b, **kwargs), *conv_mod.conv2d_backward(x, w, g, **kwargs))
    for name, a, e in zip(("forward", "dX", "dW", "db"), split, (y, *whole)):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12, err_msg=name)


def test_the_torch_comparison_catches_a_padding_gradient_that_is_only_cropped(monkeypatch):
    """With the padding's adjoint replaced by a plain crop (the zero-padding rule),
    dX no longer matches torch: the test above would fail."""
    case = next(c for c in CASES if c[0] == "reflect_same")
    x, w, b, g, kwargs = _data(case)
    expected = _torch(x, w, b, g, kwargs)[1]

    def crop(grad, pads, mode):
        (pt, pb), (pl, pr) = pads
        return np.ascontiguousarray(grad[:, pt:grad.shape[1] - pb, pl:grad.shape[2] - pr])

    monkeypatch.setattr(padding_mod, "pad_adjoint", crop)
    wrong = F.conv2d_input(x.shape, w, g, **kwargs)
    assert np.max(np.abs(wrong - expected)) > 1e-2


@pytest.mark.parametrize("kwargs, match", [
    (dict(groups=3), r"expected input with 6 channels \(2 per group x groups=3\), got 4"),
    (dict(groups=0), r"groups must be >= 1"),
    (dict(groups=2.0), r"groups must be an int"),
    (dict(groups=2, padding_mode="mirror"),
     r"padding_mode must be one of 'zeros', 'reflect'.*Received: padding_mode='mirror'"),
    (dict(groups=2, padding=3, padding_mode="reflect"),
     r"padding_mode='reflect' needs padding smaller than the input height \(3\)"),
    (dict(groups=2, padding=4, padding_mode="circular"),
     r"padding_mode='circular' needs padding at most the input height"),
])
def test_bad_groups_and_padding_modes(kwargs, match):
    x = np.ones((1, 4, 3, 3))
    w = np.ones((4, 2, 1, 1))
    with pytest.raises((ValueError, TypeError), match=match):
        F.conv2d(x, w, **kwargs)


def test_out_channels_must_divide_by_groups():
    with pytest.raises(ValueError,
                       match=r"out_channels \(3, weight shape \(3, 2, 1, 1\)\) must be divisible by groups=2"):
        F.conv2d(np.ones((1, 4, 3, 3)), np.ones((3, 2, 1, 1)), groups=2)


def test_float32_stays_float32_with_groups_and_modes():
    x = np.ones((2, 4, 5, 5), np.float32)
    w = np.ones((4, 2, 3, 3), np.float32)
    y = F.conv2d(x, w, groups=2, padding=1, padding_mode="reflect")
    dx, dw, db = conv_mod.conv2d_backward(x, w, np.ones_like(y), groups=2, padding=1, padding_mode="reflect")
    assert {a.dtype for a in (y, dx, dw, db)} == {np.dtype(np.float32)}


# --------------------------------------------------------------------------
# The layer: torch.nn.Conv2d with the same weights, save/load, constructor errors
# --------------------------------------------------------------------------
LAYER_CASES = [
    dict(in_channels=4, out_channels=6, kernel_size=3, padding=1, groups=2, padding_mode="reflect"),
    dict(in_channels=3, out_channels=6, kernel_size=(3, 2), stride=2, padding=2, groups=3,
         padding_mode="circular"),
    dict(in_channels=2, out_channels=4, kernel_size=3, padding=(2, 1), dilation=2, padding_mode="replicate"),
    dict(in_channels=5, out_channels=5, kernel_size=3, padding=1, groups=5),
]


@pytest.mark.parametrize("kw", LAYER_CASES, ids=lambda kw: f"g{kw.get('groups', 1)}_{kw.get('padding_mode', 'zeros')}")
def test_layer_matches_torch_module(kw):
    from minidl import layers

    ours = layers.Conv2D(**kw, dtype=np.float64, rng=3)
    theirs = torch.nn.Conv2d(**kw, dtype=torch.float64)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, kw["in_channels"], 7, 6))
    y = ours(x)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    g = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(g))
    dx = ours.backward(g)
    assert np.max(np.abs(y - yt.detach().numpy())) < TIGHT
    assert np.max(np.abs(dx - xt.grad.numpy())) < TIGHT
    assert np.max(np.abs(ours.weight.grad - theirs.weight.grad.numpy())) < TIGHT
    assert np.max(np.abs(ours.bias.grad - theirs.bias.grad.numpy())) < TIGHT


def test_layer_gradcheck_groups_and_padding_modes():
    import minidl
    from minidl import layers

    x = np.random.default_rng(5).standard_normal((2, 4, 5, 5))
    for kw in LAYER_CASES[:1] + [dict(in_channels=4, out_channels=4, kernel_size=3, padding=2, groups=4,
                                      padding_mode="circular")]:
        report = minidl.gradcheck(layers.Conv2D(**kw, dtype=np.float64, rng=0), x)
        assert report.passed, report


def test_layer_save_load_keeps_groups_and_padding_mode(tmp_path):
    import minidl as mdl

    model = mdl.Sequential(mdl.layers.Conv2D(4, 6, 3, padding=1, groups=2, padding_mode="reflect", rng=0))
    x = np.random.default_rng(6).standard_normal((2, 4, 5, 5)).astype(np.float32)
    model.save(tmp_path / "m.npz")
    loaded = mdl.load(tmp_path / "m.npz")
    assert (loaded[0].groups, loaded[0].padding_mode) == (2, "reflect")
    np.testing.assert_array_equal(loaded(x), model(x))


@pytest.mark.parametrize("kw, match", [
    (dict(in_channels=4, out_channels=6, groups=4),
     r"out_channels must be divisible by groups.*out_channels=6, groups=4"),
    (dict(in_channels=3, out_channels=6, groups=2),
     r"in_channels must be divisible by groups.*in_channels=3, groups=2"),
    (dict(in_channels=2, out_channels=2, groups=True), r"groups must be an int"),
    (dict(in_channels=2, out_channels=2, padding_mode="reflection"), r"padding_mode must be one of"),
])
def test_layer_constructor_errors(kw, match):
    from minidl import layers

    with pytest.raises((ValueError, TypeError), match=match):
        layers.Conv2D(kernel_size=3, **kw)
