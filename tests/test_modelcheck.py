"""mdl.check_model: every layer's backward checked at the inputs a real batch gives it (issue 20)."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as mdl
from minidl import layers as L

RNG = np.random.default_rng


def _digits(n=16):
    from sklearn.datasets import load_digits
    d = load_digits()
    return (d.images[:n, None] / 16).astype(np.float32), d.target[:n]


class LeakyBackwardReLU(L.ReLU):
    """Forward is ReLU; backward lets 1 % through below 0: a wrong input gradient."""

    def backward(self, grad_output, *, input_grad=True):
        x = self.saved_values.x
        return np.where(x > 0, grad_output, 0.01 * grad_output)


class ScaledWeightGradDense(L.Dense):
    """dW off by 1 %: only the weight's gradient is wrong."""

    def backward(self, grad_output, *, input_grad=True):
        before = self.weight.grad.copy()
        dx = super().backward(grad_output, input_grad=input_grad)
        self.weight.grad[...] = before + 1.01 * (self.weight.grad - before)
        return dx


class ForgetsBiasConv(L.Conv2D):
    """The bias gradient is never added."""

    def backward(self, grad_output, *, input_grad=True):
        before = self.bias.grad.copy()
        dx = super().backward(grad_output, input_grad=input_grad)
        self.bias.grad[...] = before
        return dx


def _ten_layer_graph(broken_at=None, broken=None):
    """A 10-node Graph on digits: conv, relu, conv, relu, pool, conv, relu, flatten, dense, dense."""
    rng = RNG(0)
    parts = [L.Conv2D(1, 4, 3, padding=1, rng=rng), L.ReLU(), L.Conv2D(4, 4, 3, padding=1, rng=rng), L.ReLU(),
             L.MaxPool2D(2), L.Conv2D(4, 8, 3, padding=1, rng=rng), L.ReLU(), L.Flatten(),
             L.Dense(128, 32, rng=rng), L.Dense(32, 10, rng=rng)]
    if broken_at is not None:
        parts[broken_at] = broken(parts[broken_at])
    g = mdl.Graph()
    for i, layer in enumerate(parts):
        g.add(f"n{i}", layer)
    return g


def _same_config(cls):
    def make(layer):
        new = cls(**layer.get_config())
        new.load_state_dict(layer.state_dict())
        return new
    return make


def test_built_in_models_pass_on_a_real_batch():
    x, y = _digits(8)
    for build in (mdl.models.reference_cnn, mdl.models.digits_best):
        report = mdl.check_model(build(0), x, y, mdl.losses.SoftmaxCrossEntropy())
        assert report.passed and report.first_failure is None, str(report)
        assert report.rows[-1].path == "loss" and len(report.rows) >= 9
        assert "check_model: PASSED" in str(report)
    mnist = RNG(0).random((4, 1, 28, 28)).astype(np.float32)
    report = mdl.check_model(mdl.models.mnist_cnn(0), mnist, RNG(1).integers(0, 10, 4),
                             mdl.losses.SoftmaxCrossEntropy())
    assert report.passed, str(report)


@pytest.mark.parametrize("at, broken", [(1, _same_config(LeakyBackwardReLU)), (3, _same_config(LeakyBackwardReLU)),
                                        (6, _same_config(LeakyBackwardReLU)), (8, _same_config(ScaledWeightGradDense)),
                                        (9, _same_config(ScaledWeightGradDense)), (0, _same_config(ForgetsBiasConv)),
                                        (5, _same_config(ForgetsBiasConv))])
def test_a_broken_layer_anywhere_in_a_ten_layer_graph_is_the_first_failure(at, broken):
    x, _ = _digits(8)
    assert mdl.check_model(_ten_layer_graph(), x).passed
    report = mdl.check_model(_ten_layer_graph(at, broken), x)
    assert report.first_failure == f"n{at}", str(report)
    assert [row.path for row in report.rows if not row.passed] == [f"n{at}"]
    assert "FAILED: the first failing layer is 'n%d'" % at in str(report)


def test_kinks_are_left_out_not_failed():
    """ReLU after ReLU gets exact zeros, and max-pool windows of zeros tie: declared kinks, skipped."""
    x = np.zeros((4, 2, 6, 6), np.float32)
    x[:, :, ::2] = RNG(1).standard_normal((4, 2, 3, 6))
    model = mdl.Sequential(L.ReLU(), L.ReLU(), L.MaxPool2D(2), L.Flatten(), L.Dense(18, 3, rng=0))
    report = mdl.check_model(model, x)
    assert report.passed, str(report)
    kinks = {row.path: sum(t.kinks_skipped for t in row.tensors) for row in report.rows}
    assert kinks["0"] > 0 and kinks["1"] > 0 and kinks["2"] > 0


def test_training_mode_dropout_is_checked_with_its_mask_fixed():
    x, _ = _digits(8)
    model = mdl.Sequential(L.Flatten(), L.Dense(64, 32, rng=0), L.Dropout(0.5, rng=0), L.Dense(32, 10, rng=1))
    report = mdl.check_model(model, x)
    assert report.passed, str(report)
    assert report.rows[2].tensors and report.rows[2].tensors[0].checked > 0


def test_a_random_layer_that_cannot_be_fixed_is_reported_not_failed():
    class Noisy(L.Layer):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(0)

        def forward(self, x):
            return x + self.rng.standard_normal(x.shape)

        def backward(self, grad_output, *, input_grad=True):
            return grad_output

    report = mdl.check_model(mdl.Sequential(L.Tanh(), Noisy()), np.ones((2, 3)))
    assert report.passed and "random" in report.rows[1].note


def test_the_model_is_left_untouched():
    x, _ = _digits(4)
    model = mdl.models.reference_cnn(0)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    mdl.check_model(model, x)
    assert all(np.array_equal(before[k], v) and v.dtype == before[k].dtype for k, v in model.state_dict().items())
    assert all(not np.any(p.grad) for p in model.parameters())


def test_against_torch_layer_by_layer_names_the_layer_that_differs():
    pytest.importorskip("torch")
    x, _ = _digits(8)
    report = mdl.check_model(mdl.models.reference_cnn(0), x, against="torch")
    assert report.passed, str(report)
    assert {t.name for t in report.rows[0].tensors} == {"output", "input", "weight", "bias"}
    broken = mdl.check_model(_ten_layer_graph(6, _same_config(LeakyBackwardReLU)), x, against="torch")
    assert broken.first_failure == "n6", str(broken)
    with pytest.raises(ValueError, match="against must be None or 'torch'"):
        mdl.check_model(L.ReLU(), np.ones(3), against="tf")


def test_cli_gradcheck_of_a_saved_model_exits_1_naming_the_broken_layer(tmp_path, capsys):
    from minidl import cli
    from minidl.layers.registry import REGISTRY

    good = tmp_path / "good.npz"
    mdl.models.reference_cnn(0).save(good)
    assert cli.main(["gradcheck", str(good), "--batch-size", "4"]) == 0
    assert "check_model: PASSED" in capsys.readouterr().out

    broken_cls = mdl.register_layer(type("BrokenBackwardReLU", (LeakyBackwardReLU,), {"__module__": __name__}))
    try:
        parts = [layer for _, layer in mdl.models.reference_cnn(0).named_children()]
        parts[1] = broken_cls()  # the ReLU after the first convolution
        mdl.Sequential(*parts).save(tmp_path / "broken.npz")
        assert cli.main(["gradcheck", str(tmp_path / "broken.npz"), "--batch-size", "4"]) == 1
        assert "FAILED: the first failing layer is '1'" in capsys.readouterr().out
    finally:
        del REGISTRY["BrokenBackwardReLU"]
    assert cli.main(["gradcheck", str(tmp_path / "missing.npz")]) == 2
    assert "cannot read it" in capsys.readouterr().err


class CastsUpstream(L.ReLU):
    """Accepts an upstream gradient of any dtype and casts it (the rule before issue 11)."""

    def backward(self, grad_output, *, input_grad=True):
        return super().backward(np.asarray(grad_output, dtype=self.saved_values.x.dtype))


class AssignsGrad(L.Dense):
    """Assigns .grad instead of adding into it."""

    def backward(self, grad_output, *, input_grad=True):
        self.zero_grad()
        return super().backward(grad_output, input_grad=input_grad)


class ClobbersInput(L.ReLU):
    def forward(self, x):
        out = super().forward(x)
        np.maximum(x, 0, out=x)
        return out


class Upcasts(L.ReLU):
    def forward(self, x):
        return super().forward(x).astype(np.float64)


class Unregistered(L.Tanh):
    pass


@pytest.mark.parametrize("make, rule", [
    (lambda: LeakyBackwardReLU(), "gradients (check_model, float64)"),
    (lambda: CastsUpstream(), "bad upstream gradient refused"),
    (lambda: AssignsGrad(4, 3, rng=0), "gradients add up in .grad"),
    (lambda: ClobbersInput(), "inputs not modified"),
    (lambda: Upcasts(), "output shape and dtype"),
    (lambda: Unregistered(), "save and load"),
], ids=["wrong-gradient", "casts-upstream", "assigns-grad", "clobbers-input", "upcasts", "unregistered"])
def test_check_layer_names_the_rule_each_broken_layer_breaks(make, rule):
    layer = make()
    x = RNG(0).standard_normal((2, 4)).astype(np.float32)
    report = mdl.check_layer(layer, x)
    assert not report.passed and rule in [r for r, _ in report.failures], str(report)
    for good in (L.Dense(4, 3, rng=0), L.ReLU(), L.SiLU(), L.Dropout(0.3, rng=0), L.BatchNorm1D(4)):
        assert mdl.check_layer(good, x).passed, str(mdl.check_layer(good, x))


def test_the_contract_suites_broken_layers_are_each_caught():
    """The mutations tests/test_layer_contract.py injects: the gradient ones by check_model in a model,
    the contract ones (dtype, in place, casting, assigning .grad, backward_params) by check_layer."""
    import test_layer_contract as contract

    x = RNG(0).standard_normal((4, 5)).astype(np.float32)
    for broken in (contract.WeightGradOffByOnePercent(5, 3, rng=0), contract.LeakyBackwardReLU()):
        head = [L.Dense(5, 5, rng=1)] if isinstance(broken, L.ReLU) else []
        model = mdl.Sequential(L.Tanh(), *head, broken, L.Tanh())
        report = mdl.check_model(model, x)
        assert report.first_failure == str(len(head) + 1), str(report)
    for broken, rule in [(contract.OverwritingDense(5, 3, rng=0), "gradients add up in .grad"),
                         (contract.InPlaceReLU(), "inputs not modified"),
                         (contract.Float64Dense(5, 3, rng=0), "output shape and dtype"),
                         (contract.CastingReLU(), "bad upstream gradient refused"),
                         (contract.BiasForgottenInBackwardParams(5, 3, rng=0),
                          "backward_params gives backward's parameter gradients")]:
        report = mdl.check_layer(broken, x)
        assert rule in [r for r, _ in report.failures], str(report)
