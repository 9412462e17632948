"""Tests of minidl.optim: parity with torch.optim.SGD / StepLR, state, validation."""

import itertools
import json

import numpy as np
import pytest

from minidl import optim
from minidl.parameter import Parameter

SHAPES = [(3, 4), (5,), (2, 1, 3)]


def make_params(dtype=np.float64, seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]


def fake_grad(data, step, k):
    """Deterministic, parameter-dependent gradient (same formula in both frameworks)."""
    return 0.1 * data ** 3 - 0.5 + 0.3 * np.sin(step + k + data)


def run_minidl(params, opt, steps, start=0):
    traj = []
    for t in range(start, start + steps):
        opt.zero_grad()
        for k, p in enumerate(params):
            p.grad += fake_grad(p.data, t, k)
        opt.step()
        traj.append([p.data.copy() for p in params])
    return traj


def run_torch(torch, tparams, topt, steps, start=0):
    traj = []
    for t in range(start, start + steps):
        topt.zero_grad()
        for k, p in enumerate(tparams):
            p.grad = torch.from_numpy(fake_grad(p.detach().numpy(), t, k))
        topt.step()
        traj.append([p.detach().numpy().copy() for p in tparams])
    return traj


def torch_copy(torch, params):
    return [torch.nn.Parameter(torch.from_numpy(p.data.copy())) for p in params]


COMBOS = list(itertools.product([0.0, 0.9], [0.0, 0.5], [0.0, 1e-2], [False, True]))


@pytest.mark.parametrize("momentum,dampening,weight_decay,nesterov", COMBOS)
def test_sgd_matches_torch_trajectory(momentum, dampening, weight_decay, nesterov):
    torch = pytest.importorskip("torch")
    hyper = dict(lr=0.1, momentum=momentum, dampening=dampening,
                 weight_decay=weight_decay, nesterov=nesterov)
    params = make_params()
    tparams = torch_copy(torch, params)
    if nesterov and (momentum == 0 or dampening != 0):
        with pytest.raises(ValueError, match="Nesterov momentum requires a momentum"):
            torch.optim.SGD(tparams, **hyper)
        with pytest.raises(ValueError, match="Nesterov momentum requires a momentum"):
            optim.SGD(params, **hyper)
        return
    ours = run_minidl(params, optim.SGD(params, **hyper), 30)
    theirs = run_torch(torch, tparams, torch.optim.SGD(tparams, **hyper), 30)
    for t, (a, b) in enumerate(zip(ours, theirs)):
        for k, (x, y) in enumerate(zip(a, b)):
            assert x.dtype == np.float64
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-12, err_msg=f"step {t} param {k}")
    # the run must actually move the parameters
    assert not np.allclose(ours[-1][0], make_params()[0].data)


def test_float32_dtype_kept_and_close_to_torch():
    torch = pytest.importorskip("torch")
    params = make_params(np.float32)
    tparams = torch_copy(torch, params)
    hyper = dict(lr=0.1, momentum=0.9, weight_decay=1e-2, nesterov=True)
    opt = optim.SGD(params, **hyper)
    ours = run_minidl(params, opt, 10)
    theirs = run_torch(torch, tparams, torch.optim.SGD(tparams, **hyper), 10)
    for p in params:
        assert p.data.dtype == np.float32 and p.grad.dtype == np.float32
    assert all(b.dtype == np.float32 for b in opt.momentum_buffers.values())
    for x, y in zip(ours[-1], theirs[-1]):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_update_is_in_place():
    params = make_params()
    arrays = [p.data for p in params]
    run_minidl(params, optim.SGD(params, lr=0.1, momentum=0.9), 3)
    assert all(p.data is a for p, a in zip(params, arrays))


def test_buffers_are_per_parameter():
    p1, p2 = Parameter(np.ones((2, 2))), Parameter(np.ones((2, 2)))
    opt = optim.SGD([p1, p2], lr=0.1, momentum=0.9)
    p1.grad[:] = 1.0
    p2.grad[:] = -2.0
    opt.step()
    opt.step()
    b0, b1 = opt.momentum_buffers[0], opt.momentum_buffers[1]
    assert b0 is not b1 and not np.shares_memory(b0, b1)
    np.testing.assert_allclose(b0, 1.9)
    np.testing.assert_allclose(b1, -3.8)
    # the first buffer is a copy, not the gradient array itself
    assert not np.shares_memory(b0, p1.grad)


def test_accepts_layer_and_generator():
    from minidl.layers.base import Layer

    class Two(Layer):
        def __init__(self):
            super().__init__()
            self.a = Parameter(np.zeros(2))
            self.b = Parameter(np.zeros(3))

    model = Two()
    assert optim.SGD(model, lr=0.1).params == model.parameters()
    assert optim.SGD((p for p in model.parameters()), lr=0.1).params == model.parameters()


def test_state_dict_round_trip_continues_identically():
    hyper = dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-2)
    ref = make_params()
    run_minidl(ref, optim.SGD(ref, **hyper), 20)

    params = make_params()
    opt = optim.SGD(params, **hyper)
    run_minidl(params, opt, 10)
    saved_params = [p.data.copy() for p in params]
    # through JSON (int keys become strings) to check it is serialisable
    sd = opt.state_dict()
    sd_json = json.loads(json.dumps({**sd, "state": {
        k: {"momentum_buffer": v["momentum_buffer"].tolist()} for k, v in sd["state"].items()}}))
    sd_json["state"] = {k: {"momentum_buffer": np.array(v["momentum_buffer"])}
                        for k, v in sd_json["state"].items()}
    for state in (sd, sd_json):
        resumed = make_params()
        for p, d in zip(resumed, saved_params):
            p.data[...] = d
        opt2 = optim.SGD(resumed, lr=1.0)  # hyper-parameters come from the state
        opt2.load_state_dict(state)
        assert opt2.lr == 0.05 and opt2.momentum == 0.9 and opt2.dampening == 0.1
        run_minidl(resumed, opt2, 10, start=10)
        for a, b in zip(resumed, ref):
            np.testing.assert_array_equal(a.data, b.data)


def test_state_dict_is_a_copy():
    params = make_params()
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    run_minidl(params, opt, 2)
    sd = opt.state_dict()
    sd["state"][0]["momentum_buffer"][...] = 123.0
    assert not np.any(opt.momentum_buffers[0] == 123.0)
    opt.load_state_dict(sd)
    sd["state"][0]["momentum_buffer"][...] = 7.0
    assert np.all(opt.momentum_buffers[0] == 123.0)


@pytest.mark.parametrize("mutate,match", [
    (lambda sd: sd.update(num_params=2), "state is for 2 parameters but this optimizer has 3"),
    (lambda sd: sd["state"][0].update(momentum_buffer=np.zeros((4, 3))), r"shape \(4, 3\)"),
    (lambda sd: sd["state"][1].update(momentum_buffer=np.zeros(5, np.float32)), "dtype float32"),
    (lambda sd: sd["state"].update({7: {"momentum_buffer": np.zeros(5)}}), "not a parameter index"),
    (lambda sd: sd.pop("param_groups"), "expected a dict with keys"),
    (lambda sd: sd["param_groups"][0].update(momentum=-1.0), "momentum must be a finite number >= 0"),
])
def test_load_mismatched_state_raises_and_changes_nothing(mutate, match):
    params = make_params()
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    run_minidl(params, opt, 2)
    before = opt.state_dict()
    bad = opt.state_dict()
    bad["param_groups"][0]["lr"] = 0.5
    mutate(bad)
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(bad)
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    assert opt.lr == 0.1 and opt.momentum == 0.9
    for k, v in before["state"].items():
        np.testing.assert_array_equal(after["state"][k]["momentum_buffer"], v["momentum_buffer"])


def test_lr_change_mid_training_matches_torch():
    torch = pytest.importorskip("torch")
    params = make_params()
    tparams = torch_copy(torch, params)
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(tparams, lr=0.1, momentum=0.9)
    run_minidl(params, opt, 5)
    run_torch(torch, tparams, topt, 5)
    opt.lr = 0.01
    topt.param_groups[0]["lr"] = 0.01
    ours = run_minidl(params, opt, 5, start=5)
    theirs = run_torch(torch, tparams, topt, 5, start=5)
    for a, b in zip(ours, theirs):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-12)


@pytest.mark.parametrize("step_size,gamma", [(3, 0.1), (1, 0.5), (4, 2.0)])
def test_steplr_matches_torch(step_size, gamma):
    torch = pytest.importorskip("torch")
    opt = optim.SGD(make_params(), lr=0.1)
    topt = torch.optim.SGD(torch_copy(torch, make_params()), lr=0.1)
    sched = optim.StepLR(opt, step_size=step_size, gamma=gamma)
    tsched = torch.optim.lr_scheduler.StepLR(topt, step_size=step_size, gamma=gamma)
    for epoch in range(10):
        assert sched.get_last_lr() == tsched.get_last_lr()  # a list, one lr per group
        assert opt.lr == topt.param_groups[0]["lr"]
        np.testing.assert_allclose(opt.lr, 0.1 * gamma ** (epoch // step_size), rtol=1e-12)
        topt.step()  # silence torch's "scheduler before optimizer" warning
        sched.step()
        tsched.step()
    assert sched.last_epoch == 10


def test_steplr_validation_and_state():
    opt = optim.SGD(make_params(), lr=1.0)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="step_size must be an int >= 1"):
            optim.StepLR(opt, step_size=bad)
    with pytest.raises(ValueError, match="gamma must be a finite number"):
        optim.StepLR(opt, step_size=1, gamma=-0.1)
    with pytest.raises(TypeError, match="optimizer must have an lr attribute"):
        optim.StepLR(object(), step_size=1)
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(3):
        sched.step()
    sched2 = optim.StepLR(optim.SGD(make_params(), lr=1.0), step_size=7)
    sched2.load_state_dict(sched.state_dict())
    assert (sched2.step_size, sched2.gamma, sched2.last_epoch, sched2.get_last_lr()) == (2, 0.5, 3, [0.5])


@pytest.mark.parametrize("kwargs,match", [
    (dict(lr=-0.1), r"lr must be a finite number >= 0. Received: lr=-0.1"),
    (dict(lr="0.1"), r"lr must be a real number. Received: lr='0.1'"),
    (dict(lr=None), r"lr must be a real number"),
    (dict(lr=float("nan")), r"lr must be a finite number"),
    (dict(lr=0.1, momentum=-0.9), r"momentum must be a finite number >= 0. Received: momentum=-0.9"),
    (dict(lr=0.1, weight_decay=-1e-4), r"weight_decay must be a finite number >= 0"),
    (dict(lr=0.1, dampening=-0.5), r"dampening must be a finite number >= 0"),
    (dict(lr=0.1, nesterov=True), r"Nesterov momentum requires a momentum and zero dampening"),
    (dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), r"Nesterov momentum requires"),
    (dict(lr=0.1, momentum=0.9, nesterov="yes"), r"nesterov must be a bool"),
])
def test_invalid_hyperparameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        optim.SGD(make_params(), **kwargs)


def test_lr_setter_validates():
    opt = optim.SGD(make_params(), lr=0.1)
    opt.lr = 0.0
    assert opt.lr == 0.0
    with pytest.raises(ValueError, match=r"Received: lr=-1"):
        opt.lr = -1
    assert opt.lr == 0.0


def test_bad_params_raise():
    p = Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match=r"params\[2\] is the same Parameter as params\[0\]"):
        optim.SGD([p, Parameter(np.zeros(2)), p], lr=0.1)
    with pytest.raises(TypeError, match=r"params\[1\] must be a Parameter. Received: ndarray"):
        optim.SGD([p, np.zeros(2)], lr=0.1)
    with pytest.raises(TypeError, match=r"Wrap it in a list"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(TypeError, match="iterable of Parameter"):
        optim.SGD(3, lr=0.1)


def test_zero_grad_and_step_grad_shape_check():
    params = make_params()
    for p in params:
        p.grad += 1.0
    grads = [p.grad for p in params]
    opt = optim.SGD(params, lr=0.1)
    opt.zero_grad()
    for p, g in zip(params, grads):
        assert p.grad is g and not g.any()
    params[1].grad = np.zeros(7)
    with pytest.raises(ValueError, match=r"params\[1\].grad has shape \(7,\)"):
        opt.step()


def test_repr():
    r = repr(optim.SGD(make_params(), lr=0.1, momentum=0.9, nesterov=True))
    assert r == ("SGD(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.0, "
                 "nesterov=True, maximize=False, num_params=3)")


VALID_COMBOS = [c for c in COMBOS if not (c[3] and (c[0] == 0 or c[1] != 0))]  # Nesterov's rule


@pytest.mark.parametrize("momentum,dampening,weight_decay,nesterov", VALID_COMBOS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_step_equals_the_textbook_in_place_update_bit_for_bit(momentum, dampening, weight_decay,
                                                              nesterov, dtype):
    """The all-or-nothing step (computed out of place, then committed) gives exactly the values of
    the plain in-place rule p -= lr * g, so checkpoints and resumes stay bit-identical."""
    hyper = dict(lr=0.1, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                 nesterov=nesterov)
    params = make_params(dtype)
    ref = [p.data.copy() for p in params]
    bufs = [None] * len(ref)
    opt = optim.SGD(params, **hyper)
    for t in range(6):
        opt.zero_grad()
        grads = [fake_grad(p.data, t, k).astype(dtype) for k, p in enumerate(params)]
        for p, g in zip(params, grads):
            p.grad += g
        opt.step()
        for k, g in enumerate(grads):  # the reference rule, in place, in the parameters' dtype
            d = np.dtype(dtype).type
            if weight_decay:
                g = g + d(weight_decay) * ref[k]
            if momentum:
                if bufs[k] is None:
                    bufs[k] = g.copy()
                else:
                    bufs[k] *= d(momentum)
                    bufs[k] += g if dampening == 0 else d(1 - dampening) * g
                g = g + d(momentum) * bufs[k] if nesterov else bufs[k]
            ref[k] -= d(0.1) * g
        for p, r in zip(params, ref):
            np.testing.assert_array_equal(p.data, r)


# ------------------------------------------------------------- non-finite updates (issue 6)
def test_step_check_is_exact_when_the_cheap_sum_overflows():
    """The step checks one sum per parameter; finite values whose float32 sum overflows must
    still be accepted (the exact element check decides)."""
    big = np.full(4, 3e38, np.float32)
    p = Parameter(big.copy())
    optim.SGD([p], lr=0.0).step()
    np.testing.assert_array_equal(p.data, big)


def test_nan_gradient_is_refused_even_with_zero_lr():
    p, q = Parameter(np.zeros(4)), Parameter(np.ones(2))
    p.grad[2] = np.nan
    q.grad[:] = 1.0
    opt = optim.SGD([q, p], lr=0.0, momentum=0.9)
    with pytest.raises(FloatingPointError, match=r"params\[1\] \(4,\) is not finite"):
        opt.step()
    np.testing.assert_array_equal(p.data, 0.0)
    assert opt.momentum_buffers == {}  # q's buffer (computed first) was not committed either


@pytest.mark.parametrize("dtype, lr", [(np.float16, 1e5), (np.float32, 1e39)])
def test_lr_not_finite_in_the_smallest_parameter_dtype_is_refused(dtype, lr):
    params = [Parameter(np.zeros(2)), Parameter(np.zeros(2, dtype))]  # float64 and smaller
    with pytest.raises(ValueError, match=f"not finite in the parameters' dtype {np.dtype(dtype)}"):
        optim.SGD(params, lr=lr)
    opt = optim.SGD(params, lr=0.1)
    with pytest.raises(ValueError, match="not finite"):
        opt.lr = lr
    assert opt.lr == 0.1


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize("make", [lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
                                  lambda p: optim.Adam(p, lr=0.01)], ids=["sgd_momentum", "adam"])
def test_a_copied_trainer_trains_on_like_the_original(how, make):
    """A deepcopy or pickle of a Trainer (model and optimizer together, as torch users copy a model
    and its optimizer) raised KeyError in step: the optimizer found its parameters by id()."""
    import copy
    import pickle

    import minidl as mdl

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((32, 4)).astype(np.float32), np.arange(32) % 3
    model = mdl.Sequential(mdl.layers.Dense(4, 8, rng=0), mdl.layers.ReLU(), mdl.layers.Dense(8, 3, rng=1))
    trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(), make(model.parameters()), blas_threads=None)
    trainer.fit(X, y, epochs=1, batch_size=8, seed=0, progress=False)
    twin = copy.deepcopy(trainer) if how == "deepcopy" else pickle.loads(pickle.dumps(trainer))
    assert all(p is q for p, q in zip(twin.optimizer.params, twin.model.parameters()))
    for t in (trainer, twin):
        t.fit(X, y, epochs=1, batch_size=8, seed=1, progress=False)
    for (name, a), (_, b) in zip(trainer.model.named_parameters(), twin.model.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)
