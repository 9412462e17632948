"""NLLLoss(weight, ignore_index, reduction) against torch.nn.NLLLoss in float64: values and gradients
for every option combination (to 1e-12); LogSoftmax + NLLLoss equals SoftmaxCrossEntropy (values
and gradients through both layers); gradcheck, float32, save/load, bad inputs; a wrong backward is caught."""

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
N, C = 7, 4
WEIGHT = np.array([0.5, 2.0, 1.0, 3.0])
LABELS = {"plain": np.array([0, 3, 1, 2, 2, 0, 1]), "ignored": np.array([0, -100, 1, 2, -100, 3, 1]),
          "ignore_2": np.array([2, 0, 2, 1, 3, 3, 2])}
COMBOS = list(itertools.product(LABELS, [None, "w"], ["mean", "sum", "none"]))


@pytest.mark.parametrize("labels, weight, reduction", COMBOS, ids=["-".join(map(str, c)) for c in COMBOS])
def test_matches_torch(labels, weight, reduction):
    rng = np.random.default_rng(0)
    x = F.log_softmax(rng.standard_normal((N, C)) * 3)
    y = LABELS[labels]
    w = None if weight is None else WEIGHT
    ignore = 2 if labels == "ignore_2" else -100
    g = rng.standard_normal(N) if reduction == "none" else 0.6
    loss = NLLLoss(weight=w, ignore_index=ignore, reduction=reduction)
    value, grad = loss(x, y), loss.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    vt = torch.nn.NLLLoss(weight=None if w is None else torch.tensor(w), ignore_index=ignore,
                          reduction=reduction)(xt, torch.tensor(y))
    vt.backward(torch.tensor(g, dtype=torch.float64))
    if reduction == "none":
        assert isinstance(value, np.ndarray) and value.shape == (N,)
    else:
        assert isinstance(value, float)
    assert np.max(np.abs(np.asarray(value) - vt.detach().numpy())) <= TOL
    assert grad.shape == x.shape and np.max(np.abs(grad - xt.grad.numpy())) <= TOL


@pytest.mark.parametrize("weight, reduction", [(None, "mean"), (WEIGHT, "mean"), (WEIGHT, "sum")])
def test_log_softmax_then_nll_is_softmax_cross_entropy(weight, reduction):
    rng = np.random.default_rng(1)
    z, y = rng.standard_normal((N, C)) * 4, LABELS["ignored"]
    lsm, nll = layers.LogSoftmax(), NLLLoss(weight=weight, reduction=reduction)
    xent = SoftmaxCrossEntropy(weight=weight, reduction=reduction)
    assert nll(lsm(z), y) == pytest.approx(xent(z, y), rel=1e-13)
    np.testing.assert_allclose(lsm.backward(nll.backward()), xent.backward(), rtol=1e-12, atol=1e-15)


def test_every_row_ignored_gives_nan_and_zero_gradient_as_torch():
    x, y = F.log_softmax(np.ones((2, 3))), np.array([-100, -100])
    loss = NLLLoss()
    with np.errstate(all="raise"):  # no numpy warnings either
        value = loss(x, y)
        grad = loss.backward()
    xt = torch.tensor(x, requires_grad=True)
    vt = torch.nn.NLLLoss()(xt, torch.tensor(y))
    vt.backward()
    assert np.isnan(value) and np.isnan(vt.item())
    np.testing.assert_array_equal(grad, xt.grad.numpy())


def test_gradcheck_of_the_examples():
    for layer, inputs in NLLLoss.examples(np.random.default_rng(0)):
        assert mdl.gradcheck(layer, *inputs).passed


def test_float32_kept():
    x = F.log_softmax(np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32))
    loss = NLLLoss(weight=[1.0, 2.0, 1.0, 0.5], reduction="none")
    assert loss(x, np.array([0, 1, 3])).dtype == np.float32
    assert loss.backward(np.ones(3, np.float32)).dtype == np.float32
    loss = NLLLoss()
    assert isinstance(loss(x, np.array([0, 1, 3])), float) and loss.backward().dtype == np.float32


@pytest.mark.parametrize("loss", [NLLLoss(), NLLLoss(weight=[1.0, 2.0, 0.5], ignore_index=1, reduction="sum")],
                         ids=repr)
def test_save_and_load(loss, tmp_path):
    model = mdl.Sequential(layers.Dense(3, 3, rng=0), layers.LogSoftmax(), loss)
    model.save(tmp_path / "m.npz")
    back = mdl.load(tmp_path / "m.npz")
    assert type(back[1]) is layers.LogSoftmax and type(back[2]) is NLLLoss
    assert back[2].get_config() == loss.get_config() and repr(back[2]) == repr(loss)


def test_repr_like_torch_arguments():
    assert repr(NLLLoss()) == "NLLLoss()"
    assert repr(NLLLoss(weight=[1, 2], ignore_index=0, reduction="none")) == \
        "NLLLoss(weight=[1., 2.], ignore_index=0, reduction='none')"


def test_bad_inputs():
    x = F.log_softmax(np.zeros((2, 3)))
    with pytest.raises(TypeError, match=r"NLLLoss\(\): targets must be integer class labels \(N,\).*KLDivLoss"):
        NLLLoss()(x, np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match=r"NLLLoss\(\): labels must be in \[0, 2\] for 3 classes"):
        NLLLoss()(x, np.array([0, 3]))
    with pytest.raises(ValueError, match=r"NLLLoss\(weight=\[1., 2.\]\): expected a weight of shape \(3,\)"):
        NLLLoss(weight=[1.0, 2.0])(x, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"expected integer labels of shape \(2,\)"):
        NLLLoss()(x, np.array([[0], [1]]))
    with pytest.raises(TypeError, match=r"NLLLoss: weight must be a 1-D sequence"):
        NLLLoss(0.5)
    with pytest.raises(ValueError, match=r"NLLLoss: reduction must be 'mean', 'sum' or 'none'"):
        NLLLoss(reduction="batchmean")
    with pytest.raises(TypeError, match=r"NLLLoss: ignore_index must be an int"):
        NLLLoss(ignore_index=-100.0)
    loss = NLLLoss(reduction="none")
    loss(x, np.array([0, 1]))
    with pytest.raises(TypeError, match=r"reduction='none' returns one loss per sample.*shape \(2,\)"):
        loss.backward()


class NLLMeanOverRowsNotWeights(NLLLoss):
    """A plausible mistake: the weighted mean's gradient divided by N instead of the summed weights."""

    def backward(self, grad_output=1.0):
        s = self.saved_values
        return super().backward(grad_output) * (self.weight[s.targets].sum() / len(s.targets))


def test_the_comparison_and_gradcheck_catch_a_wrong_gradient():
    rng = np.random.default_rng(0)
    x, y = F.log_softmax(rng.standard_normal((N, C))), LABELS["plain"]
    broken = NLLMeanOverRowsNotWeights(weight=WEIGHT)
    broken(x, y)
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.NLLLoss(weight=torch.tensor(WEIGHT))(xt, torch.tensor(y)).backward()
    assert np.max(np.abs(broken.backward() - xt.grad.numpy())) > 1e-2
    assert not mdl.gradcheck(NLLMeanOverRowsNotWeights(weight=WEIGHT), x, y).passed
