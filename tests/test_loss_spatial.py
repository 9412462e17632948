"""Cross-entropy and NLL over (N, C, d1, ...) inputs (per-pixel labels), as torch's: values and
gradients against torch.nn.CrossEntropyLoss / NLLLoss in float64 over 1, 2 and 3 spatial dims,
every target kind, weight, ignore_index, label smoothing and reduction; the shape errors; memory
as for (N, C); a per-pixel classifier trained by the Trainer (its accuracy metric per pixel)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import minidl as mdl
from minidl import functional as F
from minidl import layers
from minidl.losses import NLLLoss, SoftmaxCrossEntropy

torch = pytest.importorskip("torch")

TOL = 1e-12
N, C = 3, 4
WEIGHT = np.array([0.5, 2.0, 1.0, 3.0])
SPATIAL = [(5,), (3, 4), (2, 3, 2)]
KINDS = ["labels", "labels_ignored", "labels_ignore_2", "probs"]


def _targets(kind, spatial, rng):
    """Targets for logits (N, C, *spatial): labels (N, *spatial) or probabilities (N, C, *spatial)."""
    if kind == "probs":
        p = rng.uniform(0.0, 1.0, (N, C, *spatial))
        return p / p.sum(axis=1, keepdims=True)
    y = rng.integers(0, C, (N, *spatial))
    if kind == "labels_ignored":  # the default ignore_index, at a few positions
        y.reshape(-1)[::3] = -100
    return y


def _case(kind, spatial, reduction, seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((N, C, *spatial)) * 3
    y = _targets(kind, spatial, rng)
    g = rng.standard_normal((N, *spatial)) if reduction == "none" else 0.7
    return z, y, g, 2 if kind == "labels_ignore_2" else -100


def _torch_value_and_grad(function, z, y, g, reduction, **kw):
    zt = torch.tensor(z, requires_grad=True)
    vt = function(zt, torch.tensor(y), reduction=reduction, **kw)
    vt.backward(torch.tensor(g, dtype=torch.float64))
    return vt.detach().numpy(), zt.grad.numpy()


def _check(value, grad, expected, z, reduction):
    vt, gt = expected
    if reduction == "none":
        assert isinstance(value, np.ndarray) and value.shape == (z.shape[0], *z.shape[2:]) and value.dtype == z.dtype
    else:
        assert isinstance(value, float)
    assert grad.shape == z.shape and grad.dtype == z.dtype
    assert np.max(np.abs(np.asarray(value) - vt)) <= TOL
    assert np.max(np.abs(grad - gt)) <= TOL


CE_GRID = list(itertools.product(SPATIAL, KINDS, [None, "w"], [0.0, 0.1], ["mean", "sum", "none"]))


@pytest.mark.parametrize("spatial, kind, weight, smoothing, reduction", CE_GRID,
                         ids=["-".join(map(str, c)) for c in CE_GRID])
def test_cross_entropy_over_spatial_dims_matches_torch(spatial, kind, weight, smoothing, reduction):
    z, y, g, ignore = _case(kind, spatial, reduction, seed=len(spatial))
    w = None if weight is None else WEIGHT
    loss = SoftmaxCrossEntropy(weight=w, ignore_index=ignore, label_smoothing=smoothing, reduction=reduction)
    value = loss(z, y)
    grad = loss.backward(g)
    expected = _torch_value_and_grad(torch.nn.functional.cross_entropy, z, y, g, reduction, ignore_index=ignore,
                                     weight=None if w is None else torch.tensor(w), label_smoothing=smoothing)
    _check(value, grad, expected, z, reduction)


@pytest.mark.parametrize("spatial", SPATIAL)
@pytest.mark.parametrize("kind", ["labels_ignored", "probs"])
def test_the_kernels_over_spatial_dims_match_torch(spatial, kind):
    """The functional kernels themselves, with an (N, d1, ...) upstream gradient for 'none'."""
    z, y, g, _ = _case(kind, spatial, "none", seed=7)
    value = F.cross_entropy(z, y, 0.1, weight=WEIGHT, reduction="none")
    grad = F.cross_entropy_backward(z, y, 0.1, weight=WEIGHT, reduction="none", grad_output=g)
    expected = _torch_value_and_grad(torch.nn.functional.cross_entropy, z, y, g, "none", weight=torch.tensor(WEIGHT),
                                     label_smoothing=0.1)
    _check(value, grad, expected, z, "none")


NLL_GRID = list(itertools.product(SPATIAL, KINDS[:3], [None, "w"], ["mean", "sum", "none"]))


@pytest.mark.parametrize("spatial, kind, weight, reduction", NLL_GRID, ids=["-".join(map(str, c)) for c in NLL_GRID])
def test_nll_over_spatial_dims_matches_torch(spatial, kind, weight, reduction):
    z, y, g, ignore = _case(kind, spatial, reduction, seed=11)
    x = F.log_softmax(z, axis=1)
    w = None if weight is None else WEIGHT
    loss = NLLLoss(weight=w, ignore_index=ignore, reduction=reduction)
    value = loss(x, y)
    grad = loss.backward(g)
    expected = _torch_value_and_grad(torch.nn.functional.nll_loss, x, y, g, reduction, ignore_index=ignore,
                                     weight=None if w is None else torch.tensor(w))
    _check(value, grad, expected, x, reduction)


def test_per_pixel_is_the_row_case_per_pixel():
    """Moving the class axis last and flattening gives (M, C) rows: the same loss and gradient."""
    z, y, _, _ = _case("labels_ignored", (3, 4), "mean", seed=3)
    rows = np.moveaxis(z, 1, -1).reshape(-1, C)
    loss = SoftmaxCrossEntropy(weight=WEIGHT, label_smoothing=0.2)
    value, grad = loss(z, y), loss.backward()
    assert value == pytest.approx(loss(rows, y.reshape(-1)), rel=1e-14)
    np.testing.assert_allclose(np.moveaxis(grad, 1, -1).reshape(-1, C), loss.backward(), rtol=1e-13, atol=1e-17)


def test_float32_kept_over_spatial_dims():
    z, y, g, _ = _case("labels_ignored", (3, 4), "none", seed=5)
    z32, g32 = z.astype(np.float32), g.astype(np.float32)
    for loss, x in ((SoftmaxCrossEntropy(weight=WEIGHT, reduction="none"), z32),
                    (NLLLoss(weight=WEIGHT, reduction="none"), F.log_softmax(z32, axis=1))):
        value = loss(x, y)
        assert value.dtype == np.float32 and value.shape == (N, 3, 4)
        grad = loss.backward(g32)
        assert grad.dtype == np.float32 and grad.shape == x.shape


def test_gradcheck_over_spatial_dims():
    z, y, _, _ = _case("labels_ignored", (2, 3), "mean", seed=9)
    assert mdl.gradcheck(SoftmaxCrossEntropy(weight=WEIGHT, label_smoothing=0.1), z, y).passed
    p = _targets("probs", (2, 3), np.random.default_rng(1))
    assert mdl.gradcheck(SoftmaxCrossEntropy(label_smoothing=0.1), z, p).passed
    assert mdl.gradcheck(NLLLoss(weight=WEIGHT), F.log_softmax(z, axis=1), y).passed


# ------------------------------------------------------------------ shape errors
def test_shape_errors_say_which_shape_was_expected():
    z = np.zeros((2, 4, 3, 5))
    with pytest.raises(ValueError, match=r"cross_entropy: expected integer labels of shape \(2, 3, 5\) \(one per "
                                         r"position of logits \(2, 4, 3, 5\)\), got shape \(2, 3\)"):
        F.cross_entropy(z, np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: expected probability targets of shape "
                                         r"\(2, 4, 3, 5\) \(same as logits\), got \(2, 3, 5\)"):
        SoftmaxCrossEntropy()(z, np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match=r"NLLLoss\(\): expected integer labels of shape \(2, 3, 5\)"):
        NLLLoss()(z, np.zeros((2, 5, 3), np.int64))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\] for 4 classes"):
        SoftmaxCrossEntropy()(z, np.full((2, 3, 5), 4))
    with pytest.raises(ValueError, match=r"logits with 2 dimensions \(N, num_classes\) or more \(N, num_classes, "
                                         r"d1, \.\.\.\); got 1 dimensions.*\(4,\)"):
        SoftmaxCrossEntropy()(np.zeros(4), np.array([0]))
    loss = SoftmaxCrossEntropy(reduction="none")
    loss(z, np.zeros((2, 3, 5), np.int64))
    with pytest.raises(TypeError, match=r"reduction='none' returns one loss per sample.*shape \(2, 3, 5\)"):
        loss.backward()
    with pytest.raises(ValueError, match=r"backward expected grad_output of shape \(2, 3, 5\)"):
        loss.backward(np.ones((2, 3)))
    y = np.zeros((2, 3, 5), np.int64)
    with pytest.raises(ValueError, match=r"cross_entropy_backward: reduction='none'.*shape \(2, 3, 5\)"):
        F.cross_entropy_backward(z, y, reduction="none", grad_output=np.ones(2))
    with pytest.raises(ValueError, match=r"nll_loss_backward: reduction='none'.*shape \(2, 3, 5\)"):
        F.nll_loss_backward(z, y, reduction="none", grad_output=np.ones(2))


# ------------------------------------------------------------------ memory
@pytest.mark.parametrize("kind", ["labels", "probs"])
def test_memory_over_spatial_dims_as_for_rows(kind):
    """The same ceilings as tests/test_loss.py's (N, C) test: no transposed copy of the logits."""
    import tracemalloc

    rng = np.random.default_rng(22)
    z = rng.standard_normal((4, 200, 16, 16)).astype(np.float32)  # 200 classes, as the (N, C) test's
    y = rng.uniform(0.0, 1.0, z.shape).astype(np.float32) if kind == "probs" else rng.integers(0, 200, (4, 16, 16))
    if kind == "probs":
        y /= y.sum(axis=1, keepdims=True)
    peaks = []
    for f in (F.cross_entropy, F.cross_entropy_backward):
        tracemalloc.start()
        try:
            f(z, y, 0.1)
            peaks.append(tracemalloc.get_traced_memory()[1] / z.nbytes)
        finally:
            tracemalloc.stop()
    assert peaks[0] < 2.1, peaks
    assert peaks[1] < (1.1 if kind == "labels" else 2.1), peaks


# ------------------------------------------------------------------ the Trainer
@pytest.mark.parametrize("kind", ["labels", "probs"])
def test_trainer_trains_a_per_pixel_classifier_and_reports_pixel_accuracy(kind):
    """1x1 convolutions learn which of 3 classes each pixel's value falls in; 'accuracy' is per pixel,
    for (N, H, W) labels and for (N, C, H, W) probabilities (the metric failed on those: broadcast error)."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-3, 3, (64, 1, 6, 6)).astype(np.float32)
    labels = np.digitize(X[:, 0], [-1.0, 1.0])  # (N, H, W) in {0, 1, 2}
    y = labels if kind == "labels" else np.moveaxis(np.eye(3, dtype=np.float32)[labels], -1, 1).copy()
    model = mdl.Sequential(layers.Conv2D(1, 8, 1, rng=0), layers.ReLU(), layers.Conv2D(8, 3, 1, rng=1))
    trainer = mdl.Trainer(model, SoftmaxCrossEntropy(), mdl.optim.Adam(model.parameters(), lr=0.05),
                          metrics=["accuracy"])
    history = trainer.fit(X, y, epochs=20, batch_size=16, validation_data=(X[:16], y[:16]), progress=False)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    pixel_accuracy = np.mean(trainer.predict(X[:16]).argmax(axis=1) == labels[:16])
    assert history["val_accuracy"][-1] == pytest.approx(pixel_accuracy) and pixel_accuracy > 0.8
    assert mdl.metrics.accuracy(y[:16], trainer.predict(X[:16])) == pytest.approx(pixel_accuracy)


def test_accuracy_tells_per_position_labels_from_probabilities_by_rank():
    """(N, d1) labels of (N, C, d1) outputs are labels, not probability rows (they were arg-maxed: 1/3 here)."""
    outputs = np.array([[[2.0, 0.0, 5.0], [1.0, 3.0, 1.0]]])  # (1, 2 classes, 3 positions): predicts 0, 1, 0
    assert mdl.metrics.accuracy(np.array([[0, 1, 1]]), outputs) == pytest.approx(2 / 3)
    assert mdl.metrics.accuracy(np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]]), outputs) == pytest.approx(2 / 3)
    assert mdl.metrics.accuracy(np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([[1.0, 0.0], [1.0, 0.0]])) == 0.5
