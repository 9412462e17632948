"""The contract every built-in layer passes, offered for a user's own layer: :func:`check_layer`
(scikit-learn's ``check_estimator`` idea). The project's suite, tests/test_layer_contract.py, runs the
same rules on the built-in layers."""

from __future__ import annotations

import copy
import json
import os
import tempfile
from dataclasses import dataclass, field

import numpy as np

__all__ = ["check_layer", "ContractReport"]


@dataclass
class ContractReport:
    """The result of :func:`check_layer`: ``.passed``, ``.failures`` and a readable ``str``.

    Parameters
    ----------
    layer : str
        The checked layer's repr.
    results : list of (str, str)
        ``(rule, "")`` for a rule kept, ``(rule, what went wrong)`` for one broken.

    Examples
    --------
    >>> ContractReport("ReLU()", [("output shape and dtype", "")]).passed
    True
    """

    layer: str
    results: list = field(default_factory=list)

    @property
    def failures(self) -> list:
        """``[(rule, what went wrong)]`` of the rules broken."""
        return [(rule, why) for rule, why in self.results if why]

    @property
    def passed(self) -> bool:
        """Every rule kept."""
        return not self.failures

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        lines = [f"check_layer {self.layer}: {'PASSED' if self.passed else 'FAILED'}"]
        lines += [f"  {'ok  ' if not why else 'FAIL'} {rule}{'' if not why else ': ' + why}"
                  for rule, why in self.results]
        return "\n".join(lines)


def _fresh(layer):
    """A new instance from the layer's config, with its state: what ``mdl.load`` rebuilds."""
    new = type(layer)(**layer.get_config())
    new.load_state_dict(layer.state_dict())
    return new.train(layer.training)


def _run(layer, x, g=None):
    out = layer(x)
    g = np.ones_like(out) if g is None else g
    return out, layer.backward(g)


def _rule_output(layer, x):
    out, dx = _run(copy.deepcopy(layer), x)
    if not isinstance(out, np.ndarray) or out.dtype != x.dtype:
        return f"forward gave {type(out).__name__} {getattr(out, 'dtype', '')}, expected an array of {x.dtype}"
    if not isinstance(dx, np.ndarray) or dx.shape != x.shape or dx.dtype != x.dtype:
        return f"backward gave {getattr(dx, 'shape', dx)} {getattr(dx, 'dtype', '')}, expected {x.shape} {x.dtype}"
    return ""


def _rule_refuses_bad_upstream(layer, x):
    probe = copy.deepcopy(layer)
    out = probe(x)
    for bad, kind in ((np.ones(out.shape, np.float16 if out.dtype != np.float16 else np.float32), "dtype"),
                      (np.ones(out.shape + (1,), out.dtype), "shape")):
        grads = [p.grad.copy() for p in probe.parameters()]
        try:
            probe.backward(bad)
        except (TypeError, ValueError):
            if any(not np.array_equal(a, p.grad) for a, p in zip(grads, probe.parameters())):
                return f"a refused gradient of the wrong {kind} changed a parameter's .grad"
            continue
        return f"backward accepted an upstream gradient of the wrong {kind} (it must raise, never convert)"
    return ""


def _rule_before_forward(layer, x):
    try:
        _fresh(layer).backward(np.ones(1, x.dtype))
    except RuntimeError:
        return ""
    except Exception as exc:  # noqa: BLE001 - what a user's layer raises is the finding
        return f"backward before forward raised {type(exc).__name__}, expected RuntimeError"
    return "backward before forward raised nothing, expected RuntimeError"


def _rule_accumulates(layer, x):
    probe = copy.deepcopy(layer)
    probe.zero_grad()
    out, _ = _run(probe, x)
    once = [p.grad.copy() for p in probe.parameters()]
    probe(x)
    probe.backward(np.ones_like(out))
    if any(not np.allclose(p.grad, 2 * g, rtol=1e-5, atol=1e-6) for p, g in zip(probe.parameters(), once)):
        return "two backward calls did not add up in .grad (add into it, never assign)"
    return ""


def _rule_backward_params(layer, x):
    full, params_only = copy.deepcopy(layer), copy.deepcopy(layer)
    full.zero_grad()
    params_only.zero_grad()
    out = full(x)
    g = np.random.default_rng(0).standard_normal(out.shape).astype(out.dtype)
    full.backward(g)
    params_only(x)
    params_only.backward_params(g)
    for (name, a), b in zip(full.named_parameters(), params_only.parameters()):
        if not np.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-6):
            return f"backward_params (input_grad=False) gives another {name} gradient than backward"
    return ""


def _rule_state_and_config(layer, x):
    try:
        json.dumps(layer.get_config())
        twin = _fresh(layer).eval()
    except Exception as exc:  # noqa: BLE001
        return f"type(layer)(**layer.get_config()) with load_state_dict failed: {type(exc).__name__}: {exc}"
    probe = copy.deepcopy(layer).eval()
    if not np.array_equal(twin(x), probe(x)):
        return "a layer rebuilt from get_config() and state_dict() computes something else"
    return ""


def _rule_save_load(layer, x):
    from .io import load
    from .layers.registry import REGISTRY
    if REGISTRY.get(type(layer).__name__) is not type(layer):
        return "not registered: decorate the class with @minidl.register_layer so mdl.load can rebuild it"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "layer.npz")
        layer.save(path)
        loaded = load(path)
    if not np.array_equal(loaded(x), copy.deepcopy(layer).eval()(x)):
        return "the loaded layer computes something else in eval mode"
    return ""


def _rule_eval_keeps_nothing(layer, x):
    probe = copy.deepcopy(layer).eval()
    out = probe(x)
    try:
        probe.backward(np.ones_like(out))
    except RuntimeError:
        return ""
    return "a forward in eval mode kept a backward cache (save_for_backward keeps nothing in eval mode)"


def _rule_inputs_untouched(layer, x):
    before = x.copy()
    _run(copy.deepcopy(layer), x)
    return "" if np.array_equal(before, x) else "forward or backward modified its input in place"


def _rule_gradients(layer, x):
    from .modelcheck import check_model
    report = check_model(layer, x)
    return "" if report.passed else "wrong gradients:\n" + str(report)


_RULES = [("output shape and dtype", _rule_output), ("bad upstream gradient refused", _rule_refuses_bad_upstream),
          ("backward before forward: RuntimeError", _rule_before_forward),
          ("gradients add up in .grad", _rule_accumulates),
          ("backward_params gives backward's parameter gradients", _rule_backward_params),
          ("config and state dict rebuild it", _rule_state_and_config),
          ("save and load", _rule_save_load), ("eval mode keeps no cache", _rule_eval_keeps_nothing),
          ("inputs not modified", _rule_inputs_untouched), ("gradients (check_model, float64)", _rule_gradients)]


def check_layer(layer, x) -> ContractReport:
    """Check a layer against the contract every built-in layer passes.

    The rules: output and input gradient of the input's shape and dtype; an upstream gradient of
    another dtype or shape refused (TypeError/ValueError) without touching ``.grad``; backward
    before forward raises RuntimeError; parameter gradients add up over two backward calls and
    ``backward_params`` (``input_grad=False``) gives the same ones;
    ``type(layer)(**layer.get_config())`` plus ``load_state_dict`` rebuilds it; it is registered
    and ``mdl.save``/``mdl.load`` round-trip it; an eval-mode forward keeps no backward cache; the
    input is not modified; and :func:`minidl.check_model` passes on it at ``x``.

    Parameters
    ----------
    layer : Layer
        Your layer (left untouched: each rule works on a copy).
    x : ndarray
        An input it takes (its dtype is the one checked for the output and gradients).

    Returns
    -------
    ContractReport
        ``.passed``, ``.failures`` (``[(rule, why)]``); ``str()`` lists every rule.

    Shape
    -----
    ``x``: what ``layer.forward`` takes.

    Examples
    --------
    >>> import minidl as mdl
    >>> report = mdl.check_layer(mdl.layers.Dense(4, 3, rng=0), np.ones((2, 4), np.float32))
    >>> report.passed
    True
    """
    results = []
    for rule, check in _RULES:
        try:
            results.append((rule, check(layer, np.array(x, copy=True))))  # a rule may spoil its copy
        except Exception as exc:  # noqa: BLE001 - a rule that crashes is a finding, not the end of the check
            results.append((rule, f"{type(exc).__name__}: {' '.join(str(exc).split())}"))
    return ContractReport(repr(layer), results)
