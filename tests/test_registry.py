"""Issue 18: a layer registers itself, and save/load and ``minidl gradcheck`` read that one registry."""

from __future__ import annotations

import contextlib
import inspect
import re

import numpy as np
import pytest

import minidl as mdl
from minidl import cli, layers, losses
from minidl.gradcheck_grid import run_grid
from minidl.io import architecture
from minidl.layers import registry

#: Every built-in layer and loss class (the public Layer subclasses of minidl.layers and minidl.losses).
BUILTINS = sorted({cls for module in (layers, losses) for cls in vars(module).values()
                   if isinstance(cls, type) and issubclass(cls, layers.Layer)
                   and cls not in (layers.Layer, losses.Loss) and not cls.__name__.startswith("_")},
                  key=lambda cls: cls.__name__)


def test_one_registry_under_every_old_name():
    assert architecture.REGISTRY is registry.REGISTRY is mdl.io._REGISTRY
    assert mdl.register_layer is mdl.io.register_layer is architecture.register_layer is registry.register_layer


@pytest.mark.parametrize("cls", BUILTINS, ids=lambda cls: cls.__name__)
def test_every_builtin_registers_itself_in_its_own_file(cls):
    """No hand-kept list: the decorator sits on the class, in the file that defines it."""
    assert registry.REGISTRY[cls.__name__] is cls
    assert inspect.getsource(cls).startswith("@register_layer\nclass ")
    assert len(BUILTINS) >= 21  # the built-in layers and losses found (22 with SiLU)


def test_io_keeps_no_list_of_layers():
    source = inspect.getsource(architecture)
    assert not any(f"_layers.{cls.__name__}" in source for cls in BUILTINS)


@pytest.mark.parametrize("name", ["Sequential", "Graph"])
def test_the_container_names_stay_reserved(name):
    """The registry sits below minidl.graph (it cannot import it) and still keeps these names."""
    with pytest.raises(ValueError, match=f"'{name}' is already taken by minidl.graph.{name}.*Rename"):
        registry.register_layer(type(name, (layers.Layer,), {}))
    assert name not in registry.REGISTRY
    try:
        assert registry.register_layer(mdl.Sequential) is mdl.Sequential  # the container itself is no clash
    finally:
        registry.REGISTRY.pop("Sequential", None)


# ------------------------------------------------ the gradcheck grid reads the registry
@pytest.mark.parametrize("cls", BUILTINS, ids=lambda cls: cls.__name__)
def test_every_builtin_declares_examples_and_they_pass(cls):
    """The test that fails when a new layer forgets its examples (or gets its gradient wrong)."""
    cases = list(cls.examples(np.random.default_rng(0)))
    assert cases, f"{cls.__name__} declares no examples: minidl gradcheck cannot check it"
    for layer, inputs in cases:
        assert type(layer) is cls
        assert all(x.dtype == np.float64 for x in inputs if isinstance(x, np.ndarray) and x.dtype.kind == "f")
        assert all(p.data.dtype == np.float64 for p in layer.parameters())
        report = mdl.gradcheck(layer, *inputs)
        assert report.passed, "\n" + str(report)


def test_base_layer_declares_no_examples():
    assert list(layers.Layer.examples(np.random.default_rng(0))) == []


@pytest.mark.parametrize("cls, shape", [(layers.Dropout, (4, 6)), (layers.Dropout2D, (3, 4, 2, 3))])
def test_dropout_examples_drop_with_one_fixed_mask(cls, shape):
    """Checked honestly: some units dropped (not the identity), and the same ones at every forward."""
    layer, (x,) = next(cls.examples(np.random.default_rng(0)))
    first = layer(x)
    assert (first == 0).any() and (first != 0).any() and not np.allclose(first, x)
    np.testing.assert_array_equal(layer(x), first)


def _grid_names(result):
    return {report.layer.split("(")[0] for report in result.reports}


@contextlib.contextmanager
def _registered(cls):
    registry.register_layer(cls)
    try:
        yield cls
    finally:
        registry.REGISTRY.pop(cls.__name__, None)


class RegistryTestScale(layers.Layer):
    """y = factor * x, with examples; ``wrong`` scales its backward by 1.5."""

    def __init__(self, factor=2.0, wrong=False):
        super().__init__()
        self.factor, self.wrong = factor, wrong

    def forward(self, x):
        return self.factor * x

    def backward(self, grad_output):
        return (1.5 if self.wrong else 1.0) * self.factor * grad_output

    def get_config(self):
        return dict(factor=self.factor, wrong=self.wrong)

    def extra_repr(self):
        return f"factor={self.factor}, wrong={self.wrong}"

    @classmethod
    def examples(cls, rng):
        yield cls(3.0), (rng.standard_normal((2, 3)),)


class RegistryTestNoExamples(layers.Layer):
    def forward(self, x):
        return x

    def backward(self, grad_output):
        return grad_output


def test_run_grid_checks_every_builtin():
    result = run_grid()
    assert {cls.__name__ for cls in BUILTINS} <= _grid_names(result)
    assert all(r.passed for r in result.reports)
    assert not {cls.__name__ for cls in BUILTINS} & set(result.unchecked)


def test_run_grid_picks_up_a_registered_user_layer():
    with _registered(RegistryTestScale):
        result = run_grid()
    report = next(r for r in result.reports if r.layer == "RegistryTestScale(factor=3.0, wrong=False)")
    assert report.passed
    assert "RegistryTestScale" not in _grid_names(run_grid())  # unregistered: gone again


def test_run_grid_reports_a_wrong_gradient(capsys):
    class RegistryTestWrong(RegistryTestScale):
        @classmethod
        def examples(cls, rng):
            yield cls(3.0, wrong=True), (rng.standard_normal((2, 3)),)

    with _registered(RegistryTestWrong):
        result = run_grid()
        status = cli.main(["gradcheck"])
    report = next(r for r in result.reports if r.layer.startswith("RegistryTestWrong("))
    assert not report.passed and "FAIL" in str(report)
    out = capsys.readouterr().out
    assert status == 1 and "gradcheck RegistryTestWrong(factor=3.0, wrong=True): FAILED" in out
    assert re.search(r"\d+ passed, 1 failed", out)


def test_cli_lists_a_registered_layer_without_examples(capsys):
    with _registered(RegistryTestNoExamples):
        assert "RegistryTestNoExamples" in run_grid().unchecked
        assert cli.main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    assert "gradcheck RegistryTestNoExamples: not checked: no examples" in out
    assert re.search(r"\d+ passed, 0 failed, [1-9]\d* not checked", out)
    assert "RegistryTestNoExamples" not in run_grid().unchecked


def test_examples_that_yield_something_else_are_a_clear_error():
    class RegistryTestBadExamples(RegistryTestNoExamples):
        @classmethod
        def examples(cls, rng):
            yield cls(), rng.standard_normal(3)  # inputs not in a tuple

    with _registered(RegistryTestBadExamples), \
            pytest.raises(TypeError, match=r"run_grid: RegistryTestBadExamples.examples\(rng\) must yield"):
        run_grid()


def test_config_and_repr_come_from_the_constructor_declared_once(tmp_path):
    """get_config reads every constructor argument back from the attribute of its name (scikit-learn's
    get_params rule), so a user layer declares a hyper-parameter once and saves, loads and prints it."""
    @registry.register_layer
    class Scaled(layers.Layer):
        def __init__(self, factor=2.0, axes=(1, 2), bias=True, rng=None):
            super().__init__()
            self.factor, self.axes = factor, tuple(axes)
            self.bias = mdl.Parameter(np.zeros(1)) if bias else None

        def forward(self, x):
            return self.factor * x

    class Hidden(layers.Layer):
        def __init__(self, k=3):
            super().__init__()
            self._k = k

    try:
        layer = Scaled(0.5, bias=False)
        assert layer.get_config() == {"factor": 0.5, "axes": [1, 2], "bias": False}
        assert repr(layer) == "Scaled(factor=0.5, axes=(1, 2), bias=False)"
        mdl.save(mdl.Sequential(layer), tmp_path / "s.npz")
        assert repr(mdl.load(tmp_path / "s.npz")[0]) == repr(layer)
        assert Hidden().get_config() == {} and repr(Hidden()) == "Hidden()"  # not kept: rebuilt from its default
    finally:
        del registry.REGISTRY["Scaled"]
