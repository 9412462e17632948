"""Parameter groups (torch's param_groups), the common state format, and the old SGD format."""

import numpy as np
import pytest
from test_optim import make_params, run_minidl, run_torch, torch_copy

from minidl import optim
from minidl.parameter import Parameter


def assert_same_trajectory(ours, theirs, atol=1e-12):
    worst = 0.0
    for t, (a, b) in enumerate(zip(ours, theirs)):
        for k, (x, y) in enumerate(zip(a, b)):
            assert x.dtype == y.dtype
            np.testing.assert_allclose(x, y, rtol=0, atol=atol, err_msg=f"step {t} param {k}")
            worst = max(worst, float(np.max(np.abs(x - y))))
    return worst


def groups_of(params, extra=({"weight_decay": 0.0}, {"lr": 0.05, "momentum": 0.5})):
    """params[0] with the defaults, params[1] and params[2] in groups of their own."""
    return [{"params": [params[0]]}] + [{"params": [p], **e} for p, e in zip(params[1:], extra)]


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_groups_match_torch(nesterov):
    torch = pytest.importorskip("torch")
    params = make_params()
    tparams = torch_copy(torch, params)
    hyper = dict(lr=0.1, momentum=0.9, weight_decay=1e-2, nesterov=nesterov)
    opt = optim.SGD(groups_of(params), **hyper)
    topt = torch.optim.SGD(groups_of(tparams), **hyper)
    for g, tg in zip(opt.param_groups, topt.param_groups):
        assert {k: g[k] for k in opt.defaults} == {k: tg[k] for k in opt.defaults}
        assert g["params"][0] is params[opt.param_groups.index(g)]
    assert_same_trajectory(run_minidl(params, opt, 30), run_torch(torch, tparams, topt, 30))
    # the groups really differ: the same run with one group ends elsewhere
    single = make_params()
    run_minidl(single, optim.SGD(single, **hyper), 30)
    assert not np.allclose(single[2].data, params[2].data)


def test_param_groups_fall_back_to_defaults_and_add_param_group():
    torch = pytest.importorskip("torch")
    params = make_params()
    tparams = torch_copy(torch, params)
    opt = optim.SGD([{"params": params[:2], "weight_decay": 0.0}], lr=0.1, weight_decay=5e-4,
                    momentum=0.9)
    topt = torch.optim.SGD([{"params": tparams[:2], "weight_decay": 0.0}], lr=0.1,
                           weight_decay=5e-4, momentum=0.9)
    assert opt.param_groups[0]["weight_decay"] == 0.0 and opt.param_groups[0]["lr"] == 0.1
    assert opt.params == params[:2]
    run_minidl(params[:2], opt, 3)
    run_torch(torch, tparams[:2], topt, 3)
    opt.add_param_group({"params": [params[2]], "lr": 0.3})
    topt.add_param_group({"params": [tparams[2]], "lr": 0.3})
    assert opt.param_groups[1]["weight_decay"] == 5e-4 and opt.params == params
    assert_same_trajectory(run_minidl(params, opt, 10, start=3),
                           run_torch(torch, tparams, topt, 10, start=3))


def test_lr_property_with_groups():
    params = make_params()
    opt = optim.SGD(groups_of(params), lr=0.1)
    with pytest.raises(ValueError, match=r"different values \[0.1, 0.1, 0.05\].*param_groups\[i\]\['lr'\]"):
        opt.lr
    with pytest.raises(ValueError, match="param_groups"):
        opt.momentum
    assert opt.nesterov is False  # every group agrees
    opt.lr = 0.2
    assert [g["lr"] for g in opt.param_groups] == [0.2, 0.2, 0.2] and opt.lr == 0.2
    assert hasattr(opt, "lr") and not hasattr(opt, "betas")
    assert repr(opt) == ("SGD(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, "
                         "nesterov=False, maximize=False, num_params=3, param_groups=3)")


@pytest.mark.parametrize("groups,err,match", [
    (lambda p: [{"params": p[:2]}, {"params": [p[1], p[2]]}], ValueError,
     r"param_groups\[1\]\['params'\]\[0\] is already in param_groups\[0\]; a parameter may belong "
     "to one group only"),
    (lambda p: [{"params": p}, {"params": []}], ValueError,
     r"param_groups\[1\]\['params'\] is empty"),
    (lambda p: [{"params": p, "lrr": 0.1}], ValueError,
     r"param_groups\[0\] must have 'params' and only the keys \['lr', 'momentum', 'dampening', "
     r"'weight_decay', 'nesterov', 'maximize'\]. Received: keys \['params', 'lrr'\] \(unknown: \['lrr'\]\)"),
    (lambda p: [{"lr": 0.1}], ValueError, r"must have 'params'"),
    (lambda p: [{"params": p[:1]}, p[1]], TypeError, r"mixes group dicts and single parameters"),
    (lambda p: [{"params": [p[0], p[0]]}], ValueError,
     r"param_groups\[0\]\['params'\]\[1\] is the same Parameter as param_groups\[0\]\['params'\]\[0\]"),
    (lambda p: [{"params": [p[0], np.zeros(2)]}], TypeError,
     r"param_groups\[0\]\['params'\]\[1\] must be a Parameter. Received: ndarray"),
    (lambda p: [{"params": p, "momentum": -0.5}], ValueError,
     r"SGD: param_groups\[0\]: momentum must be a finite number >= 0. Received: momentum=-0.5"),
    (lambda p: [{"params": p, "nesterov": True}], ValueError, "Nesterov momentum requires"),
    (lambda p: {"params": p}, TypeError, "Wrap it in a list"),
])
def test_bad_groups_raise(groups, err, match):
    with pytest.raises(err, match=match):
        optim.SGD(groups(make_params()), lr=0.1)


def test_add_param_group_refuses_and_changes_nothing():
    params = make_params()
    opt = optim.SGD(params[:2], lr=0.1)
    with pytest.raises(ValueError, match=r"is already in param_groups\[0\]"):
        opt.add_param_group({"params": [params[2], params[0]]})
    with pytest.raises(ValueError, match="lr must be a finite number"):
        opt.add_param_group({"params": [params[2]], "lr": -1.0})
    assert len(opt.param_groups) == 1 and opt.params == params[:2]
    opt.add_param_group({"params": params[2]})  # a single Parameter is accepted, as torch
    assert opt.params == params


def test_a_bad_hyper_parameter_set_in_a_group_is_refused_at_step():
    params = make_params()
    opt = optim.SGD(params, lr=0.1)
    opt.param_groups[0]["lr"] = float("nan")
    for p in params:
        p.grad[...] = 1.0
    before = [p.data.copy() for p in params]
    with pytest.raises(ValueError, match=r"SGD.step: param_groups\[0\]: lr must be a finite number"):
        opt.step()
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.data, b)


def test_state_dict_with_groups_round_trip_and_mismatch():
    params = make_params()
    opt = optim.SGD(groups_of(params), lr=0.1, momentum=0.9)
    run_minidl(params, opt, 4)
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1], [2]]
    assert sd["param_groups"][2]["lr"] == 0.05 and sd["param_groups"][2]["momentum"] == 0.5
    again = optim.SGD(groups_of(make_params(), extra=({}, {})), lr=1.0)
    again.load_state_dict(sd)
    assert again.state_dict()["param_groups"] == sd["param_groups"]
    flat = optim.SGD(make_params(), lr=0.1)
    with pytest.raises(ValueError, match="the state has 3 parameter groups but this optimizer has 1"):
        flat.load_state_dict(sd)
    p = make_params()
    two = optim.SGD([{"params": p[:2]}, {"params": p[2:]}], lr=0.1)
    other = optim.SGD([{"params": p[:1]}, {"params": p[1:]}], lr=0.1)
    with pytest.raises(ValueError, match=r"param_groups\[0\] holds parameters \[0, 1\] but this "
                                         r"optimizer's group 0 holds \[0\]"):
        other.load_state_dict(two.state_dict())


def test_sgd_loads_the_old_flat_state_format():
    """Checkpoints written before param groups (lr, momentum, ..., momentum_buffers) still resume."""
    hyper = dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-2)
    ref = make_params()
    run_minidl(ref, optim.SGD(ref, **hyper), 8)
    params = make_params()
    opt = optim.SGD(params, **hyper)
    run_minidl(params, opt, 4)
    old = {**hyper, "nesterov": False, "num_params": 3,
           "momentum_buffers": {str(i): b.copy() for i, b in opt.momentum_buffers.items()}}
    opt2 = optim.SGD(params, lr=1.0)
    opt2.load_state_dict(old)
    assert opt2.lr == 0.05 and opt2.dampening == 0.1
    run_minidl(params, opt2, 4, start=4)
    for a, b in zip(params, ref):
        np.testing.assert_array_equal(a.data, b.data)


def test_momentum_buffers_is_a_live_view_of_the_state():
    p = Parameter(np.ones(3))
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    assert opt.momentum_buffers == {} and len(opt.momentum_buffers) == 0
    p.grad[:] = 1.0
    opt.step()
    assert list(opt.momentum_buffers) == [0] and opt.momentum_buffers[0] is opt.state[0]["momentum_buffer"]
    opt.momentum_buffers.clear()
    assert opt.state == {0: {}}
