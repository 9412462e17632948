"""L1Loss, SmoothL1Loss(beta) and HuberLoss(delta) against torch.nn's in float64: values and
gradients for every reduction and several thresholds (to 1e-12), gradcheck, float32 kept,
save/load, bad inputs; and a wrong backward caught by the same comparisons."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as mdl
from minidl import functional as F
from minidl import layers
from minidl.losses import HuberLoss, L1Loss, SmoothL1Loss

torch = pytest.importorskip("torch")

TOL = 1e-12
SHAPES = [(6,), (4, 3), (2, 3, 2, 2)]
#: (ours, torch's, options): beta/delta small, default, large, and SmoothL1's beta=0 (the L1 loss)
CONFIGS = [(L1Loss, torch.nn.L1Loss, {}),
           *[(SmoothL1Loss, torch.nn.SmoothL1Loss, {"beta": b}) for b in (0.0, 0.3, 1.0, 2.5)],
           *[(HuberLoss, torch.nn.HuberLoss, {"delta": d}) for d in (0.3, 1.0, 2.5)]]
IDS = [f"{c.__name__}-{o}" for c, _, o in CONFIGS]


def _ours_and_torch(cls, torch_cls, options, reduction, shape, seed=0):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal(shape) * 2, rng.standard_normal(shape)
    x.flat[0] = y.flat[0]  # a zero difference: the sign's 0, as torch
    g = rng.standard_normal(shape) if reduction == "none" else 1.7
    loss = cls(reduction=reduction, **options)
    value, grad = loss(x, y), loss.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    vt = torch_cls(reduction=reduction, **options)(xt, torch.tensor(y))
    vt.backward(torch.tensor(g) if reduction == "none" else torch.tensor(g, dtype=torch.float64))
    return value, grad, vt.detach().numpy(), xt.grad.numpy()


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("cls, torch_cls, options", CONFIGS, ids=IDS)
def test_matches_torch(cls, torch_cls, options, reduction, shape):
    value, grad, vt, gt = _ours_and_torch(cls, torch_cls, options, reduction, shape)
    if reduction == "none":
        assert isinstance(value, np.ndarray) and value.shape == shape and value.dtype == np.float64
    else:
        assert isinstance(value, float)
    assert np.max(np.abs(np.asarray(value) - vt)) <= TOL
    assert grad.shape == shape and np.max(np.abs(grad - gt)) <= TOL


@pytest.mark.parametrize("cls, torch_cls, options", CONFIGS, ids=IDS)
def test_gradcheck_and_examples(cls, torch_cls, options):
    for layer, inputs in cls.examples(np.random.default_rng(0)):
        assert mdl.gradcheck(layer, *inputs).passed
    rng = np.random.default_rng(1)
    y = rng.standard_normal((3, 4))
    x = y + rng.choice([-1.0, 1.0], (3, 4)) * rng.uniform(0.05, 0.25, (3, 4))  # |d| < every threshold
    assert mdl.gradcheck(cls(**options), x if options.get("beta", 1) else x + 0.3, y).passed


@pytest.mark.parametrize("cls", [L1Loss, SmoothL1Loss, HuberLoss])
def test_float32_kept_and_integer_targets_cast(cls):
    x = np.array([[0.5, -2.0]], np.float32)
    loss = cls(reduction="none")
    out = loss(x, np.zeros((1, 2), np.int64))
    assert out.dtype == np.float32 and loss.backward(np.ones((1, 2), np.float32)).dtype == np.float32
    loss = cls()
    assert isinstance(loss(x, np.zeros((1, 2), np.float32)), float) and loss.backward().dtype == np.float32


@pytest.mark.parametrize("loss", [L1Loss("sum"), SmoothL1Loss(beta=0.25), HuberLoss("none", delta=3.0)], ids=repr)
def test_save_and_load(loss, tmp_path):
    model = mdl.Sequential(layers.Dense(3, 3, rng=0), loss)
    model.save(tmp_path / "m.npz")
    back = mdl.load(tmp_path / "m.npz")[1]
    assert type(back) is type(loss) and back.get_config() == loss.get_config() and repr(back) == repr(loss)


@pytest.mark.parametrize("make, error, match", [
    (lambda: L1Loss("avg"), ValueError, r"L1Loss: reduction must be 'mean', 'sum' or 'none'"),
    (lambda: SmoothL1Loss(beta=-1.0), ValueError, r"SmoothL1Loss: beta must be a finite real number >= 0.*beta=-1"),
    (lambda: SmoothL1Loss(beta="1"), ValueError, r"SmoothL1Loss: beta must be"),
    (lambda: HuberLoss(delta=0.0), ValueError, r"HuberLoss: delta must be a finite real number > 0.*delta=0"),
    (lambda: HuberLoss(delta=True), ValueError, r"HuberLoss: delta must be"),
    (lambda: HuberLoss(delta=float("inf")), ValueError, r"HuberLoss: delta must be"),
])
def test_constructor_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_call_errors():
    with pytest.raises(ValueError, match=r"HuberLoss\(\): expected targets of the outputs' shape \(3, 1\)"):
        HuberLoss()(np.zeros((3, 1)), np.zeros(3))
    with pytest.raises(TypeError, match=r"L1Loss\(\): outputs must have a floating-point dtype"):
        L1Loss()(np.zeros(3, np.int64), np.zeros(3))
    with pytest.raises(TypeError, match=r"targets must be a real"):
        L1Loss()(np.zeros(3), np.array(["a", "b", "c"]))
    loss = SmoothL1Loss(reduction="none")
    loss(np.zeros((2, 2)), np.ones((2, 2)))
    with pytest.raises(TypeError, match=r"reduction='none' returns one loss per sample.*shape \(2, 2\)"):
        loss.backward()
    with pytest.raises(ValueError, match=r"reduction='none' needs grad_output as an ndarray of shape \(3,\)"):
        F.l1_loss_backward(np.zeros(3), np.ones(3), "none", grad_output=np.ones(2))


def test_huber_is_delta_times_smooth_l1_and_beta_zero_is_l1():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((5, 4)) * 3, rng.standard_normal((5, 4))
    for b in (0.4, 2.0):
        assert F.huber_loss(x, y, delta=b) == pytest.approx(b * F.smooth_l1_loss(x, y, beta=b), rel=1e-13)
    assert F.smooth_l1_loss(x, y, "sum", 0.0) == F.l1_loss(x, y, "sum")


class HuberWithoutTheClip(HuberLoss):
    """A plausible mistake: the linear part's gradient taken as d (the square's) instead of delta * sign(d)."""

    def backward(self, grad_output=1.0):
        s = self.saved_values
        return (s.outputs - s.targets) * grad_output / s.outputs.size


def test_the_comparison_and_gradcheck_catch_a_wrong_gradient():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 3)) * 3, rng.standard_normal((4, 3))
    broken = HuberWithoutTheClip()
    broken(x, y)
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.HuberLoss()(xt, torch.tensor(y)).backward()
    assert np.max(np.abs(broken.backward() - xt.grad.numpy())) > 1e-2
    assert not mdl.gradcheck(HuberWithoutTheClip(), x, y).passed
