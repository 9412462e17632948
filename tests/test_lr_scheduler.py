"""The learning-rate schedules against torch.optim.lr_scheduler: 50 epochs, two groups, 1e-12."""

import json
import math
import warnings

import numpy as np
import pytest

from minidl import optim
from minidl.parameter import Parameter
from minidl.train import checkpoint

EPOCHS = 50
#: metrics for ReduceLROnPlateau: improvements, plateaus, a nan, ties
METRICS = [1.0, 0.9, 0.9, 0.95, 0.9, 0.89999, 0.8, 0.8, 0.8, 0.8, 0.8, float("nan"), 0.7, 0.75,
           0.76, 0.7, 0.69, 0.7, 0.7, 0.7] * 3

SCHEDULES = [
    ("StepLR", dict(step_size=7, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[30, 5, 20, 20], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.93)),
    ("LinearLR", dict()),
    ("LinearLR", dict(start_factor=0.1, end_factor=0.6, total_iters=30)),
    ("CosineAnnealingLR", dict(T_max=50)),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=0.01)),  # past T_max: the lr rises again
    ("OneCycleLR", dict(max_lr=[0.5, 0.2], total_steps=EPOCHS)),
    ("OneCycleLR", dict(max_lr=1.0, epochs=5, steps_per_epoch=10, pct_start=0.25,
                        anneal_strategy="linear", three_phase=True, div_factor=10.0)),
    ("LambdaLR", dict(lr_lambda=lambda e: 0.9 ** e)),
    ("LambdaLR", dict(lr_lambda=[lambda e: 1 / (e + 1), lambda e: max(0.0, 1 - e / 30)])),
    ("MultiplicativeLR", dict(lr_lambda=lambda e: 0.95 if e % 3 else 1.07)),
    ("ConstantLR", dict()),
    ("ConstantLR", dict(factor=0.3, total_iters=12)),
    ("PolynomialLR", dict()),
    ("PolynomialLR", dict(total_iters=40, power=2.5)),
    ("CosineAnnealingWarmRestarts", dict(T_0=7)),
    ("CosineAnnealingWarmRestarts", dict(T_0=3, T_mult=2, eta_min=0.005)),
    ("CyclicLR", dict(base_lr=0.01, max_lr=[0.1, 0.05], step_size_up=4)),
    ("CyclicLR", dict(base_lr=[0.02, 0.01], max_lr=0.2, step_size_up=3, step_size_down=5, mode="triangular2",
                      base_momentum=[0.85, 0.7], max_momentum=0.95)),
    ("CyclicLR", dict(base_lr=0.001, max_lr=0.1, step_size_up=6, mode="exp_range", gamma=0.97)),
    ("CyclicLR", dict(base_lr=0.001, max_lr=0.1, step_size_up=5, scale_fn=lambda x: 1 / x, scale_mode="cycle",
                      cycle_momentum=False)),
    ("CyclicLR", dict(base_lr=0.001, max_lr=0.1, step_size_up=5, scale_fn=lambda t: 0.99 ** t,
                      scale_mode="iterations")),
    ("ReduceLROnPlateau", dict(patience=2, factor=0.5)),
    ("ReduceLROnPlateau", dict(mode="max", patience=1, threshold=0.05, threshold_mode="abs",
                               cooldown=2, min_lr=[0.02, 0.0])),
    ("ReduceLROnPlateau", dict(patience=0, factor=0.5, min_lr=0.009, eps=1e-3)),
]

WORST: dict = {}


def _groups(make, momentum=0.9):
    second = {"params": [make(np.zeros(3))], "lr": 0.03}
    if momentum is not None:
        second["momentum"] = momentum
    return [{"params": [make(np.zeros(2))], "lr": 0.1}, second]


def _drive(opt, sched, name, steps, opt_step=None):
    """The lrs (and momentums) of every epoch, as the optimizer sees them, then step."""
    lrs, moms = [], []
    for epoch in range(steps):
        lrs.append([g["lr"] for g in opt.param_groups] + list(sched.get_last_lr()))
        moms.append([g.get("momentum", g.get("betas", (None,))[0]) for g in opt.param_groups])
        if opt_step:
            opt_step()
        if name == "ReduceLROnPlateau":
            sched.step(-METRICS[epoch] if sched.mode == "max" else METRICS[epoch])
        else:
            sched.step()
    return np.array(lrs), moms


def _pair(torch, name, kwargs, opt_name="SGD"):
    momentum = 0.9 if opt_name == "SGD" else None
    opt = getattr(optim, opt_name)(_groups(Parameter, momentum), lr=0.1)
    tparams = _groups(lambda a: torch.nn.Parameter(torch.from_numpy(a)), momentum)
    topt = getattr(torch.optim, opt_name)(tparams, lr=0.1)
    return (opt, getattr(optim, name)(opt, **kwargs),
            topt, getattr(torch.optim.lr_scheduler, name)(topt, **kwargs))


@pytest.mark.parametrize("name,kwargs", SCHEDULES)
def test_schedule_matches_torch_over_50_epochs(name, kwargs):
    torch = pytest.importorskip("torch")
    opt, sched, topt, tsched = _pair(torch, name, kwargs)
    ours, our_moms = _drive(opt, sched, name, EPOCHS)
    theirs, their_moms = _drive(topt, tsched, name, EPOCHS, opt_step=topt.step)
    np.testing.assert_array_equal(ours, theirs)  # bit for bit (the brief asks 1e-12)
    assert our_moms == their_moms
    WORST[name] = max(WORST.get(name, 0.0), float(np.abs(ours - theirs).max()))
    assert len(set(map(tuple, ours))) > (1 if name == "ConstantLR" else 2), "the schedule must change the lr"
    assert sched.last_epoch == tsched.last_epoch


def test_one_cycle_cycles_adam_betas_and_stops_at_total_steps():
    torch = pytest.importorskip("torch")
    opt, sched, topt, tsched = _pair(torch, "OneCycleLR", dict(max_lr=0.01, total_steps=20),
                                     opt_name="Adam")
    ours, our_moms = _drive(opt, sched, "OneCycleLR", 20)
    theirs, their_moms = _drive(topt, tsched, "OneCycleLR", 20, opt_step=topt.step)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    assert our_moms == their_moms and our_moms[0] == [0.95, 0.95] and min(m[0] for m in our_moms) == 0.85
    assert opt.param_groups[0]["betas"][1] == 0.999
    with pytest.raises(ValueError, match=r"step 21 is past total_steps=20"):
        sched.step()
    assert sched.last_epoch == 20  # unchanged
    with pytest.raises(ValueError, match="cycle_momentum=True needs an optimizer with a momentum"):
        no = optim.SGD([Parameter(np.zeros(1))], lr=0.1)
        no.defaults = {"lr": 0.1, "dampening": 0.0}
        optim.OneCycleLR(no, max_lr=1.0, total_steps=5)
    optim.OneCycleLR(optim.Adam([Parameter(np.zeros(1))]), 1.0, 5, cycle_momentum=False)


def test_cosine_recursive_form_stays_on_the_closed_form():
    opt = optim.SGD([Parameter(np.zeros(1))], lr=0.1)
    sched = optim.CosineAnnealingLR(opt, T_max=12, eta_min=0.001)
    for e in range(1, EPOCHS):
        sched.step()
        closed = 0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * e / 12)) / 2
        assert abs(opt.lr - closed) < 1e-15


def _through_checkpoint(state):
    arrays: dict = {}
    return checkpoint._unflatten(json.loads(json.dumps(checkpoint._flatten(state, "s", arrays))), arrays)


@pytest.mark.parametrize("name,kwargs", SCHEDULES)
def test_state_dict_resumes_the_sequence(name, kwargs):
    """A scheduler rebuilt from state_dict() (with the optimizer's own state) continues the
    sequence exactly, as a resumed Trainer run does."""
    def build():
        opt = optim.SGD(_groups(Parameter), lr=0.1)
        return opt, getattr(optim, name)(opt, **kwargs)

    opt, sched = build()
    ref, _ = _drive(opt, sched, name, EPOCHS)
    opt, sched = build()
    _drive(opt, sched, name, 20)
    state, opt_state = sched.state_dict(), opt.state_dict()
    opt2, sched2 = build()
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(_through_checkpoint(state))  # JSON, as in the Trainer's checkpoints
    assert sched2.state_dict() == state
    lrs, _ = _drive(opt2, sched2, name, EPOCHS - 20) if name != "ReduceLROnPlateau" else (None, None)
    if lrs is None:  # the metric sequence is indexed by epoch: continue from epoch 20
        rest = []
        for epoch in range(20, EPOCHS):
            rest.append([g["lr"] for g in opt2.param_groups] + sched2.get_last_lr())
            sched2.step(-METRICS[epoch] if sched2.mode == "max" else METRICS[epoch])
        lrs = np.array(rest)
    np.testing.assert_array_equal(lrs, ref[20:])


def test_steplr_loads_the_old_state_format():
    opt = optim.SGD([Parameter(np.zeros(1))], lr=1.0)
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    sched.load_state_dict({"step_size": 2, "gamma": 0.5, "base_lr": 1.0, "last_epoch": 3,
                           "last_lr": 0.5})
    assert sched.last_epoch == 3 and sched.get_last_lr() == [0.5] and sched.base_lrs == [1.0]
    opt.lr = 0.5
    sched.step()
    assert opt.lr == 0.25


@pytest.mark.parametrize("build,err,match", [
    (lambda o: optim.MultiStepLR(o, milestones=[3, -1]), ValueError, r"milestones\[1\] must be an int >= 0"),
    (lambda o: optim.MultiStepLR(o, milestones=3), ValueError, "milestones must be a list"),
    (lambda o: optim.ExponentialLR(o, gamma=float("nan")), ValueError, "gamma must be a finite number"),
    (lambda o: optim.LinearLR(o, start_factor=0.0), ValueError, r"start_factor must be in \(0, 1\]"),
    (lambda o: optim.LinearLR(o, end_factor=1.5), ValueError, r"end_factor in \[0, 1\]"),
    (lambda o: optim.LinearLR(o, total_iters=0), ValueError, "total_iters must be an int >= 1"),
    (lambda o: optim.CosineAnnealingLR(o, T_max=0), ValueError, "T_max must be an int >= 1"),
    (lambda o: optim.CosineAnnealingLR(o, T_max=5, eta_min=-1), ValueError, "eta_min must be a finite"),
    (lambda o: optim.OneCycleLR(o, max_lr=1.0), ValueError, "pass total_steps, or both epochs and steps_per_epoch"),
    (lambda o: optim.OneCycleLR(o, max_lr=[1.0, 2.0], total_steps=5), ValueError, "max_lr must be a list of 1"),
    (lambda o: optim.OneCycleLR(o, max_lr=1.0, total_steps=5, pct_start=1.5), ValueError,
     r"pct_start must be in \[0, 1\]"),
    (lambda o: optim.OneCycleLR(o, max_lr=1.0, total_steps=10, pct_start=0.1), ValueError, "a phase of zero steps"),
    (lambda o: optim.OneCycleLR(o, max_lr=1.0, total_steps=5, anneal_strategy="exp"), ValueError, "'cos' or 'linear'"),
    (lambda o: optim.OneCycleLR(o, max_lr=1.0, total_steps=5, div_factor=0), ValueError, "must be > 0"),
    (lambda o: optim.LambdaLR(o, lr_lambda=0.5), TypeError, "LambdaLR: lr_lambda must be a function"),
    (lambda o: optim.LambdaLR(o, lr_lambda=[abs, abs]), ValueError, "or a list of 1 .one per parameter group"),
    (lambda o: optim.LambdaLR(o, lr_lambda=lambda e: "x"), TypeError, r"lr_lambda\[0\]\(0\) must return a number"),
    (lambda o: optim.MultiplicativeLR(o, lr_lambda=[None]), TypeError, "MultiplicativeLR: lr_lambda must be"),
    (lambda o: optim.ConstantLR(o, factor=0.0), ValueError, r"ConstantLR: factor must be in \(0, 1\]"),
    (lambda o: optim.ConstantLR(o, factor=1.5), ValueError, r"factor must be in \(0, 1\]"),
    (lambda o: optim.ConstantLR(o, total_iters=2.0), ValueError, "total_iters must be an int >= 1"),
    (lambda o: optim.PolynomialLR(o, total_iters=0), ValueError, "PolynomialLR: total_iters must be an int >= 1"),
    (lambda o: optim.PolynomialLR(o, power=-1.0), ValueError, "power must be a finite number >= 0"),
    (lambda o: optim.CosineAnnealingWarmRestarts(o, T_0=0), ValueError, "T_0 must be an int >= 1"),
    (lambda o: optim.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=1.5), ValueError, "T_mult must be an int >= 1"),
    (lambda o: optim.CosineAnnealingWarmRestarts(o, T_0=5, eta_min=-0.1), ValueError, "eta_min must be a finite"),
    (lambda o: optim.CyclicLR(o, 0.1, 1.0, mode="sine"), ValueError, r"CyclicLR: mode must be one of \['triangular"),
    (lambda o: optim.CyclicLR(o, 0.1, 1.0, scale_fn=lambda x: 1.0, scale_mode="epoch"), ValueError,
     "scale_mode must be 'cycle' or 'iterations'"),
    (lambda o: optim.CyclicLR(o, 0.1, 1.0, scale_fn=0.5), TypeError, "scale_fn must be a function"),
    (lambda o: optim.CyclicLR(o, 0.1, 1.0, step_size_up=0), ValueError, "step_size_up must be an int >= 1"),
    (lambda o: optim.CyclicLR(o, 0.1, 1.0, step_size_down=0), ValueError, "step_size_down must be an int >= 1"),
    (lambda o: optim.CyclicLR(o, [0.1, 0.2], 1.0), ValueError, "base_lr must be a list of 1"),
    (lambda o: optim.CyclicLR(o, 0.1, float("inf")), ValueError, "max_lr must be a finite number"),
    (lambda o: optim.CyclicLR(optim.SGD([Parameter(np.zeros(1))], lr=0.1, momentum=0.9), 0.1, 1.0,
                              cycle_momentum="yes"), ValueError, "cycle_momentum must be a bool"),
    (lambda o: optim.ReduceLROnPlateau(o, factor=1.0), ValueError, "factor must be < 1"),
    (lambda o: optim.ReduceLROnPlateau(o, mode="up"), ValueError, "mode must be 'min' or 'max'"),
    (lambda o: optim.ReduceLROnPlateau(o, threshold_mode="x"), ValueError, "threshold_mode must be"),
    (lambda o: optim.ReduceLROnPlateau(o, min_lr=[0.1, 0.2]), ValueError, "min_lr must be a list of 1"),
    (lambda o: optim.ReduceLROnPlateau(o, patience=-1), ValueError, "patience must be an int >= 0"),
    (lambda o: optim.ReduceLROnPlateau(object()), TypeError, "optimizer must have an lr attribute"),
])
def test_invalid_schedules_raise(build, err, match):
    with pytest.raises(err, match=match):
        build(optim.SGD([Parameter(np.zeros(1))], lr=0.1))


def test_torch_rejects_what_we_reject():
    """Spot checks that the refusals above mirror torch's (where torch checks at all)."""
    torch = pytest.importorskip("torch")
    topt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    for build in (lambda: torch.optim.lr_scheduler.LinearLR(topt, start_factor=0.0),
                  lambda: torch.optim.lr_scheduler.ReduceLROnPlateau(topt, factor=1.0),
                  lambda: torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=1.0)):
        with pytest.raises(ValueError):
            build()


def test_load_state_dict_refuses_a_malformed_state():
    opt = optim.SGD([Parameter(np.zeros(1))], lr=0.1)
    sched = optim.CosineAnnealingLR(opt, T_max=5)
    sched.step()
    before = sched.state_dict()
    for bad in ({}, {**before, "T_max": 0}, {**before, "base_lrs": [0.1, 0.2]},
                {**before, "last_epoch": -3}):
        with pytest.raises(ValueError, match="CosineAnnealingLR.load_state_dict"):
            sched.load_state_dict(bad)
    assert sched.state_dict() == before
    plateau = optim.ReduceLROnPlateau(opt)
    with pytest.raises(ValueError, match="ReduceLROnPlateau.load_state_dict: expected a dict"):
        plateau.load_state_dict(before)


def test_a_group_added_after_the_scheduler_is_refused():
    opt = optim.SGD([Parameter(np.zeros(1))], lr=0.1)
    sched = optim.StepLR(opt, step_size=1)
    opt.add_param_group({"params": [Parameter(np.zeros(1))]})
    with pytest.raises(RuntimeError, match="has 2 parameter groups but had 1"):
        sched.step()


def test_no_warning_and_repr():
    opt = optim.SGD([Parameter(np.zeros(1))], lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched = optim.StepLR(opt, step_size=3)
        sched.step()
    assert repr(sched) == "StepLR(step_size=3, gamma=0.1, last_epoch=1)"


class _Warmup:
    """A callable object with state: torch's state dicts keep its __dict__."""

    def __init__(self, epochs):
        self.epochs = epochs

    def __call__(self, epoch):
        return min(1.0, (epoch + 1) / self.epochs)


def test_lambda_state_dict_leaves_functions_out_and_keeps_callable_objects_state():
    torch = pytest.importorskip("torch")
    opt = optim.SGD(_groups(Parameter), lr=0.1)
    sched = optim.LambdaLR(opt, [lambda e: 0.5 ** e, _Warmup(4)])
    topt = torch.optim.SGD(_groups(lambda a: torch.nn.Parameter(torch.from_numpy(a))), lr=0.1)
    tsched = torch.optim.lr_scheduler.LambdaLR(topt, [lambda e: 0.5 ** e, _Warmup(4)])
    state = sched.state_dict()
    assert state["lr_lambdas"] == tsched.state_dict()["lr_lambdas"] == [None, {"epochs": 4}]
    other = optim.LambdaLR(optim.SGD(_groups(Parameter), lr=0.1), [lambda e: 0.5 ** e, _Warmup(9)])
    other.load_state_dict(state)
    assert other.lr_lambdas[1].epochs == 4 and other.state_dict() == state
    with pytest.raises(ValueError, match="LambdaLR.load_state_dict: expected lr_lambdas, a list of 2"):
        other.load_state_dict({**state, "lr_lambdas": [None]})
    assert other.state_dict() == state


def test_a_failing_lambda_leaves_the_schedule_where_it_was():
    opt = optim.SGD([Parameter(np.zeros(1))], lr=0.1)
    sched = optim.MultiplicativeLR(opt, lambda e: 0.5 if e < 2 else None)
    sched.step()
    with pytest.raises(TypeError, match=r"MultiplicativeLR.step: lr_lambda\[0\]\(2\) must return a number"):
        sched.step()
    assert sched.last_epoch == 1 and opt.lr == 0.05 and sched.get_last_lr() == [0.05]


def test_a_second_scheduler_starts_from_the_initial_lr_as_torch():
    """Two schedulers stepped together on one optimizer: the second one's base_lrs are the lrs
    before the first (torch's group["initial_lr"]), which CosineAnnealingLR uses at its turns."""
    torch = pytest.importorskip("torch")
    opt = optim.SGD(_groups(Parameter), lr=0.1)
    topt = torch.optim.SGD(_groups(lambda a: torch.nn.Parameter(torch.from_numpy(a))), lr=0.1)
    lr_sched = torch.optim.lr_scheduler
    ours = [optim.LinearLR(opt, start_factor=0.5, total_iters=4), optim.CosineAnnealingLR(opt, T_max=7)]
    theirs = [lr_sched.LinearLR(topt, start_factor=0.5, total_iters=4), lr_sched.CosineAnnealingLR(topt, T_max=7)]
    assert ours[1].base_lrs == theirs[1].base_lrs == [0.1, 0.03]
    for _ in range(EPOCHS):
        topt.step()
        for a, b in zip(ours, theirs):
            a.step()
            b.step()
        assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in topt.param_groups]


def test_cyclic_cycles_adam_betas_and_needs_a_momentum():
    torch = pytest.importorskip("torch")
    kwargs = dict(base_lr=0.001, max_lr=0.01, step_size_up=3, mode="exp_range", gamma=0.9)
    opt, sched, topt, tsched = _pair(torch, "CyclicLR", kwargs, opt_name="Adam")
    ours, our_moms = _drive(opt, sched, "CyclicLR", 20)
    theirs, their_moms = _drive(topt, tsched, "CyclicLR", 20, opt_step=topt.step)
    np.testing.assert_array_equal(ours, theirs)
    assert our_moms == their_moms and our_moms[0] == [0.9, 0.9] and min(m[0] for m in our_moms) < 0.85
    assert opt.param_groups[0]["betas"][1] == 0.999
    no = optim.SGD([Parameter(np.zeros(1))], lr=0.1)
    no.defaults = {"lr": 0.1, "dampening": 0.0}
    with pytest.raises(ValueError, match="CyclicLR: cycle_momentum=True needs an optimizer with a momentum"):
        optim.CyclicLR(no, 0.1, 1.0)
    optim.CyclicLR(no, 0.1, 1.0, cycle_momentum=False)


class _Halving:
    def __init__(self):
        self.base = 0.5

    def __call__(self, cycle):
        return self.base ** (cycle - 1)


def test_cyclic_state_dict_keeps_a_scale_fn_objects_state():
    opt = optim.SGD([Parameter(np.zeros(1))], lr=0.1, momentum=0.9)
    sched = optim.CyclicLR(opt, 0.1, 1.0, step_size_up=2, scale_fn=_Halving())
    sched.scale_fn.base = 0.25
    state = sched.state_dict()
    assert state["scale_fn"] == {"base": 0.25}
    other = optim.CyclicLR(optim.SGD([Parameter(np.zeros(1))], lr=0.1, momentum=0.9), 0.1, 1.0,
                           step_size_up=2, scale_fn=_Halving())
    other.load_state_dict(state)
    assert other.scale_fn.base == 0.25 and other.state_dict() == state
    with pytest.raises(ValueError, match="CyclicLR.load_state_dict: expected a dict with scale_fn"):
        other.load_state_dict({k: v for k, v in state.items() if k != "scale_fn"})


def test_cyclic_after_another_scheduler_cycles_from_its_own_base_lr():
    """torch's CyclicLR replaces base_lrs (the group's initial_lr) by base_lr after its
    constructor's step: it matters when the optimizer already had a scheduler."""
    torch = pytest.importorskip("torch")
    opt = optim.SGD(_groups(Parameter), lr=0.1)
    topt = torch.optim.SGD(_groups(lambda a: torch.nn.Parameter(torch.from_numpy(a))), lr=0.1)
    optim.ConstantLR(opt, factor=0.5)
    torch.optim.lr_scheduler.ConstantLR(topt, factor=0.5)
    sched = optim.CyclicLR(opt, 0.01, 0.05, step_size_up=3)
    tsched = torch.optim.lr_scheduler.CyclicLR(topt, 0.01, 0.05, step_size_up=3)
    ours, _ = _drive(opt, sched, "CyclicLR", 12)
    theirs, _ = _drive(topt, tsched, "CyclicLR", 12, opt_step=topt.step)
    np.testing.assert_array_equal(ours, theirs)


#: schedules of schedules, built the same way from minidl.optim and torch.optim.lr_scheduler
COMPOSITES = {
    "warmup-cosine": lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.1, total_iters=5), m.CosineAnnealingLR(o, T_max=20, eta_min=0.001)],
        milestones=[5]),
    "constant-exp-step": lambda m, o: m.SequentialLR(
        o, [m.ConstantLR(o, factor=0.2, total_iters=6), m.ExponentialLR(o, gamma=0.9),
            m.StepLR(o, step_size=4, gamma=0.7)], milestones=[4, 15]),
    "lambda-restarts-multistep": lambda m, o: m.SequentialLR(
        o, [m.LambdaLR(o, lambda e: (e + 1) / 3), m.CosineAnnealingWarmRestarts(o, T_0=4, T_mult=2),
            m.MultiStepLR(o, milestones=[0, 5, 9], gamma=0.5)], milestones=[3, 20]),
    "poly-cyclic-linear": lambda m, o: m.SequentialLR(
        o, [m.PolynomialLR(o, total_iters=8, power=2.0), m.CyclicLR(o, 0.01, 0.08, step_size_up=3),
            m.LinearLR(o, start_factor=0.5, end_factor=0.1, total_iters=10)], milestones=[6, 25]),
    "exp-constant-poly": lambda m, o: m.SequentialLR(
        o, [m.ExponentialLR(o, gamma=0.8), m.ConstantLR(o, factor=0.5, total_iters=4),
            m.PolynomialLR(o, total_iters=30, power=1.5)], milestones=[5, 12]),
    "milestone-0": lambda m, o: m.SequentialLR(
        o, [m.MultiStepLR(o, milestones=[2]), m.LinearLR(o, start_factor=0.3, total_iters=9)], milestones=[0]),
    "chained-constant-exp": lambda m, o: m.ChainedScheduler(
        [m.ConstantLR(o, factor=0.5, total_iters=10), m.ExponentialLR(o, gamma=0.95)]),
    "chained-cosine-multiplicative": lambda m, o: m.ChainedScheduler(
        [m.CosineAnnealingLR(o, T_max=10), m.MultiplicativeLR(o, lambda e: 0.97)], optimizer=o),
    "chained-sequential-step": lambda m, o: m.ChainedScheduler(
        [m.SequentialLR(o, [m.LinearLR(o, start_factor=0.2, total_iters=4), m.ExponentialLR(o, gamma=0.9)],
                        milestones=[4]), m.StepLR(o, step_size=10, gamma=0.5)]),
}


@pytest.mark.parametrize("name", COMPOSITES)
def test_composite_matches_torch_over_50_epochs(name):
    torch = pytest.importorskip("torch")
    opt = optim.SGD(_groups(Parameter), lr=0.1)
    topt = torch.optim.SGD(_groups(lambda a: torch.nn.Parameter(torch.from_numpy(a))), lr=0.1)
    sched, tsched = COMPOSITES[name](optim, opt), COMPOSITES[name](torch.optim.lr_scheduler, topt)
    ours, our_moms = _drive(opt, sched, name, EPOCHS)
    theirs, their_moms = _drive(topt, tsched, name, EPOCHS, opt_step=topt.step)
    np.testing.assert_array_equal(ours, theirs)
    assert our_moms == their_moms
    assert len(set(map(tuple, ours))) > 5


@pytest.mark.parametrize("name", COMPOSITES)
def test_composite_state_dict_resumes_the_sequence(name):
    def build():
        opt = optim.SGD(_groups(Parameter), lr=0.1)
        return opt, COMPOSITES[name](optim, opt)

    opt, sched = build()
    ref, _ = _drive(opt, sched, name, EPOCHS)
    opt, sched = build()
    _drive(opt, sched, name, 23)
    state, opt_state = sched.state_dict(), opt.state_dict()
    opt2, sched2 = build()
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(_through_checkpoint(state))
    assert sched2.state_dict() == state
    lrs, _ = _drive(opt2, sched2, name, EPOCHS - 23)
    np.testing.assert_array_equal(lrs, ref[23:])


def _other():
    return optim.StepLR(optim.SGD([Parameter(np.zeros(1))], lr=0.1), step_size=2)


@pytest.mark.parametrize("build,err,match", [
    (lambda o: optim.SequentialLR(o, [], milestones=[]), ValueError, "SequentialLR: schedulers must be a non-empty"),
    (lambda o: optim.SequentialLR(o, [optim.StepLR(o, 2), optim.StepLR(o, 3)], milestones=[]), ValueError,
     "milestones must be a list of 1 epochs .one fewer than the 2 schedulers"),
    (lambda o: optim.SequentialLR(o, [optim.StepLR(o, 2)] * 3, milestones=[5, 2]), ValueError,
     "milestones must be sorted"),
    (lambda o: optim.SequentialLR(o, [optim.StepLR(o, 2)] * 2, milestones=[-1]), ValueError,
     r"milestones\[0\] must be an int >= 0"),
    (lambda o: optim.SequentialLR(o, [optim.StepLR(o, 2), _other()], milestones=[3]), ValueError,
     "the one at index 1 .StepLR. has another"),
    (lambda o: optim.SequentialLR(o, [optim.ReduceLROnPlateau(o)], milestones=[]), ValueError,
     "ReduceLROnPlateau .at index 0. cannot be combined"),
    (lambda o: optim.SequentialLR(o, [optim.StepLR(o, 2), "cosine"], milestones=[3]), TypeError,
     "schedulers must be minidl.optim schedulers .not SequentialLR or ChainedScheduler.. Received: str at index 1"),
    (lambda o: optim.SequentialLR(o, [optim.ChainedScheduler([optim.StepLR(o, 2)])], milestones=[]), TypeError,
     "Received: ChainedScheduler at index 0"),
    (lambda o: optim.ChainedScheduler([]), ValueError, "ChainedScheduler: schedulers must be a non-empty"),
    (lambda o: optim.ChainedScheduler([optim.StepLR(o, 2), _other()]), ValueError, "has another"),
    (lambda o: optim.ChainedScheduler([optim.StepLR(o, 2)], optimizer=_other().optimizer), ValueError,
     "the one at index 0 .StepLR. has another"),
    (lambda o: optim.ChainedScheduler([optim.ReduceLROnPlateau(o)]), ValueError, "cannot be combined"),
    (lambda o: optim.ChainedScheduler(optim.StepLR(o, 2)), ValueError, "schedulers must be a non-empty list"),
])
def test_invalid_composites_raise(build, err, match):
    with pytest.raises(err, match=match):
        build(optim.SGD([Parameter(np.zeros(1))], lr=0.1))


def test_composite_load_state_dict_is_all_or_nothing():
    opt = optim.SGD([Parameter(np.zeros(1))], lr=0.1)
    sched = COMPOSITES["constant-exp-step"](optim, opt)
    for _ in range(7):
        sched.step()
    before = sched.state_dict()
    first, second, third = before["schedulers"]  # the first two load, then the third is refused
    bad_child = {**before, "schedulers": [{**first, "last_epoch": 2}, {**second, "last_epoch": 5},
                                          {**third, "gamma": -1.0}]}
    for bad, match in ((bad_child, "StepLR.load_state_dict: gamma must be a finite number"),
                       ({**before, "milestones": [15, 4]}, "SequentialLR.load_state_dict: milestones must be sorted"),
                       ({**before, "schedulers": before["schedulers"][:2]}, "schedulers must be a list of 3"),
                       ({k: v for k, v in before.items() if k != "last_epoch"}, "SequentialLR.load_state_dict: exp")):
        with pytest.raises(ValueError, match=match):
            sched.load_state_dict(bad)
        assert sched.state_dict() == before
    assert repr(sched) == ("SequentialLR(schedulers=[ConstantLR, ExponentialLR, StepLR], milestones=[4, 15], "
                           "last_epoch=7)")


# ------------------------------------------------- through the Trainer's checkpoints
TRAINER_SCHEDULES = {
    "sequential-restarts": ("epoch", lambda o: optim.SequentialLR(
        o, [optim.LinearLR(o, start_factor=0.2, total_iters=2), optim.CosineAnnealingWarmRestarts(o, T_0=2)],
        milestones=[2])),
    "cyclic-per-batch": ("batch", lambda o: optim.CyclicLR(o, 0.01, 0.2, step_size_up=3, mode="triangular2")),
    "chained-lambda": ("epoch", lambda o: optim.ChainedScheduler(
        [optim.LambdaLR(o, lambda e: 1 / (e + 1)), optim.ConstantLR(o, factor=0.5, total_iters=3)])),
}


@pytest.mark.parametrize("name", TRAINER_SCHEDULES)
def test_a_run_resumed_from_a_trainer_checkpoint_equals_the_uninterrupted_run(name, tmp_path):
    import minidl as mdl
    from minidl import layers, losses

    (X, y), _ = mdl.data.load_digits()
    interval, make = TRAINER_SCHEDULES[name]

    def run(epochs, load=None, save=None):
        model = mdl.Sequential(layers.Flatten(), layers.Dense(64, 10, rng=np.random.default_rng(0)))
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        trainer = mdl.Trainer(model, losses.SoftmaxCrossEntropy(), opt)
        callback = mdl.LearningRateScheduler(make(opt), interval=interval)
        if load:
            trainer.load_checkpoint(load)
        trainer.fit(X[:96], y[:96], epochs=epochs, batch_size=32, seed=3, callbacks=[callback], progress=False)
        if save:
            trainer.save_checkpoint(save)
        return trainer, callback.schedule

    straight, sched = run(5)
    run(2, save=tmp_path / "c.npz")
    resumed, sched2 = run(5, load=tmp_path / "c.npz")
    assert resumed.history.history == straight.history.history  # loss and lr of every epoch
    assert len(set(straight.history.history["lr"])) > 2
    assert sched2.state_dict() == sched.state_dict()
    for a, b in zip(resumed.model.parameters(), straight.model.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
