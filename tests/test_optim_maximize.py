"""torch's ``maximize`` on every optimizer: parity of the whole trajectory, old state dicts."""

import inspect

import numpy as np
import pytest
from test_optim import fake_grad, make_params, run_minidl
from test_optim_adaptive import _run_both

from minidl import optim
from minidl.parameter import Parameter

#: one configuration per optimizer that exercises its state (momentum, weight decay, ...)
CONFIGS = [
    ("SGD", dict(lr=0.005, momentum=0.9, weight_decay=0.1)),  # ascent on 0.1 x^3 diverges faster
    ("SGD", dict(lr=0.005, momentum=0.9, nesterov=True)),
    ("Adam", dict(lr=0.05, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.05)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.05, lr_decay=0.1, weight_decay=0.1, initial_accumulator_value=0.1)),
    ("Adamax", dict(lr=0.05, weight_decay=0.1)),
    ("RAdam", dict(lr=0.05, betas=(0.9, 0.9), weight_decay=0.1, decoupled_weight_decay=True)),
    ("NAdam", dict(lr=0.05, weight_decay=0.1, momentum_decay=0.1)),
]


@pytest.mark.parametrize("name,hyper", CONFIGS)
def test_maximize_matches_torch(name, hyper):
    torch = pytest.importorskip("torch")
    opt, _ = _run_both(torch, name, {**hyper, "maximize": True})
    assert opt.maximize is True


@pytest.mark.parametrize("name,hyper", CONFIGS)
def test_maximize_is_the_rule_on_the_negated_gradient(name, hyper):
    """maximize=True with gradient g is, bit for bit, maximize=False with -g (weight decay and
    all state included), and it moves the weights differently from minimising."""
    up, neg, down = make_params(), make_params(), make_params()
    opts = [getattr(optim, name)(ps, **hyper, maximize=m) for ps, m in [(up, True), (neg, False), (down, False)]]
    for t in range(5):
        for ps, opt, sign in zip((up, neg, down), opts, (1, -1, 1)):
            opt.zero_grad()
            for k, p in enumerate(ps):
                p.grad += sign * fake_grad(p.data, t, k)
            opt.step()
    for a, b, c in zip(up, neg, down):
        np.testing.assert_array_equal(a.data, b.data)
        assert not np.allclose(a.data, c.data)


@pytest.mark.parametrize("name,hyper", CONFIGS)
def test_a_state_dict_saved_without_maximize_loads_as_minimize(name, hyper):
    """State dicts (and Trainer checkpoints) written before ``maximize`` existed have no such key:
    they load with maximize=False, as torch's ``setdefault`` does."""
    params = make_params()
    opt = getattr(optim, name)(params, **hyper)
    run_minidl(params, opt, 3)
    sd = opt.state_dict()
    for g in sd["param_groups"]:
        del g["maximize"]
    fresh = getattr(optim, name)(params, **hyper, maximize=True)
    fresh.load_state_dict(sd)
    assert fresh.maximize is False and fresh.state_dict()["param_groups"] == opt.state_dict()["param_groups"]


@pytest.mark.parametrize("name", sorted({name for name, _ in CONFIGS}))
def test_maximize_must_be_a_bool(name):
    with pytest.raises(ValueError, match=rf"{name}: maximize must be a bool. Received: maximize=1"):
        getattr(optim, name)([Parameter(np.zeros(2))], lr=0.1, maximize=1)
    opt = getattr(optim, name)([{"params": [Parameter(np.zeros(2))], "maximize": True}], lr=0.1)
    assert opt.param_groups[0]["maximize"] is True
    kind = inspect.signature(getattr(optim, name)).parameters["maximize"].kind
    assert kind is inspect.Parameter.KEYWORD_ONLY  # as in torch (RMSprop's is after capturable, foreach)
