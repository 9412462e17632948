"""Bad input gets a ValueError / TypeError (RuntimeError for call order) whose message
says what was expected AND what was received. Every ``match`` below checks both."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest

import minidl
from minidl import EarlyStopping, Trainer, optim
from minidl import functional as F
from minidl import layers as L
from minidl.data import iterate_batches
from minidl.losses import SoftmaxCrossEntropy

f32 = np.float32


def zeros(*shape, dtype=f32):
    return np.zeros(shape, dtype)


# ------------------------------------------------------ number of dimensions
def test_conv2d_3d_input():
    conv = L.Conv2D(3, 4, 3, rng=0)
    with pytest.raises(ValueError, match=r"4 dimensions \(N, C, H, W\).*got 3 dimensions.*\(3, 8, 8\)"):
        conv(zeros(3, 8, 8))
    with pytest.raises(ValueError, match=r"add a batch axis: x\[None\]"):  # and the fix
        conv(zeros(3, 8, 8))


def test_dense_4d_input():
    with pytest.raises(ValueError, match=r"2 dimensions \(N, in_features\).*got 4 dimensions.*\(2, 3, 1, 1\)"):
        L.Dense(3, 4, rng=0)(zeros(2, 3, 1, 1))


def test_functional_conv2d_and_pool_ndim():
    with pytest.raises(ValueError, match=r"conv2d: expected x with 4 dimensions.*got 2 dimensions.*\(8, 8\)"):
        F.conv2d(zeros(8, 8), zeros(1, 1, 3, 3))
    with pytest.raises(ValueError, match=r"4 dimensions.*got 5 dimensions.*\(1, 1, 1, 4, 4\)"):
        L.MaxPool2D(2)(zeros(1, 1, 1, 4, 4))


def test_loss_logits_ndim():
    with pytest.raises(ValueError, match=r"2 dimensions \(N, num_classes\).*got 1 dimensions.*\(4,\)"):
        SoftmaxCrossEntropy()(zeros(4), np.array([0]))


def test_flatten_too_few_dims():
    with pytest.raises(ValueError, match=r"more than 1 dimensions.*got shape \(3,\)"):
        L.Flatten()(zeros(3))


# ------------------------------------------------------------ channel / features
def test_wrong_channel_count():
    with pytest.raises(ValueError, match=r"expected input with 3 channels, got 1 channels.*\(2, 1, 8, 8\)"):
        L.Conv2D(3, 4, 3, rng=0)(zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"expected input with 2 channels.*got 5 channels.*\(1, 5, 6, 6\)"):
        F.conv2d(zeros(1, 5, 6, 6), zeros(4, 2, 3, 3))


def test_dense_wrong_feature_count():
    with pytest.raises(ValueError, match=r"expected input with 3 features, got shape \(2, 5\)"):
        L.Dense(3, 4, rng=0)(zeros(2, 5))


# ---------------------------------------------------------- kernel vs input size
def test_kernel_larger_than_padded_input_functional():
    with pytest.raises(ValueError, match=r"kernel is larger than the padded input.*spans 5.*"
                                         r"padded input height is 3"):
        F.conv2d(np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 5, 5)))
    # along the width only, with padding taken into account: 4 + 2*1 = 6 < 7
    with pytest.raises(ValueError, match=r"along the width.*spans 7.*padded input width is 6"):
        F.conv2d(np.zeros((1, 1, 9, 4)), np.zeros((1, 1, 3, 7)), padding=1)


def test_kernel_larger_than_padded_input_layer():
    with pytest.raises(ValueError, match=r"kernel is larger than the padded input.*spans 5.*is 3"):
        L.Conv2D(1, 1, 5, rng=0)(zeros(1, 1, 3, 3))
    # dilation makes the kernel span (3 - 1) * 3 + 1 = 7 > 6
    with pytest.raises(ValueError, match=r"dilation \(3, 3\) spans 7.*padded input height is 6"):
        L.Conv2D(1, 1, 3, dilation=3, rng=0)(zeros(1, 1, 6, 6))
    with pytest.raises(ValueError, match=r"kernel is larger than the padded input.*spans 5.*is 3"):
        L.MaxPool2D(5)(zeros(1, 1, 3, 3))


def test_kernel_equal_to_input_is_fine():
    assert L.Conv2D(1, 1, 3, rng=0)(zeros(1, 1, 3, 3)).shape == (1, 1, 1, 1)


# -------------------------------------------------------- constructor arguments
@pytest.mark.parametrize("cls", [L.Conv2D, L.MaxPool2D])
def test_unknown_padding_string(cls):
    args = (1, 1, 3) if cls is L.Conv2D else (3,)
    with pytest.raises(ValueError, match=r"'valid' or 'same'.*Received: padding='full-ish'"):
        cls(*args, padding="full-ish")


@pytest.mark.parametrize("name", ["kernel_size", "stride", "dilation"])
@pytest.mark.parametrize("bad", [0, -1, (3, 0), (-2, 1)])
def test_conv_nonpositive_geometry_at_construction(name, bad):
    kw = dict(kernel_size=3)
    kw[name] = bad
    with pytest.raises(ValueError, match=rf"{name} must be >= 1.*Received: {name}={re.escape(repr(bad))}"):
        L.Conv2D(1, 1, **kw)


@pytest.mark.parametrize("name", ["kernel_size", "stride"])
@pytest.mark.parametrize("bad", [0, -2, (2, 0)])
def test_pool_nonpositive_geometry_at_construction(name, bad):
    kw = dict(kernel_size=2)
    kw[name] = bad
    with pytest.raises(ValueError, match=rf"{name} must be >= 1.*Received: {name}={re.escape(repr(bad))}"):
        L.MaxPool2D(**kw)


def test_functional_nonpositive_geometry():
    with pytest.raises(ValueError, match=r"conv2d: stride must be >= 1.*Received: stride=0"):
        F.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), stride=0)
    with pytest.raises(ValueError, match=r"max_pool2d: kernel_size must be >= 1.*Received: kernel_size=0"):
        F.max_pool2d(np.zeros((1, 1, 5, 5)), 0)


def test_negative_padding_at_construction():
    with pytest.raises(ValueError, match=r"padding must be >= 0.*Received: padding=-1"):
        L.Conv2D(1, 1, 3, padding=-1)


def test_pool_padding_more_than_half_kernel():
    # raised at the latest by the first forward
    with pytest.raises(ValueError, match=r"at most half the kernel.*padding=2.*kernel_size=\(2, 2\)"):
        L.MaxPool2D(2, padding=2)(zeros(1, 1, 6, 6))


@pytest.mark.parametrize("make, match", [
    (lambda: L.Conv2D(1.5, 1, 3), r"in_channels must be an int.*Received: in_channels=1\.5"),
    (lambda: L.Conv2D(1, 1, 2.0), r"kernel_size must be an int or a pair.*Received: kernel_size=2\.0"),
    (lambda: L.Conv2D(1, 1, 3, rng="seed"), r"rng must be a numpy.random.Generator.*Received: str"),
    (lambda: L.Dense(3, 2, rng=1.0), r"rng must be.*Received: float"),
])
def test_wrong_constructor_types(make, match):
    with pytest.raises(TypeError, match=match):
        make()


@pytest.mark.parametrize("make, match", [
    (lambda: L.Dense(0, 3), r"in_features must be >= 1.*Received: in_features=0"),
    (lambda: L.Conv2D(1, -4, 3), r"out_channels must be >= 1.*Received: out_channels=-4"),
    (lambda: SoftmaxCrossEntropy(label_smoothing=1.5), r"label_smoothing must be a float in \[0, 1\].*=1\.5"),
])
def test_nonpositive_sizes(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_integer_layer_dtype_message():
    with pytest.raises(TypeError, match=r"dtype.*floating.*Received: dtype=int32") as info:
        L.Conv2D(1, 1, 3, dtype=np.int32)
    assert "astype" not in str(info.value)


def test_numpy_scalar_label_smoothing_accepted():
    assert SoftmaxCrossEntropy(label_smoothing=np.float32(0.1)).label_smoothing == pytest.approx(0.1)


# ---------------------------------------------------------------- loss targets
def test_labels_out_of_range():
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\] for 4 classes.*e\.g\. 4"):
        SoftmaxCrossEntropy()(zeros(3, 4), np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\].*e\.g\. -1"):
        F.cross_entropy(zeros(3, 4), np.array([0, -1, 1]))


def test_labels_wrong_length():
    with pytest.raises(ValueError, match=r"labels of shape \(3,\).*got shape \(2,\)"):
        SoftmaxCrossEntropy()(zeros(3, 4), np.array([0, 1]))


def test_prob_targets_wrong_shape():
    with pytest.raises(ValueError, match=r"probability targets of shape \(3, 4\).*got \(3, 5\)"):
        SoftmaxCrossEntropy()(zeros(3, 4), zeros(3, 5))
    # float labels: the message points at the fix (integer labels)
    with pytest.raises(ValueError, match=r"shape \(3, 4\).*got \(3,\).*integer array of shape \(3,\)"):
        SoftmaxCrossEntropy()(zeros(3, 4), np.array([0.0, 1.0, 2.0]))


def test_targets_of_wrong_type():
    with pytest.raises(TypeError, match=r"integer class labels or float class probabilities.*dtype=bool"):
        SoftmaxCrossEntropy()(zeros(3, 4), np.array([True, False, True]))


def test_backward_not_run_after_failed_forward():
    loss = SoftmaxCrossEntropy()
    with pytest.raises(ValueError):
        loss(zeros(3, 4), np.array([0, 9, 1]))
    with pytest.raises(RuntimeError, match="before forward"):
        loss.backward()


# ---------------------------------------------------------------------- dtypes
# Conv2D's input is checked once, by the kernel, whose argument is ``x`` (issue 11)
@pytest.mark.parametrize("make, x, name", [
    (lambda: L.Dense(3, 4, rng=0), np.zeros((2, 3)), "input"),
    (lambda: L.Conv2D(1, 1, 3, rng=0), np.zeros((1, 1, 5, 5)), r"Conv2D\(1, 1, kernel_size=\(3, 3\)\): x"),
], ids=["Dense", "Conv2D"])
def test_float64_input_into_float32_layer(make, x, name):
    with pytest.raises(TypeError, match=name + r" dtype float64 does not match weight dtype float32.*"
                                        r"astype\(np.float32\).*dtype=np.float64"):
        make()(x)


def test_float32_input_into_float64_layer():
    with pytest.raises(TypeError, match=r"x dtype float32 does not match weight dtype float64"):
        L.Conv2D(1, 1, 3, dtype=np.float64, rng=0)(zeros(1, 1, 5, 5))


@pytest.mark.parametrize("make, x", [
    (lambda: L.Dense(3, 4, rng=0), np.zeros((2, 3), np.int64)),
    (lambda: L.Conv2D(1, 1, 3, rng=0), np.zeros((1, 1, 5, 5), np.int32)),
    (lambda: L.MaxPool2D(2), np.zeros((1, 1, 4, 4), np.int32)),
    (lambda: L.ReLU(), np.zeros(3, np.int64)),
], ids=["Dense", "Conv2D", "MaxPool2D", "ReLU"])
def test_integer_input(make, x):
    with pytest.raises(TypeError, match=rf"floating-point dtype.*Received: dtype={x.dtype}"):
        make()(x)


def test_add_mismatched_inputs():
    with pytest.raises(ValueError, match=r"shape of input 0 \(3,\); input 1 has shape \(4,\)"):
        L.Add()(zeros(3), zeros(4))
    with pytest.raises(TypeError, match=r"dtype of input 0 \(float32\); input 1 has float64"):
        L.Add()(zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match=r"at least 2 inputs, got 1"):
        L.Add()(zeros(3))


def test_concat_mismatched_shapes():
    with pytest.raises(ValueError, match=r"match on every axis except 1.*\[\(1, 3\), \(2, 3\)\]"):
        L.Concat(axis=1)(zeros(1, 3), zeros(2, 3))


def test_concat_mixed_dtypes_rejected():
    with pytest.raises((TypeError, ValueError), match=r"float32.*float64|float64.*float32"):
        L.Concat()(zeros(1, 3), np.zeros((1, 3)))


def test_concat_axis_out_of_range_message():
    with pytest.raises(ValueError, match=r"axis 5.*(out of range|out of bounds|2 dimensions)"):
        L.Concat(axis=5)(zeros(1, 3), zeros(1, 3))


# ---------------------------------------------------------- not an ndarray
LIST_CASES = [
    ("Conv2D", lambda: L.Conv2D(1, 1, 1, rng=0), 1),
    ("Dense", lambda: L.Dense(2, 1, rng=0), 1),
    ("ReLU", L.ReLU, 1),
    ("MaxPool2D", lambda: L.MaxPool2D(1), 1),
    ("Flatten", L.Flatten, 1),
    ("Add", L.Add, 2),
    ("Concat", L.Concat, 2),
]


@pytest.mark.parametrize("name, make, n_inputs", LIST_CASES, ids=[c[0] for c in LIST_CASES])
def test_list_instead_of_ndarray(name, make, n_inputs):
    with pytest.raises(TypeError, match=r"must be a numpy\.ndarray\. Received: list.*np\.asarray"):
        make()(*([[[1.0, 2.0]]] * n_inputs))


def test_list_logits_instead_of_ndarray():
    with pytest.raises(TypeError, match=r"logits must be a numpy\.ndarray\. Received: list"):
        SoftmaxCrossEntropy()([[1.0, 2.0]], np.array([0]))
    with pytest.raises(TypeError, match=r"x must be a numpy\.ndarray\. Received: tuple"):
        F.max_pool2d(((1.0,),), 1)


# ------------------------------------------------------- backward before forward
EVERY_LAYER = [
    ("Conv2D", lambda: L.Conv2D(1, 2, 3, rng=0), lambda layer: layer.backward(zeros(1, 2, 3, 3))),
    ("Dense", lambda: L.Dense(3, 2, rng=0), lambda layer: layer.backward(zeros(1, 2))),
    ("ReLU", L.ReLU, lambda layer: layer.backward(zeros(3))),
    ("MaxPool2D", lambda: L.MaxPool2D(2), lambda layer: layer.backward(zeros(1, 1, 2, 2))),
    ("Flatten", L.Flatten, lambda layer: layer.backward(zeros(1, 4))),
    ("Add", L.Add, lambda layer: layer.backward(zeros(3))),
    ("Concat", L.Concat, lambda layer: layer.backward(zeros(1, 4))),
    ("SoftmaxCrossEntropy", SoftmaxCrossEntropy, lambda layer: layer.backward()),
]


@pytest.mark.parametrize("name, make, call", EVERY_LAYER, ids=[c[0] for c in EVERY_LAYER])
def test_backward_before_forward(name, make, call):
    layer = make()
    with pytest.raises(RuntimeError, match=rf"{name}\(.*\): backward\(\) was called before forward\(\)"):
        call(layer)
    assert all(not np.any(p.grad) for p in layer.parameters())


def test_backward_after_failed_first_forward():
    conv = L.Conv2D(3, 2, 3, rng=0)
    with pytest.raises(ValueError):
        conv(zeros(1, 1, 5, 5))
    with pytest.raises(RuntimeError, match="before forward"):
        conv.backward(zeros(1, 2, 3, 3))


# ------------------------------------------------ grad_output of the wrong shape
GRAD_SHAPE_CASES = [
    pytest.param("Conv2D", lambda: L.Conv2D(1, 2, 3, rng=0), zeros(2, 1, 5, 5), zeros(2, 2, 3, 4),
                 id="Conv2D"),
    pytest.param("MaxPool2D", lambda: L.MaxPool2D(2), zeros(2, 1, 4, 4), zeros(2, 1, 3, 2),
                 id="MaxPool2D"),
    pytest.param("Dense", lambda: L.Dense(3, 2, rng=0), zeros(4, 3), zeros(4, 5), id="Dense"),
    pytest.param("ReLU", L.ReLU, zeros(4, 3), zeros(3), id="ReLU"),
]


@pytest.mark.parametrize("name, make, x, bad_grad", GRAD_SHAPE_CASES)
def test_backward_grad_output_wrong_shape(name, make, x, bad_grad):
    layer = make()
    out = layer(x)
    with pytest.raises(ValueError, match=rf"{re.escape(str(out.shape))}.*{re.escape(str(bad_grad.shape))}"):
        layer.backward(bad_grad)


# ------------------------------------------------------------- load_state_dict
def snapshot(layer):
    return {k: v.copy() for k, v in layer.state_dict().items()}


def assert_unchanged(layer, before):
    for name, p in layer.named_parameters():
        np.testing.assert_array_equal(p.data, before[name], err_msg=f"{name} was assigned")


@pytest.fixture
def conv():
    return L.Conv2D(2, 3, 3, rng=0)


def test_load_state_dict_missing_key(conv):
    before = snapshot(conv)
    with pytest.raises(ValueError, match=r"missing keys \['bias'\].*nothing was loaded|"
                                         r"nothing was loaded.*missing keys \['bias'\]"):
        conv.load_state_dict({"weight": np.ones((3, 2, 3, 3), f32)})
    assert_unchanged(conv, before)  # weight (present and valid) was NOT assigned


def test_load_state_dict_unexpected_key(conv):
    before = snapshot(conv)
    sd = {k: np.ones_like(v) for k, v in before.items()}
    sd["gamma"] = np.ones(3, f32)
    with pytest.raises(ValueError, match=r"unexpected keys \['gamma'\].*Expected keys: \['weight', 'bias'\]"):
        conv.load_state_dict(sd)
    assert_unchanged(conv, before)


def test_load_state_dict_wrong_shape(conv):
    before = snapshot(conv)
    sd = {"weight": np.ones((3, 2, 5, 5), f32), "bias": np.ones(3, f32)}  # bias alone is fine
    with pytest.raises(ValueError, match=r"'weight': expected shape \(3, 2, 3, 3\), got \(3, 2, 5, 5\)"):
        conv.load_state_dict(sd)
    assert_unchanged(conv, before)


def test_load_state_dict_wrong_dtype(conv):
    before = snapshot(conv)
    sd = {"weight": np.ones((3, 2, 3, 3), f32), "bias": np.ones(3, np.float64)}
    with pytest.raises(ValueError, match=r"'bias': expected dtype float32, got float64"):
        conv.load_state_dict(sd)
    assert_unchanged(conv, before)


def test_load_state_dict_valid_still_works(conv):
    sd = {"weight": np.ones((3, 2, 3, 3), f32), "bias": np.full(3, 2.0, f32)}
    conv.load_state_dict(sd)
    assert np.all(conv.weight.data == 1) and np.all(conv.bias.data == 2)
    sd["bias"][:] = 7  # the layer holds copies
    assert np.all(conv.bias.data == 2)


# ------------------------------------------------- no `assert` for user input
def test_package_has_no_assert_statements():
    root = pathlib.Path(minidl.__file__).parent
    files = sorted(root.rglob("*.py"))
    assert len(files) >= 10, files  # we are really looking at the package
    offenders = []
    for path in files:
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith("assert ") or stripped.startswith("assert("):
                offenders.append(f"{path.relative_to(root.parent)}:{lineno}: {stripped}")
    assert not offenders, ("minidl must raise ValueError/TypeError for bad input, not assert "
                           "(asserts vanish under python -O):\n" + "\n".join(offenders))


def test_conv2d_bias_dtype_mismatch_is_a_type_error():
    from minidl.functional import conv2d
    x, w = zeros(1, 1, 3, 3), zeros(1, 1, 3, 3)
    with pytest.raises(TypeError, match=r"bias dtype float64 does not match x dtype float32"):
        conv2d(x, w, np.zeros(1))


# ------------------------------------------------------ the layer toolkit's public names
def test_layer_toolkit_public_names_and_the_old_aliases():
    assert L.Layer._require_cache is L.Layer.require_cache
    assert L.Layer._check_grad is L.Layer.check_grad_output

    class Double(L.Layer):
        def forward(self, x):
            self.save_for_backward(x.shape, x.dtype)
            return 2 * x

        def backward(self, grad_output):
            shape, dtype = self.saved_values
            return 2 * self.check_grad_output(grad_output, shape, dtype)

    layer = Double()
    with pytest.raises(RuntimeError, match=r"Double\(\): backward\(\) was called before forward\(\)"):
        layer.backward(zeros(2))
    layer(zeros(2))
    np.testing.assert_array_equal(layer.backward(np.ones(2, np.float32)), [2, 2])
    with pytest.raises(TypeError, match="dtype float32 .*got float64"):
        layer.backward(np.ones(2))
    layer.eval()
    layer(zeros(2))
    with pytest.raises(RuntimeError, match="eval mode"):  # eval mode keeps nothing (and dropped
        layer.saved_values  # noqa: B018                 # the training call's values)
    with pytest.raises(RuntimeError, match="eval mode"):
        layer.backward(np.ones(2, np.float32))


# ------------------------------------------------------ one integer validator (issue 11)


def _int_arguments():
    X, y = np.zeros((4, 3), np.float32), np.zeros(4, np.int64)

    def trainer(**kw):
        model = L.Dense(3, 2, rng=0)
        return Trainer(model, SoftmaxCrossEntropy(), optim.SGD(model.parameters(), lr=0.1), **kw)

    def fit(**kw):
        return trainer().fit(X, y, progress=False, **{"epochs": 1, **kw})

    return [
        ("EarlyStopping", "patience", lambda v: EarlyStopping(patience=v)),
        ("Concat", "axis", lambda v: L.Concat(axis=v)),
        ("iterate_batches", "batch_size", lambda v: list(iterate_batches(X, y, batch_size=v))),
        ("Trainer.fit", "epochs", lambda v: fit(epochs=v)),
        ("Trainer.fit", "batch_size", lambda v: fit(batch_size=v)),
        ("Trainer.fit", "seed", lambda v: fit(seed=v)),
        ("Trainer.fit", "initial_epoch", lambda v: fit(initial_epoch=v, epochs=3)),
        ("Trainer", "blas_threads", lambda v: trainer(blas_threads=v)),
    ]


@pytest.mark.parametrize("where, name, call", _int_arguments(), ids=lambda a: a if isinstance(a, str) else "")
def test_one_integer_validator(where, name, call):
    for bad in (True, np.bool_(False), 1.0, 1.7, np.float64(2)):
        message = rf"{where}: {name} must be an int.*Received: {name}={re.escape(repr(bad))}"
        with pytest.raises(TypeError, match=message):
            call(bad)
    call(np.int64(2))  # numpy integers are accepted
    call(np.uint8(1))
