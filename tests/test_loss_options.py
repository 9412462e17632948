"""SoftmaxCrossEntropy(weight, ignore_index, label_smoothing, reduction) and MSE(reduction)
against torch.nn.CrossEntropyLoss / MSELoss in float64, for every option combination.

Values and gradients wrt the logits must agree to 1e-10 (observed: ~1e-16); a loss with a
wrong backward fails the same comparison and gradcheck (bottom of the file). Plus: the
Trainer with 'sum' and 'none', save/load, argument errors.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import minidl as mdl
from minidl import functional as F
from minidl import layers
from minidl.losses import MSE, SoftmaxCrossEntropy

torch = pytest.importorskip("torch")

TOL = 1e-10
N, K = 7, 5
WEIGHT = np.array([0.5, 2.0, 1.0, 3.0, 0.25])


def _targets(kind, rng):
    if kind == "labels":
        return rng.integers(0, K, N)
    if kind == "labels_ignored":  # the default ignore_index, twice
        y = rng.integers(0, K, N)
        y[[1, 4]] = -100
        return y
    if kind == "labels_ignore_2":  # an ignore_index that is also a class
        return np.array([2, 0, 2, 1, 4, 3, 2])
    p = rng.uniform(0.0, 1.0, (N, K))
    return p / p.sum(axis=1, keepdims=True)


KINDS = ["labels", "labels_ignored", "labels_ignore_2", "probs"]
COMBOS = list(itertools.product(KINDS, [None, "w"], [0.0, 0.1, 1.0], ["mean", "sum", "none"]))


def _ours_and_torch(kind, weight, smoothing, reduction, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((N, K)) * scale
    y = _targets(kind, rng)
    w = None if weight is None else WEIGHT
    ignore = 2 if kind == "labels_ignore_2" else -100
    g = rng.standard_normal(N) if reduction == "none" else 1.0
    loss = SoftmaxCrossEntropy(weight=w, ignore_index=ignore, label_smoothing=smoothing, reduction=reduction)
    value = loss(z, y)
    grad = loss.backward(g)
    zt = torch.tensor(z, requires_grad=True)
    module = torch.nn.CrossEntropyLoss(weight=None if w is None else torch.tensor(w), ignore_index=ignore,
                                       label_smoothing=smoothing, reduction=reduction)
    vt = module(zt, torch.tensor(y))
    vt.backward(torch.tensor(g) if reduction == "none" else None)
    return (value, grad), (vt.detach().numpy(), zt.grad.numpy())


def max_errors(ours, theirs):
    (v, g), (vt, gt) = ours, theirs
    return float(np.max(np.abs(np.asarray(v) - vt))), float(np.max(np.abs(g - gt)))


@pytest.mark.parametrize("kind, weight, smoothing, reduction", COMBOS,
                         ids=[f"{k}-{w}-{s}-{r}" for k, w, s, r in COMBOS])
def test_cross_entropy_matches_torch(kind, weight, smoothing, reduction):
    ours, theirs = _ours_and_torch(kind, weight, smoothing, reduction)
    if reduction == "none":
        assert isinstance(ours[0], np.ndarray) and ours[0].shape == (N,) and ours[0].dtype == np.float64
    else:
        assert isinstance(ours[0], float)
    ev, eg = max_errors(ours, theirs)
    assert ev <= TOL and eg <= TOL, (ev, eg)


@pytest.mark.parametrize("kind, weight, smoothing, reduction",
                         [c for c in COMBOS if c[2] != 1.0 and (c[1] is None or c[3] != "sum")][::2])
def test_cross_entropy_gradcheck(kind, weight, smoothing, reduction):
    rng = np.random.default_rng(5)
    z, y = rng.standard_normal((N, K)), _targets(kind, rng)
    loss = SoftmaxCrossEntropy(weight=None if weight is None else WEIGHT, label_smoothing=smoothing,
                               ignore_index=2 if kind == "labels_ignore_2" else -100, reduction=reduction)
    report = mdl.gradcheck(loss, z, y)
    assert report.passed, str(report)


def test_ignored_rows_get_zero_gradient_and_do_not_count():
    z = np.random.default_rng(1).standard_normal((4, 3))
    y = np.array([0, -100, 2, -100])
    loss = SoftmaxCrossEntropy(weight=[1.0, 2.0, 4.0])
    value = loss(z, y)
    grad = loss.backward()
    assert np.all(grad[[1, 3]] == 0)
    lsm = F.log_softmax(z)
    assert value == pytest.approx(-(1 * lsm[0, 0] + 4 * lsm[2, 2]) / 5, rel=1e-14)  # / (w_0 + w_2)


def test_every_row_ignored_gives_nan_loss_and_zero_gradient_as_torch():
    z = np.zeros((2, 3))
    for smoothing in (0.0, 0.2):
        loss = SoftmaxCrossEntropy(label_smoothing=smoothing)
        value = loss(z, np.array([-100, -100]))
        zt = torch.tensor(z, requires_grad=True)
        vt = torch.nn.functional.cross_entropy(zt, torch.tensor([-100, -100]), label_smoothing=smoothing)
        vt.backward()
        assert np.isnan(value) and np.isnan(vt.item())
        np.testing.assert_array_equal(loss.backward(), zt.grad.numpy())


@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_minus_inf_logits_with_weights_match_torch(scale):
    z = np.random.default_rng(2).standard_normal((N, K)) * scale
    z[0, 3] = z[2, 1] = -np.inf
    y = np.array([0, 1, 2, 3, 4, 0, -100])
    for smoothing, reduction in itertools.product([0.0, 0.1], ["mean", "none"]):
        loss = SoftmaxCrossEntropy(weight=WEIGHT, label_smoothing=smoothing, reduction=reduction)
        value = loss(z, y)
        g = np.ones(N) if reduction == "none" else 1.0
        grad = loss.backward(g)
        zt = torch.tensor(z, requires_grad=True)
        vt = torch.nn.functional.cross_entropy(zt, torch.tensor(y), weight=torch.tensor(WEIGHT),
                                               label_smoothing=smoothing, reduction=reduction)
        vt.backward(torch.tensor(g) if reduction == "none" else None)
        np.testing.assert_allclose(value, vt.detach().numpy(), rtol=1e-12, atol=0)  # inf where torch has inf
        np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=0, atol=TOL)


def test_float32_kept_with_every_option():
    rng = np.random.default_rng(3)
    z = rng.standard_normal((N, K)).astype(np.float32)
    for kind in KINDS:
        y = _targets(kind, rng)
        y = y.astype(np.float32) if kind == "probs" else y
        loss = SoftmaxCrossEntropy(weight=WEIGHT, label_smoothing=0.1, reduction="none")
        value = loss(z, y)
        assert value.dtype == np.float32
        assert loss.backward(np.ones(N, np.float32)).dtype == np.float32


# -------------------------------------------------------------------------- MSE
MSE_SHAPES = [(6,), (4, 3), (2, 3, 4, 5)]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", MSE_SHAPES, ids=str)
def test_mse_matches_torch(shape, reduction):
    rng = np.random.default_rng(len(shape))
    x, y = rng.standard_normal(shape) * 3, rng.standard_normal(shape)
    g = rng.standard_normal(shape) if reduction == "none" else 1.0
    loss = MSE(reduction)
    value = loss(x, y)
    grad = loss.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    vt = torch.nn.MSELoss(reduction=reduction)(xt, torch.tensor(y))
    vt.backward(torch.tensor(g) if reduction == "none" else None)
    assert np.max(np.abs(np.asarray(value) - vt.detach().numpy())) <= TOL
    assert np.max(np.abs(grad - xt.grad.numpy())) <= TOL
    assert mdl.gradcheck(loss, x, y).passed


def test_mse_casts_targets_and_refuses_other_shapes():
    loss = MSE()
    x = np.ones((3, 1), np.float32)
    assert loss(x, np.zeros((3, 1), np.int64)) == 1.0
    assert loss.backward().dtype == np.float32
    with pytest.raises(ValueError, match=r"MSE\(\): expected targets of the outputs' shape \(3, 1\), got \(3,\)"):
        loss(x, np.zeros(3))


# ------------------------------------------------------------ Trainer, save/load, errors
def _data(n=64):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 4)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(np.int64)


def test_trainer_refuses_reduction_none():
    model = mdl.Sequential(layers.Dense(4, 2, rng=0))
    with pytest.raises(ValueError, match=r"Trainer: the loss must reduce to a scalar .*reduction='none'"):
        mdl.Trainer(model, SoftmaxCrossEntropy(reduction="none"), mdl.optim.SGD(model.parameters(), lr=0.1))


def test_trainer_with_sum_logs_the_mean_per_sample():
    X, y = _data()
    histories = []
    for reduction, lr in (("mean", 0.2), ("sum", 0.2 / 16)):  # same steps: the sum is 16x the mean
        model = mdl.Sequential(layers.Dense(4, 2, rng=0))
        trainer = mdl.Trainer(model, SoftmaxCrossEntropy(reduction=reduction),
                              mdl.optim.SGD(model.parameters(), lr=lr))
        histories.append(trainer.fit(X, y, epochs=3, batch_size=16, seed=0, progress=False)["loss"])
        evaluated = trainer.evaluate(X, y)["loss"]
        assert evaluated == pytest.approx(SoftmaxCrossEntropy()(model(X), y), rel=1e-5)
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-5)


def test_trainer_with_mse_and_ignore_index():
    X, y = _data()
    y = y.copy()
    y[::5] = -100
    model = mdl.Sequential(layers.Dense(4, 2, rng=0))
    trainer = mdl.Trainer(model, SoftmaxCrossEntropy(weight=[1.0, 2.0]), mdl.optim.SGD(model.parameters(), lr=0.2),
                          metrics=())
    loss = trainer.fit(X, y, epochs=5, batch_size=16, seed=0, progress=False)["loss"]
    assert loss[-1] < loss[0]
    reg = mdl.Sequential(layers.Dense(4, 1, rng=0))
    t = mdl.Trainer(reg, MSE(), mdl.optim.SGD(reg.parameters(), lr=0.05), metrics=())
    target = X[:, :1] * 2.0
    loss = t.fit(X, target, epochs=20, batch_size=16, seed=0, progress=False)["loss"]
    assert loss[-1] < 0.1 * loss[0]


@pytest.mark.parametrize("loss", [
    SoftmaxCrossEntropy(weight=[1.0, 2.0, 0.5], ignore_index=1, label_smoothing=0.1, reduction="sum"),
    SoftmaxCrossEntropy(), MSE("sum")], ids=repr)
def test_losses_save_and_load(loss, tmp_path):
    model = mdl.Sequential(layers.Dense(3, 3, rng=0), loss)
    model.save(tmp_path / "m.npz")
    back = mdl.load(tmp_path / "m.npz")[1]
    assert repr(back) == repr(loss) and back.get_config() == loss.get_config()


def test_repr_like_torch_arguments():
    assert repr(SoftmaxCrossEntropy()) == "SoftmaxCrossEntropy()"
    r = repr(SoftmaxCrossEntropy(weight=[1, 2], ignore_index=0, label_smoothing=0.1, reduction="none"))
    assert r == "SoftmaxCrossEntropy(weight=[1., 2.], ignore_index=0, label_smoothing=0.1, reduction='none')"
    assert repr(MSE("sum")) == "MSE(reduction='sum')"


@pytest.mark.parametrize("make, error, match", [
    (lambda: SoftmaxCrossEntropy(0.1), TypeError, r"weight must be a 1-D .*label_smoothing= by keyword"),
    (lambda: SoftmaxCrossEntropy(weight=[[1.0]]), ValueError, r"non-empty 1-D array"),
    (lambda: SoftmaxCrossEntropy(weight=[1.0, np.nan]), ValueError, "finite"),
    (lambda: SoftmaxCrossEntropy(ignore_index=1.0), TypeError, r"ignore_index must be an int"),
    (lambda: SoftmaxCrossEntropy(reduction="avg"), ValueError, r"reduction must be 'mean', 'sum' or 'none'"),
    (lambda: MSE("elementwise_mean"), ValueError, r"MSE: reduction must be"),
])
def test_constructor_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_call_errors():
    z = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"expected a weight of shape \(3,\)"):
        SoftmaxCrossEntropy(weight=[1.0, 2.0])(z, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"ignore_index applies to class-index targets only"):
        SoftmaxCrossEntropy(ignore_index=0)(z, np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\].*or ignore_index=-100"):
        SoftmaxCrossEntropy()(z, np.array([0, -1]))
    loss = SoftmaxCrossEntropy(reduction="none")
    loss(z, np.array([0, 1]))
    with pytest.raises(TypeError, match=r"reduction='none' returns one loss per sample.*shape \(2,\)"):
        loss.backward()
    with pytest.raises(ValueError, match=r"backward expected grad_output of shape \(2,\)"):
        loss.backward(np.ones(3))
    with pytest.raises(TypeError, match=r"dtype float64"):
        loss.backward(np.ones(2, np.float32))


# ------------------------------------------- the comparison catches a wrong gradient
class MeanOverBatchNotWeights(SoftmaxCrossEntropy):
    """A plausible mistake: the weighted mean's gradient divided by N instead of the summed weights."""

    def backward(self, grad_output=1.0):
        logits, targets, kw = self.saved_values
        w_sum = self.weight[targets].sum()
        return super().backward(grad_output) * (w_sum / len(targets))


class MSEWithoutTheTwo(MSE):
    """Another: d(x - y)^2/dx taken as (x - y)."""

    def backward(self, grad_output=1.0):
        return super().backward(grad_output) / 2


def test_the_comparison_and_gradcheck_catch_a_wrong_gradient():
    rng = np.random.default_rng(0)
    z, y = rng.standard_normal((N, K)), rng.integers(0, K, N)
    broken = MeanOverBatchNotWeights(weight=WEIGHT)
    broken(z, y)
    grad = broken.backward()
    zt = torch.tensor(z, requires_grad=True)
    torch.nn.functional.cross_entropy(zt, torch.tensor(y), weight=torch.tensor(WEIGHT)).backward()
    assert np.max(np.abs(grad - zt.grad.numpy())) > 1e-2
    assert not mdl.gradcheck(MeanOverBatchNotWeights(weight=WEIGHT), z, y).passed
    x, t = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    assert not mdl.gradcheck(MSEWithoutTheTwo(), x, t).passed
