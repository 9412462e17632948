"""Adagrad, Adamax, NAdam and RAdam against torch.optim: option grids over 30 steps in float64,
parameter groups, dtype, state dict round trips (resume bit for bit), bad hyper-parameters."""

import itertools
import json

import numpy as np
import pytest
from test_optim import make_params, run_minidl, run_torch, torch_copy
from test_optim_adaptive import _run_both

from minidl import optim
from minidl.parameter import Parameter

GRIDS = {
    "Adagrad": [dict(lr=0.05, lr_decay=d, weight_decay=w, initial_accumulator_value=a, eps=e)
                for d, w, a, e in itertools.product([0.0, 0.1], [0.0, 0.1], [0.0, 0.5], [1e-10, 0.1])],
    "Adamax": [dict(lr=0.05, betas=b, weight_decay=w, eps=e)
               for b, w, e in itertools.product([(0.9, 0.999), (0.3, 0.5)], [0.0, 0.1], [1e-8, 0.1])],
    # betas (0.9, 0.9): rho_t > 5 from step 5 on, so the 30 steps cover both branches
    "RAdam": [dict(lr=0.05, betas=b, weight_decay=w, decoupled_weight_decay=d, eps=e)
              for b, w, d, e in itertools.product([(0.9, 0.999), (0.9, 0.9)], [0.0, 0.1], [False, True], [1e-8, 0.1])],
    "NAdam": [dict(lr=0.05, betas=b, weight_decay=w, decoupled_weight_decay=d, momentum_decay=m)
              for b, w, d, m in itertools.product([(0.9, 0.999), (0.3, 0.5)], [0.0, 0.1], [False, True], [4e-3, 0.5])],
}
CASES = [(name, hyper) for name, grid in GRIDS.items() for hyper in grid]

#: per optimizer: (defaults, overrides of groups 1 and 2), and a configuration with every state entry
GROUPS = {
    "Adagrad": (dict(lr=0.05, lr_decay=0.01), [{"initial_accumulator_value": 0.3}, {"lr": 0.01, "weight_decay": 0.1}]),
    "Adamax": (dict(lr=0.05, weight_decay=0.1), [{"betas": (0.5, 0.9)}, {"eps": 0.1, "lr": 0.01}]),
    "RAdam": (dict(lr=0.05, betas=(0.9, 0.9)), [{"weight_decay": 0.1}, {"decoupled_weight_decay": True,
                                                                       "weight_decay": 0.1}]),
    "NAdam": (dict(lr=0.05, momentum_decay=0.1), [{"betas": (0.5, 0.9), "weight_decay": 0.1},
                                                  {"decoupled_weight_decay": True, "weight_decay": 0.1}]),
}
STATE = {
    "Adagrad": (dict(lr_decay=0.1, initial_accumulator_value=0.1), ["step", "sum"]),
    "Adamax": (dict(weight_decay=0.1), ["exp_avg", "exp_inf", "step"]),
    "RAdam": (dict(betas=(0.9, 0.9), weight_decay=0.1), ["exp_avg", "exp_avg_sq", "step"]),
    "NAdam": (dict(weight_decay=0.1, momentum_decay=0.1), ["exp_avg", "exp_avg_sq", "mu_product", "step"]),
}


@pytest.mark.parametrize("name,hyper", CASES, ids=[f"{n}-{i}" for n, g in GRIDS.items() for i in range(len(g))])
def test_matches_torch(name, hyper):
    torch = pytest.importorskip("torch")
    _run_both(torch, name, hyper)


@pytest.mark.parametrize("name", list(GROUPS))
def test_param_groups_match_torch(name):
    torch = pytest.importorskip("torch")
    defaults, per_group = GROUPS[name]

    def groups(ps):
        return [{"params": ps[:1]}] + [{"params": [p], **g} for p, g in zip(ps[1:], per_group)]

    opt, topt = _run_both(torch, name, defaults, groups=groups)
    for g, tg in zip(opt.param_groups, topt.param_groups):
        assert {k: g[k] for k in opt.defaults} == {k: tg[k] for k in opt.defaults}


@pytest.mark.parametrize("name", list(GROUPS))
def test_torch_defaults(name):
    torch = pytest.importorskip("torch")
    ours = getattr(optim, name)([Parameter(np.zeros(2))]).defaults
    theirs = getattr(torch.optim, name)([torch.nn.Parameter(torch.zeros(2))]).defaults
    assert ours == {k: theirs[k] for k in ours}


@pytest.mark.parametrize("name", list(GROUPS))
def test_float32_dtype_kept(name):
    torch = pytest.importorskip("torch")
    params = make_params(np.float32)
    tparams = torch_copy(torch, params)
    hyper = STATE[name][0]
    opt = getattr(optim, name)(params, **hyper)
    ours = run_minidl(params, opt, 10)
    theirs = run_torch(torch, tparams, getattr(torch.optim, name)(tparams, **hyper), 10)
    assert all(p.data.dtype == np.float32 for p in params)
    assert all(v.dtype == np.float32 for s in opt.state.values() for v in s.values() if isinstance(v, np.ndarray))
    for x, y in zip(ours[-1], theirs[-1]):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(STATE))
def test_state_dict_round_trip_through_json_resumes_bit_for_bit(name):
    hyper, names = STATE[name]
    ref = make_params()
    run_minidl(ref, getattr(optim, name)(ref, lr=0.01, **hyper), 12)
    params = make_params()
    opt = getattr(optim, name)(params, lr=0.01, **hyper)
    run_minidl(params, opt, 6)
    sd = opt.state_dict()
    assert sorted(sd["state"][0]) == names and sd["state"][0]["step"] == 6
    back = json.loads(json.dumps(sd, default=lambda a: a.tolist()))  # int keys become strings, tuples lists
    back["state"] = {k: {n: np.array(v) if isinstance(v, list) else v for n, v in s.items()}
                     for k, s in back["state"].items()}
    opt2 = getattr(optim, name)(params, lr=1.0)
    opt2.load_state_dict(back)
    assert opt2.state_dict()["param_groups"] == sd["param_groups"]
    run_minidl(params, opt2, 6, start=6)
    for a, b in zip(params, ref):
        np.testing.assert_array_equal(a.data, b.data)


@pytest.mark.parametrize("name", list(STATE))
def test_load_refuses_a_malformed_state_and_changes_nothing(name):
    params = make_params()
    opt = getattr(optim, name)(params, lr=0.01)
    run_minidl(params, opt, 2)
    before = opt.state_dict()
    entry = next(n for n in STATE[name][1] if n != "step")
    for mutate, match in [
        (lambda sd: sd["state"][0].pop(entry), "must have the entries"),
        (lambda sd: sd["state"][1].update(step=-1), r"step count of params\[1\] must be an int >= 0"),
        (lambda sd: sd["state"][2].update({entry: np.zeros(3)}), r"has shape \(3,\)"),
        (lambda sd: sd["param_groups"][0].update(eps=-1.0), r"eps must be a finite number >= 0"),
    ]:
        bad = opt.state_dict()
        bad["param_groups"][0]["lr"] = 0.5
        mutate(bad)
        with pytest.raises(ValueError, match=match):
            opt.load_state_dict(bad)
        after = opt.state_dict()
        assert after["param_groups"] == before["param_groups"]
        for i, s in before["state"].items():
            for k, v in s.items():
                np.testing.assert_array_equal(after["state"][i][k], v)


@pytest.mark.parametrize("name,kwargs,match", [
    ("Adagrad", dict(lr=-0.1), r"Adagrad: lr must be a finite number >= 0. Received: lr=-0.1"),
    ("Adagrad", dict(lr_decay=-1e-3), r"lr_decay must be a finite number >= 0. Received: lr_decay=-0.001"),
    ("Adagrad", dict(initial_accumulator_value=-1.0), r"initial_accumulator_value must be a finite number >= 0"),
    ("Adagrad", dict(eps=float("nan")), r"eps must be a finite number"),
    ("Adagrad", dict(weight_decay="0.1"), r"weight_decay must be a real number"),
    ("Adamax", dict(betas=(0.9, 1.0)), r"Adamax: betas\[1\] must be in \[0, 1\). Received: betas\[1\]=1.0"),
    ("Adamax", dict(betas=0.9), r"betas must be a pair of numbers in \[0, 1\)"),
    ("Adamax", dict(eps=-1e-8), r"eps must be a finite number >= 0"),
    ("Adamax", dict(weight_decay=float("inf")), r"weight_decay must be a finite number"),
    ("Adamax", dict(lr=1e39), r"not finite in the parameters' dtype float32"),
    ("RAdam", dict(betas=(-0.1, 0.9)), r"RAdam: betas\[0\] must be a finite number >= 0"),
    ("RAdam", dict(decoupled_weight_decay=1), r"decoupled_weight_decay must be a bool. Received: "),
    ("NAdam", dict(momentum_decay=-4e-3), r"NAdam: momentum_decay must be a finite number >= 0"),
    ("NAdam", dict(betas=(0.9, 1.5)), r"betas\[1\] must be in \[0, 1\)"),
    ("NAdam", dict(decoupled_weight_decay="yes"), r"decoupled_weight_decay must be a bool"),
])
def test_invalid_hyperparameters_raise(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        getattr(optim, name)([Parameter(np.zeros(2, np.float32))], **kwargs)


@pytest.mark.parametrize("name", list(STATE))
def test_a_non_finite_step_changes_nothing(name):
    q, p = Parameter(np.ones(2)), Parameter(np.zeros(4))
    opt = getattr(optim, name)([q, p], lr=0.1)
    q.grad[:] = 1.0
    p.grad[:] = 1.0
    opt.step()
    before, q_before = opt.state_dict(), q.data.copy()
    p.grad[2] = np.nan
    with pytest.raises(FloatingPointError, match=rf"{name}.step: the update of params\[1\] \(4,\) is not finite"):
        opt.step()
    np.testing.assert_array_equal(q.data, q_before)
    for k, v in before["state"][0].items():
        np.testing.assert_array_equal(opt.state[0][k], v)


def test_nadam_mu_product_is_checked_on_load():
    params = make_params()
    opt = optim.NAdam(params)
    run_minidl(params, opt, 2)
    before = opt.state[0]["mu_product"]
    assert 0 < before < 1
    for bad in (float("nan"), "0.8", None, True):
        sd = opt.state_dict()
        sd["state"][0]["mu_product"] = bad
        with pytest.raises(ValueError, match=r"NAdam.load_state_dict: mu_product of params\[0\] must be a finite"):
            opt.load_state_dict(sd)
    assert opt.state[0]["mu_product"] == before
