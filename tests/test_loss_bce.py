"""BCELoss(weight) and BCEWithLogitsLoss(weight, pos_weight) against torch.nn's in float64: values
and gradients for every reduction and weighting (to 1e-10), the edges (probabilities of exactly
0 and 1: torch's log floor; logits of +-1000: finite), gradcheck, float32 kept, save/load, bad
inputs; and a wrong backward caught by the same comparisons."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as mdl
from minidl import functional as F
from minidl import layers
from minidl.losses import BCELoss, BCEWithLogitsLoss

torch = pytest.importorskip("torch")

TOL = 1e-10
N, C = 5, 3
WEIGHTS = {None: None, "per_class": np.array([0.5, 2.0, 1.5]),
           "per_element": np.linspace(0.2, 2.0, N * C).reshape(N, C),
           "per_row": np.array([[2.0], [0.5], [1.0], [3.0], [0.25]])}
REDUCTIONS = ["mean", "sum", "none"]


def _t(a):
    return None if a is None else torch.tensor(a)


def _compare(loss, module, x, y, reduction, seed=0):
    g = np.random.default_rng(seed).standard_normal(x.shape) if reduction == "none" else 1.3
    value, grad = loss(x, y), loss.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    vt = module(xt, torch.tensor(y))
    vt.backward(torch.tensor(g, dtype=torch.float64))
    if reduction == "none":
        assert isinstance(value, np.ndarray) and value.shape == x.shape
    else:
        assert isinstance(value, float)
    expected = vt.detach().numpy()
    assert np.max(np.abs(np.asarray(value) - expected)) <= TOL * max(1.0, float(np.abs(expected).max()))
    assert grad.shape == x.shape and grad.dtype == x.dtype
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=TOL, atol=TOL)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight", list(WEIGHTS), ids=str)
@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft"])
def test_bce_matches_torch(weight, reduction, soft):
    rng = np.random.default_rng(1)
    x = rng.uniform(0.01, 0.99, (N, C))
    y = rng.uniform(0, 1, (N, C)) if soft else rng.integers(0, 2, (N, C)).astype(float)
    w = WEIGHTS[weight]
    _compare(BCELoss(weight=w, reduction=reduction), torch.nn.BCELoss(weight=_t(w), reduction=reduction),
             x, y, reduction)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_at_exact_zero_and_one_floors_the_log_as_torch(reduction):
    x = np.array([[0.0, 1.0, 0.0, 1.0, 0.5]])
    y = np.array([[1.0, 0.0, 0.0, 1.0, 0.3]])  # two confident wrong answers: 100 each, not inf
    _compare(BCELoss(reduction=reduction), torch.nn.BCELoss(reduction=reduction), x, y, reduction)
    assert BCELoss(reduction="sum")(x, y) == pytest.approx(200 - 0.3 * np.log(0.5) - 0.7 * np.log(0.5), rel=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight", list(WEIGHTS), ids=str)
@pytest.mark.parametrize("pos_weight", [None, "per_class", "scalar"], ids=str)
def test_bce_with_logits_matches_torch(weight, pos_weight, reduction):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, C)) * 4
    x[0] = [1000.0, -1000.0, 40.0]  # no overflow: torch's finite values
    y = rng.uniform(0, 1, (N, C))
    w = WEIGHTS[weight]
    pw = {None: None, "per_class": np.array([3.0, 0.5, 1.0]), "scalar": np.array(2.5)}[pos_weight]
    _compare(BCEWithLogitsLoss(weight=w, reduction=reduction, pos_weight=pw),
             torch.nn.BCEWithLogitsLoss(weight=_t(w), reduction=reduction, pos_weight=_t(pw)), x, y, reduction)


@pytest.mark.parametrize("cls", [BCELoss, BCEWithLogitsLoss])
def test_gradcheck_of_the_examples(cls):
    for layer, inputs in cls.examples(np.random.default_rng(0)):
        assert mdl.gradcheck(layer, *inputs).passed


@pytest.mark.parametrize("cls, x", [(BCELoss, np.array([[0.25, 0.9]], np.float32)),
                                    (BCEWithLogitsLoss, np.array([[-3.0, 80.0]], np.float32))])
def test_float32_kept(cls, x):
    loss = cls(weight=[1.0, 2.0], reduction="none")
    out = loss(x, np.array([[1, 0]]))
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    assert loss.backward(np.ones_like(x)).dtype == np.float32


@pytest.mark.parametrize("loss", [BCELoss(), BCELoss(weight=[1.0, 2.0], reduction="sum"),
                                  BCEWithLogitsLoss(weight=[[1.0], [0.5]], reduction="none", pos_weight=[2.0, 1.0])],
                         ids=repr)
def test_save_and_load(loss, tmp_path):
    model = mdl.Sequential(layers.Dense(3, 2, rng=0), loss)
    model.save(tmp_path / "m.npz")
    back = mdl.load(tmp_path / "m.npz")[1]
    assert type(back) is type(loss) and back.get_config() == loss.get_config() and repr(back) == repr(loss)


@pytest.mark.parametrize("make, error, match", [
    (lambda: BCELoss(weight="1"), TypeError, r"BCELoss: weight must be an array of real numbers or None"),
    (lambda: BCELoss("sum"), TypeError, r"BCELoss: weight must be .*pass reduction= by keyword.*weight='sum'"),
    (lambda: BCELoss(weight=[1.0, np.inf]), ValueError, r"BCELoss: weight must be finite"),
    (lambda: BCELoss(reduction="batchmean"), ValueError, r"BCELoss: reduction must be 'mean', 'sum' or 'none'"),
    (lambda: BCEWithLogitsLoss(pos_weight=[[1, 2], [3]]), TypeError, r"BCEWithLogitsLoss: pos_weight must be an array"),
])
def test_constructor_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_call_errors():
    with pytest.raises(ValueError, match=r"BCELoss\(\): outputs must be probabilities in \[0, 1\].*1 outside, e.g. "
                                         r"1.5.*BCEWithLogitsLoss"):
        BCELoss()(np.array([0.5, 1.5]), np.ones(2))
    with pytest.raises(ValueError, match=r"outputs must be probabilities"):
        BCELoss()(np.array([0.5, np.nan]), np.ones(2))
    with pytest.raises(ValueError, match=r"BCELoss\(weight=\[1.0, 2.0, 3.0\]\): weight of shape \(3,\) does not "
                                         r"broadcast to the outputs' shape \(2, 2\)"):
        BCELoss(weight=[1.0, 2.0, 3.0])(np.full((2, 2), 0.5), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"pos_weight of shape \(2, 3\) does not broadcast to the "
                                         r"outputs' shape \(3,\)"):
        BCEWithLogitsLoss(pos_weight=np.ones((2, 3)))(np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match=r"expected targets of the outputs' shape \(2, 1\), got \(2,\)"):
        BCEWithLogitsLoss()(np.zeros((2, 1)), np.ones(2))
    with pytest.raises(TypeError, match=r"binary_cross_entropy_with_logits: pos_weight must be a real "
                                        r"ndarray.*np.asarray"):
        F.binary_cross_entropy_with_logits(np.zeros(2), np.ones(2), pos_weight=[1.0, 2.0])


class LogitsLossWithoutPosWeightInGradient(BCEWithLogitsLoss):
    """A plausible mistake: the gradient sigma(x) - y with pos_weight forgotten (the value keeps it)."""

    def backward(self, grad_output=1.0):
        s = self.saved_values
        return (F.sigmoid(s.outputs) - s.targets) * grad_output / s.outputs.size


def test_the_comparison_and_gradcheck_catch_a_wrong_gradient():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 3)), rng.integers(0, 2, (4, 3)).astype(float)
    pw = np.array([3.0, 0.5, 2.0])
    broken = LogitsLossWithoutPosWeightInGradient(pos_weight=pw)
    broken(x, y)
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pw))(xt, torch.tensor(y)).backward()
    assert np.max(np.abs(broken.backward() - xt.grad.numpy())) > 1e-2
    assert not mdl.gradcheck(LogitsLossWithoutPosWeightInGradient(pos_weight=pw), x, y).passed
