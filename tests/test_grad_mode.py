"""mdl.enable_grad: gradients of an eval-mode model, as PyTorch gives them after model.eval()."""

import threading

import numpy as np
import pytest

import minidl as mdl
from minidl import layers

TOL = 1e-10


def _model(rng):
    return mdl.Sequential(
        layers.Conv2D(3, 4, 3, padding="same", rng=rng, dtype=np.float64),
        layers.BatchNorm2D(4, dtype=np.float64), layers.ReLU(), layers.MaxPool2D(2),
        layers.Dropout(0.5, rng=rng), layers.Flatten(),
        layers.Dense(4 * 3 * 3, 5, rng=rng, dtype=np.float64), layers.BatchNorm1D(5, dtype=np.float64),
        layers.Dense(5, 3, rng=rng, dtype=np.float64))


def test_eval_mode_gradients_match_torch_after_training_steps():
    """An input gradient (saliency, FGSM) and every parameter gradient of a trained model in eval
    mode: BatchNorm with its running statistics, Dropout the identity -- against torch's autograd."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    model = _model(rng)
    for _ in range(3):  # training-mode steps move the running statistics
        model(rng.standard_normal((6, 3, 6, 6)) * 2 + 1)
    theirs = mdl.interop.to_torch(model).double()
    model.eval()
    theirs.eval()
    x = rng.standard_normal((4, 3, 6, 6))
    g = rng.standard_normal((4, 3))
    with mdl.enable_grad():
        y = model(x)
        dx = model.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    yt.backward(torch.from_numpy(g))
    assert np.abs(y - yt.detach().numpy()).max() <= TOL
    assert np.abs(dx - xt.grad.numpy()).max() <= TOL
    ours = dict(model.named_parameters())
    for name, p in theirs.named_parameters():
        assert np.abs(ours[name].grad - p.grad.numpy()).max() <= TOL, name
    rm = model[1].running_mean.copy()
    with mdl.enable_grad():
        model(x)
    np.testing.assert_array_equal(model[1].running_mean, rm)  # eval mode updates nothing


def test_fgsm_step_changes_the_prediction_in_the_gradients_direction():
    """The use the tutorials make of it: the loss gradient with respect to the input."""
    rng = np.random.default_rng(1)
    model = _model(rng)
    model(rng.standard_normal((8, 3, 6, 6)))
    model.eval()
    loss = mdl.losses.SoftmaxCrossEntropy()
    x, y = rng.standard_normal((4, 3, 6, 6)), np.arange(4) % 3
    with mdl.enable_grad():
        before = loss(model(x), y)
        dx = model.backward(loss.backward())
    after = loss(model(x + 1e-3 * np.sign(dx)), y)
    assert after > before


def test_outside_the_block_eval_mode_keeps_nothing_and_says_how_to_get_gradients():
    model = _model(np.random.default_rng(2)).eval()
    x = np.ones((2, 3, 6, 6))
    with mdl.enable_grad():
        model(x)
    out = model(x)  # after the block: no caches
    assert all(layer._saved is None for _, layer in model.named_children())
    with pytest.raises(RuntimeError, match=r"eval mode.*with minidl.enable_grad\(\)"):
        model.backward(np.ones_like(out))


def test_the_block_belongs_to_its_thread():
    layer = layers.ReLU().eval()
    inside, checked = threading.Event(), threading.Event()
    seen = {}

    def other():
        inside.wait(5)
        seen["keeps"] = layer.keeps_caches
        checked.set()

    t = threading.Thread(target=other)
    t.start()
    with mdl.enable_grad():
        inside.set()
        checked.wait(5)
        assert layer.keeps_caches
    t.join(5)
    assert seen["keeps"] is False
    assert not layer.keeps_caches
