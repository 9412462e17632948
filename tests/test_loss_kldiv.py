"""KLDivLoss(reduction, log_target) against torch.nn.KLDivLoss in float64: values and gradients for
every reduction ('batchmean' too), probability and log targets, zero target entries (to 1e-12);
gradcheck, the 'mean' warning, float32, save/load, bad inputs; a wrong backward is caught."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import minidl as mdl
from minidl import functional as F
from minidl import layers
from minidl.losses import KLDivLoss

torch = pytest.importorskip("torch")

TOL = 1e-12
N, C = 4, 5


def _inputs(log_target, seed=0):
    rng = np.random.default_rng(seed)
    x = F.log_softmax(rng.standard_normal((N, C)) * 2)
    q = rng.dirichlet(np.ones(C), size=N)
    q[0, 1] = 0.0  # a zero target entry: y log y taken as 0, as torch's xlogy
    q[0] /= q[0].sum()
    return x, (np.log(q + 1e-3) if log_target else q)


@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "batchmean", "sum", "none"])
def test_matches_torch(reduction, log_target):
    x, y = _inputs(log_target)
    g = np.random.default_rng(1).standard_normal(x.shape) if reduction == "none" else 0.7
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 'mean' warns (tested below), in both libraries
        loss = KLDivLoss(reduction=reduction, log_target=log_target)
        xt = torch.tensor(x, requires_grad=True)
        vt = torch.nn.KLDivLoss(reduction=reduction, log_target=log_target)(xt, torch.tensor(y))
    value, grad = loss(x, y), loss.backward(g)
    vt.backward(torch.tensor(g, dtype=torch.float64))
    if reduction == "none":
        assert isinstance(value, np.ndarray) and value.shape == x.shape
    else:
        assert isinstance(value, float)
    assert np.max(np.abs(np.asarray(value) - vt.detach().numpy())) <= TOL
    assert grad.shape == x.shape and np.max(np.abs(grad - xt.grad.numpy())) <= TOL


def test_batchmean_is_the_divergence_per_sample_and_zero_for_equal_distributions():
    x, y = _inputs(False)
    expected = np.mean([sum(q * np.log(q / p) for q, p in zip(yr, np.exp(xr)) if q > 0) for xr, yr in zip(x, y)])
    assert KLDivLoss(reduction="batchmean")(x, y) == pytest.approx(expected, rel=1e-12)
    assert KLDivLoss(reduction="batchmean")(np.log(y + (y == 0)), y) == pytest.approx(0.0, abs=1e-15)


def test_gradcheck_of_the_examples():
    for layer, inputs in KLDivLoss.examples(np.random.default_rng(0)):
        assert mdl.gradcheck(layer, *inputs).passed


def test_mean_warns_as_torch_and_batchmean_does_not():
    with pytest.warns(UserWarning, match=r"KLDivLoss: reduction='mean' divides .*'batchmean'"):
        KLDivLoss()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        KLDivLoss(reduction="batchmean")


def test_float32_kept():
    x, y = (a.astype(np.float32) for a in _inputs(False))
    loss = KLDivLoss(reduction="none")
    assert loss(x, y).dtype == np.float32 and loss.backward(np.ones_like(x)).dtype == np.float32
    loss = KLDivLoss(reduction="batchmean", log_target=True)
    assert isinstance(loss(x, np.log(y + 1)), float) and loss.backward().dtype == np.float32


@pytest.mark.parametrize("loss", [KLDivLoss(reduction="batchmean"), KLDivLoss(reduction="sum", log_target=True)],
                         ids=repr)
def test_save_and_load(loss, tmp_path):
    model = mdl.Sequential(layers.Dense(3, 3, rng=0), loss)
    model.save(tmp_path / "m.npz")
    back = mdl.load(tmp_path / "m.npz")[1]
    assert type(back) is KLDivLoss and back.get_config() == loss.get_config() and repr(back) == repr(loss)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"KLDivLoss: reduction must be 'mean', 'batchmean', 'sum' or 'none'.*'avg'"):
        KLDivLoss(reduction="avg")
    with pytest.raises(TypeError, match=r"KLDivLoss: log_target must be True or False. Received: log_target=1"):
        KLDivLoss(reduction="sum", log_target=1)
    with pytest.raises(ValueError, match=r"KLDivLoss\(reduction='sum'\): expected targets of the outputs' shape"):
        KLDivLoss(reduction="sum")(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"kl_div: reduction must be one of 'mean', 'sum', 'none', 'batchmean'"):
        F.kl_div(np.zeros(2), np.zeros(2), "average")


class KLWithBatchmeanOverAllElements(KLDivLoss):
    """A plausible mistake: 'batchmean''s gradient divided by every element instead of the batch size."""

    def backward(self, grad_output=1.0):
        s = self.saved_values
        return -s.targets * grad_output / s.targets.size


def test_the_comparison_and_gradcheck_catch_a_wrong_gradient():
    x, y = _inputs(False)
    broken = KLWithBatchmeanOverAllElements(reduction="batchmean")
    broken(x, y)
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.KLDivLoss(reduction="batchmean")(xt, torch.tensor(y)).backward()
    assert np.max(np.abs(broken.backward() - xt.grad.numpy())) > 1e-2
    assert not mdl.gradcheck(KLWithBatchmeanOverAllElements(reduction="batchmean"), x, y).passed
