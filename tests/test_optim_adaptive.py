"""Adam, AdamW and RMSprop against torch.optim, every option combination, float64, 30 steps."""

import itertools
import json

import numpy as np
import pytest
from test_optim import make_params, run_minidl, run_torch, torch_copy
from test_optim_groups import assert_same_trajectory

from minidl import optim
from minidl.parameter import Parameter

ADAM = list(itertools.product(["Adam", "AdamW"], [False, True], [0.0, 0.1], [(0.9, 0.999), (0.3, 0.5)],
                              [1e-8, 0.1]))
RMSPROP = list(itertools.product([False, True], [0.0, 0.9], [0.0, 0.1], [0.99, 0.3]))

#: the largest |minidl - torch| over each test's 30 steps (for the report)
WORST: dict = {}


def _run_both(torch, name, hyper, steps=30, groups=None):
    params = make_params()
    tparams = torch_copy(torch, params)
    arg, targ = (params, tparams) if groups is None else (groups(params), groups(tparams))
    opt = getattr(optim, name)(arg, **hyper)
    topt = getattr(torch.optim, name)(targ, **hyper)
    ours, theirs = run_minidl(params, opt, steps), run_torch(torch, tparams, topt, steps)
    worst = assert_same_trajectory(ours, theirs)
    WORST[name] = max(WORST.get(name, 0.0), worst)
    assert not np.allclose(ours[-1][0], make_params()[0].data)  # the run moved the weights
    return opt, topt


@pytest.mark.parametrize("name,amsgrad,weight_decay,betas,eps", ADAM)
def test_adam_matches_torch(name, amsgrad, weight_decay, betas, eps):
    torch = pytest.importorskip("torch")
    _run_both(torch, name, dict(lr=0.05, betas=betas, eps=eps, weight_decay=weight_decay,
                                amsgrad=amsgrad))


@pytest.mark.parametrize("centered,momentum,weight_decay,alpha", RMSPROP)
def test_rmsprop_matches_torch(centered, momentum, weight_decay, alpha):
    torch = pytest.importorskip("torch")
    _run_both(torch, "RMSprop", dict(lr=0.01, alpha=alpha, eps=1e-8, weight_decay=weight_decay,
                                     momentum=momentum, centered=centered))


@pytest.mark.parametrize("name,defaults,per_group", [
    ("Adam", dict(lr=0.05, weight_decay=0.1), [{"amsgrad": True}, {"betas": (0.5, 0.9), "lr": 0.01}]),
    ("AdamW", dict(lr=0.05), [{"weight_decay": 0.0}, {"amsgrad": True, "eps": 0.1}]),
    ("RMSprop", dict(lr=0.01, momentum=0.9), [{"centered": True}, {"momentum": 0.0, "alpha": 0.5,
                                                                    "weight_decay": 0.1}]),
])
def test_param_groups_match_torch(name, defaults, per_group):
    torch = pytest.importorskip("torch")

    def groups(ps):
        return [{"params": ps[:1]}] + [{"params": [p], **g} for p, g in zip(ps[1:], per_group)]

    opt, topt = _run_both(torch, name, defaults, groups=groups)
    for g, tg in zip(opt.param_groups, topt.param_groups):
        assert {k: g[k] for k in opt.defaults} == {k: tg[k] for k in opt.defaults}


def test_torch_defaults():
    torch = pytest.importorskip("torch")
    p, tp = [Parameter(np.zeros(2))], [torch.nn.Parameter(torch.zeros(2))]
    for name in ("Adam", "AdamW", "RMSprop"):
        ours, theirs = getattr(optim, name)(p).defaults, getattr(torch.optim, name)(tp).defaults
        assert ours == {k: theirs[k] for k in ours}, name


def test_a_wrong_formula_is_caught():
    """The parity test can fail: Adam without bias correction (and with eps inside the square
    root's correction) drifts from torch by far more than 1e-12 within the 30 steps."""
    torch = pytest.importorskip("torch")

    class NoBiasCorrection(optim.Adam):
        def _update(self, data, g, hyper, state):
            new, state = super()._update(data, g, hyper, state)
            lr, eps = hyper["lr"], hyper["eps"]
            # p - lr * m / (sqrt(v) + eps): the textbook update without the corrections
            return data - lr * state["exp_avg"] / (np.sqrt(state["exp_avg_sq"]) + eps), state

    params = make_params()
    tparams = torch_copy(torch, params)
    ours = run_minidl(params, NoBiasCorrection(params, lr=0.05), 30)
    theirs = run_torch(torch, tparams, torch.optim.Adam(tparams, lr=0.05), 30)
    with pytest.raises(AssertionError):
        assert_same_trajectory(ours, theirs)


@pytest.mark.parametrize("name", ["Adam", "AdamW", "RMSprop"])
def test_float32_dtype_kept(name):
    torch = pytest.importorskip("torch")
    params = make_params(np.float32)
    tparams = torch_copy(torch, params)
    hyper = dict(weight_decay=1e-2) if name != "RMSprop" else dict(momentum=0.9, centered=True)
    opt = getattr(optim, name)(params, **hyper)
    ours = run_minidl(params, opt, 10)
    theirs = run_torch(torch, tparams, getattr(torch.optim, name)(tparams, **hyper), 10)
    assert all(p.data.dtype == np.float32 for p in params)
    assert all(v.dtype == np.float32 for s in opt.state.values() for v in s.values()
               if isinstance(v, np.ndarray))
    for x, y in zip(ours[-1], theirs[-1]):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,hyper,names", [
    ("Adam", dict(amsgrad=True), ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"]),
    ("AdamW", dict(), ["exp_avg", "exp_avg_sq", "step"]),
    ("RMSprop", dict(momentum=0.9, centered=True), ["grad_avg", "momentum_buffer", "square_avg", "step"]),
])
def test_state_dict_round_trip_through_json(name, hyper, names):
    ref = make_params()
    run_minidl(ref, getattr(optim, name)(ref, lr=0.01, **hyper), 12)
    params = make_params()
    opt = getattr(optim, name)(params, lr=0.01, **hyper)
    run_minidl(params, opt, 6)
    sd = opt.state_dict()
    assert sorted(sd["state"][0]) == names and sd["state"][0]["step"] == 6
    text = json.dumps(sd, default=lambda a: a.tolist())  # int keys become strings, tuples lists
    back = json.loads(text)
    back["state"] = {k: {n: v if n == "step" else np.array(v) for n, v in s.items()}
                     for k, s in back["state"].items()}
    opt2 = getattr(optim, name)(params, lr=1.0)
    opt2.load_state_dict(back)
    assert opt2.state_dict()["param_groups"] == sd["param_groups"]  # betas a tuple again
    run_minidl(params, opt2, 6, start=6)
    for a, b in zip(params, ref):
        np.testing.assert_array_equal(a.data, b.data)


def test_load_refuses_a_malformed_state_and_changes_nothing():
    params = make_params()
    opt = optim.Adam(params, lr=0.01)
    run_minidl(params, opt, 2)
    before = opt.state_dict()
    for mutate, match in [
        (lambda sd: sd["state"][0].pop("exp_avg"), r"must have the entries \['exp_avg', 'exp_avg_sq', 'step'\]"),
        (lambda sd: sd["state"][1].update(step=-1), "step count of params.1. must be an int >= 0"),
        (lambda sd: sd["state"][2].update(exp_avg=np.zeros(3)), r"exp avg 2 has shape \(3,\)"),
        (lambda sd: sd["param_groups"][0].update(betas=(0.9, 1.0)), r"betas\[1\] must be in \[0, 1\)"),
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
    ("Adam", dict(lr=-1e-3), r"lr must be a finite number >= 0. Received: lr=-0.001"),
    ("Adam", dict(betas=(1.0, 0.999)), r"betas\[0\] must be in \[0, 1\). Received: betas\[0\]=1.0"),
    ("Adam", dict(betas=(0.9, -0.1)), r"betas\[1\] must be a finite number >= 0"),
    ("Adam", dict(betas=0.9), r"betas must be a pair of numbers in \[0, 1\)"),
    ("AdamW", dict(eps=-1e-8), r"eps must be a finite number >= 0"),
    ("AdamW", dict(weight_decay=float("inf")), r"weight_decay must be a finite number"),
    ("AdamW", dict(amsgrad=1), r"amsgrad must be a bool"),
    ("RMSprop", dict(alpha=-0.1), r"alpha must be a finite number >= 0"),
    ("RMSprop", dict(momentum=float("nan")), r"momentum must be a finite number"),
    ("RMSprop", dict(centered="no"), r"centered must be a bool"),
    ("RMSprop", dict(lr=1e39), r"not finite in the parameters' dtype float32"),
])
def test_invalid_hyperparameters_raise(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        getattr(optim, name)([Parameter(np.zeros(2, np.float32))], **kwargs)


@pytest.mark.parametrize("name", ["Adam", "RMSprop"])
def test_a_non_finite_step_changes_nothing(name):
    """All or nothing, as SGD: a nan gradient in the second parameter leaves the first
    parameter and its state (computed first) untouched."""
    q, p = Parameter(np.ones(2)), Parameter(np.zeros(4))
    opt = getattr(optim, name)([q, p], lr=0.1)
    q.grad[:] = 1.0
    p.grad[:] = 1.0
    opt.step()
    before = opt.state_dict()
    q_before = q.data.copy()
    p.grad[2] = np.nan
    with pytest.raises(FloatingPointError, match=rf"{name}.step: the update of params\[1\] \(4,\) is not finite"):
        opt.step()
    np.testing.assert_array_equal(q.data, q_before)
    assert opt.state[0]["step"] == 1 and before["state"][0]["step"] == 1
    np.testing.assert_array_equal(opt.state[0][opt._state_required[1]],
                                  before["state"][0][opt._state_required[1]])


def test_update_is_in_place_and_repr():
    params = make_params()
    arrays = [p.data for p in params]
    run_minidl(params, optim.AdamW(params, amsgrad=True), 3)
    assert all(p.data is a for p, a in zip(params, arrays))
    assert repr(optim.Adam(params)) == ("Adam(lr=0.001, betas=(0.9, 0.999), eps=1e-08, "
                                        "weight_decay=0.0, amsgrad=False, maximize=False, num_params=3)")


@pytest.mark.parametrize("name,hyper", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(amsgrad=True)),
                                        ("AdamW", dict()), ("RMSprop", dict(momentum=0.9, centered=True)),
                                        ("NAdam", dict(weight_decay=0.1)), ("RAdam", dict()), ("Adagrad", dict()),
                                        ("Adamax", dict(maximize=True))])
def test_step_memory_is_one_copy_of_parameters_and_state(name, hyper):
    """The all-or-nothing step holds the new parameters and the new state until the commit, plus
    temporaries of the largest parameter; measured: Adam(amsgrad) 26.7 MiB peak for 5.8 MiB of
    float32 parameters and 17.3 MiB of state (params + state + 1 largest parameter)."""
    import tracemalloc

    rng = np.random.default_rng(0)
    params = [Parameter(rng.standard_normal(s).astype(np.float32)) for s in [(300, 300), (300,), (100, 300)]]
    opt = getattr(optim, name)(params, **hyper)
    for p in params:
        p.grad[...] = 0.01
    opt.step()
    state = sum(v.nbytes for s in opt.state.values() for v in s.values() if isinstance(v, np.ndarray))
    size, largest = sum(p.data.nbytes for p in params), max(p.data.nbytes for p in params)
    tracemalloc.start()
    try:
        opt.step()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert size + state <= peak <= size + state + 2 * largest + 65536
