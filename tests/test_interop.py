"""mdl.interop: to_torch / from_torch give the same outputs, gradients, buffers and training steps."""

import numpy as np
import pytest

import minidl as mdl
from minidl import layers as L

torch = pytest.importorskip("torch")
nn = torch.nn

TOL = {np.float32: 1e-5, np.float64: 1e-10}
MAX_ERR = {}  # the largest relative differences seen, per dtype (printed with -s)


def _err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b), initial=0.0) / max(1.0, np.max(np.abs(b), initial=0.0)))


def _check(a, b, dtype, what):
    err = _err(a, b)
    MAX_ERR[np.dtype(dtype).name] = max(MAX_ERR.get(np.dtype(dtype).name, 0.0), err)
    assert err <= TOL[dtype], f"{what}: relative difference {err:.3g} > {TOL[dtype]}"


def _t(a):
    return torch.from_numpy(np.array(a))


def every_layer_model(dtype, p=0.3):
    """A Sequential with every layer type and the unusual options (asymmetric and strided 'same' pads,
    dilation, groups, padding modes, ceil_mode, count_include_pad)."""
    r = np.random.default_rng(0)
    kw = dict(dtype=dtype, rng=r)
    return mdl.Sequential(
        L.Conv2D(2, 4, 3, padding=((0, 1), (1, 2)), **kw),  # (9, 9) -> (8, 10)
        L.BatchNorm2D(4, dtype=dtype),
        L.LeakyReLU(0.1),
        L.Conv2D(4, 4, 3, stride=2, padding="same", groups=2, **kw),  # -> (4, 5)
        L.GELU("tanh"),
        L.Conv2D(4, 6, 3, padding=2, dilation=2, padding_mode="reflect", **kw),
        L.MaxPool2D(3, stride=2, padding=1, ceil_mode=True),  # -> (3, 3)
        L.Dropout2D(p, rng=1),
        L.AvgPool2D(2, stride=1, padding=1, count_include_pad=False),  # -> (4, 4)
        L.Tanh(),
        L.Conv2D(6, 6, 2, padding="same", padding_mode="replicate", **kw),  # asymmetric 'same'
        L.MaxPool2D(3, stride=2, padding="same"),  # -inf 'same' pads -> (2, 2)
        L.Conv2D(6, 8, 3, stride=2, padding="same", padding_mode="circular", bias=False, **kw),
        L.GlobalAvgPool2D(),
        L.Flatten(),
        L.Dense(8, 5, bias=False, **kw),  # a bias before BatchNorm gets a gradient of rounding noise
        L.BatchNorm1D(5, momentum=None, dtype=dtype),
        L.Sigmoid(),
        L.Dropout(p, rng=2),
        L.Identity(),
        L.ReLU(),
        L.GELU(),
        L.Dense(5, 3, **kw),
        L.Softmax(axis=-1),
    )


def graph_model(dtype):
    r = np.random.default_rng(1)
    g = mdl.Graph()
    g.add("a", L.Conv2D(3, 4, 3, padding=1, dtype=dtype, rng=r), "input")
    g.add("b", L.Conv2D(3, 4, 1, dtype=dtype, rng=r), "input")
    g.add("sum", L.Add(), ["a", "b"])
    g.add("cat", L.Concat(axis=1), ["sum", "a"])
    g.add("relu", L.ReLU(), "cat")
    g.add("gap", L.GlobalAvgPool2D(), "relu")
    g.add("flat", L.Flatten(), "gap")
    g.add("fc", L.Dense(8, 2, dtype=dtype, rng=r), "flat")
    g.add("unused", L.Dense(8, 3, dtype=dtype, rng=r), "flat")
    g.set_output("fc")
    return g


def _warm_up(model, x):
    """A few training-mode forwards so BatchNorm's running stats are not the defaults."""
    was = model.training
    model.train()
    for k in range(3):
        model(x * (1 + k))
    model.train(was)


def _compare(model, tmodel, x, dtype, train=True):
    """Outputs, input and parameter gradients (train) and then buffers of both models."""
    xt = _t(x).requires_grad_(True)
    tmodel.zero_grad()
    out = model(x)
    tout = tmodel(xt)
    _check(out, tout.detach().numpy(), dtype, "output")
    if train:
        g = np.random.default_rng(5).standard_normal(out.shape).astype(dtype)
        model.zero_grad()
        dx = model.backward(g)
        tout.backward(_t(g))
        _check(dx, xt.grad.numpy(), dtype, "input gradient")
        tparams = list(tmodel.parameters())
        assert len(tparams) == len(model.parameters())
        for p, tp in zip(model.parameters(), tparams):
            tgrad = np.zeros_like(p.grad) if tp.grad is None else tp.grad.numpy()  # None: a node not run
            _check(p.grad, tgrad, dtype, "parameter gradient")
    state, tstate = model.state_dict(), tmodel.state_dict()
    assert len(state) == len(tstate)
    for (k, v), (tk, tv) in zip(state.items(), tstate.items()):
        assert np.asarray(v).dtype == tv.numpy().dtype, k
        _check(v, tv.numpy(), dtype, f"state {k}")


def _no_dropout_randomness(model):
    """p = 0: training-mode dropouts without randomness (minidl's cannot backward in eval mode)."""
    for _, layer in mdl.graph.walk_layers(model, ""):
        if isinstance(layer, L.Dropout):
            layer.p = 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("build,shape", [(every_layer_model, (16, 2, 9, 9)), (graph_model, (3, 3, 6, 6))])
def test_to_torch_matches(build, shape, dtype):
    model = build(dtype)
    x = np.random.default_rng(3).standard_normal(shape).astype(dtype)
    _warm_up(model, x)
    tmodel = mdl.interop.to_torch(model)
    assert list(tmodel.state_dict()) == list(model.state_dict())
    assert all(t.dtype == getattr(torch, np.dtype(dtype).name) for t in tmodel.parameters())
    model.eval()
    tmodel.eval()
    _compare(model, tmodel, x, dtype, train=False)
    model.train()
    _no_dropout_randomness(model)
    tmodel = mdl.interop.to_torch(model)
    _compare(model, tmodel, x, dtype)
    next(iter(model.nodes.values()))[0].eval()  # every module gets its own layer's mode
    modes = [m.training for m in mdl.interop.to_torch(model).modules()]
    assert modes == [layer.training for _, layer in mdl.graph.walk_layers(model, "")] and modes.count(False) == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("build", ["reference", "best", "residual"])
def test_library_models_both_ways(build, dtype):
    model = {"reference": mdl.models.reference_cnn, "best": mdl.models.digits_best,
             "residual": mdl.models.residual_cnn}[build](rng=0, dtype=dtype)
    x = np.random.default_rng(4).random((5, 1, 8, 8)).astype(dtype)
    _warm_up(model, x)
    for train in (False, True):
        model.train(train)
        _no_dropout_randomness(model)
        tmodel = mdl.interop.to_torch(model)
        _compare(model, tmodel, x, dtype, train)
        back = mdl.interop.from_torch(tmodel)
        assert type(back) is type(model) and repr(back) == repr(model)
        _compare(back, tmodel, x, dtype, train)


def torch_every_layer(dtype):
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.ZeroPad2d((1, 0, 2, 1)), nn.Conv2d(2, 4, 3, padding=1),  # merged: pads ((3, 2), (2, 1))
        nn.BatchNorm2d(4), nn.LeakyReLU(0.2),
        nn.Sequential(nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4, padding_mode="reflect"), nn.GELU()),
        nn.Conv2d(4, 6, 3, padding="same", dilation=2, padding_mode="circular"),
        nn.MaxPool2d(2, ceil_mode=True), nn.Dropout2d(0.5), nn.Tanh(),
        nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
        nn.Conv2d(6, 6, 2, padding="valid", bias=False), nn.ReLU(),
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
        nn.Sequential(nn.Linear(6, 5, bias=False), nn.BatchNorm1d(5), nn.Sigmoid(), nn.Dropout(0.5), nn.Identity()),
        nn.Linear(5, 3), nn.Softmax(dim=1),
    ).to(getattr(torch, np.dtype(dtype).name))
    for m in net.modules():  # non-trivial affine parameters
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return net


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_from_torch_matches(dtype):
    tmodel = torch_every_layer(dtype)
    x = np.random.default_rng(6).standard_normal((16, 2, 9, 8)).astype(dtype)
    tmodel.train()
    with torch.no_grad():
        for k in range(3):
            tmodel(_t(x) * (1 + k))
    for train in (False, True):
        tmodel.train(train)
        for m in tmodel.modules():
            if isinstance(m, (nn.Dropout, nn.Dropout2d)):
                m.p = 0.0
        model = mdl.interop.from_torch(tmodel)
        assert isinstance(model[0], L.Conv2D) and model[0].padding == ((3, 2), (2, 1))
        assert isinstance(model[3], mdl.Sequential) and len(model) == len(tmodel) - 1
        _compare(model, tmodel, x, dtype, train)
        tmodel[14][1].train(not train)  # every layer gets its own module's mode
        model = mdl.interop.from_torch(tmodel)
        assert model.training == train and model[13][1].training is not train and model[13][0].training is train


@pytest.mark.parametrize("name,opt_kw", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.01))])
def test_training_steps_stay_equal(name, opt_kw):
    r = np.random.default_rng(7)
    dtype = np.float64
    model = mdl.Sequential(L.Conv2D(1, 4, 3, padding="same", bias=False, dtype=dtype, rng=r),
                           L.BatchNorm2D(4, dtype=dtype),
                           L.ReLU(), L.MaxPool2D(2), L.Flatten(), L.Dense(64, 10, dtype=dtype, rng=r))
    model.train()
    for _ in range(2):  # train a few steps in minidl first, then move
        _step_minidl(model, getattr(mdl.optim, name)(model.parameters(), **opt_kw), r)
    tmodel = mdl.interop.to_torch(model)
    opt = getattr(mdl.optim, name)(model.parameters(), **opt_kw)
    topt = getattr(torch.optim, name)(tmodel.parameters(), **opt_kw)
    loss_fn = mdl.losses.SoftmaxCrossEntropy()
    for step in range(5):
        x = r.standard_normal((8, 1, 8, 8))
        y = r.integers(0, 10, 8)
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        opt.step()
        topt.zero_grad()
        tloss = nn.functional.cross_entropy(tmodel(_t(x)), _t(y))
        tloss.backward()
        topt.step()
        _check(loss, tloss.item(), dtype, f"loss at step {step}")
        for (k, v), tv in zip(model.state_dict().items(), tmodel.state_dict().values()):
            _check(v, tv.numpy(), dtype, f"{k} after step {step}")


def _step_minidl(model, opt, r):
    loss_fn = mdl.losses.SoftmaxCrossEntropy()
    opt.zero_grad()
    loss_fn(model(r.standard_normal((8, 1, 8, 8))), r.integers(0, 10, 8))
    model.backward(loss_fn.backward())
    opt.step()


class Scale(L.Layer):
    def forward(self, x):
        return 2 * x


def test_unsupported_minidl_layer():
    model = mdl.Sequential(L.ReLU(), mdl.Sequential(L.Identity(), Scale()))
    with pytest.raises(TypeError, match=r"model\[1\]\[1\] is a .*Scale.*no torch.nn equivalent"):
        mdl.interop.to_torch(model)


@pytest.mark.parametrize("module,where,match", [
    (nn.Sequential(nn.ReLU(), nn.Sequential(nn.Identity(), nn.LSTM(3, 3))), r"module\[1\]\[1\]", "LSTM"),
    (nn.Sequential(nn.ZeroPad2d(1), nn.ReLU()), r"module\[0\]", "ZeroPad2d.*followed by"),
    (nn.Sequential(nn.ZeroPad2d(1)), r"module\[0\]", "ZeroPad2d"),
    (nn.Sequential(nn.ZeroPad2d(1), nn.Conv2d(1, 1, 3, padding_mode="reflect")), r"module\[0\]", "ZeroPad2d"),
    (nn.Sequential(nn.MaxPool2d(2, return_indices=True)), r"module\[0\]", "return_indices"),
    (nn.Sequential(nn.AdaptiveMaxPool2d(2, return_indices=True)), r"module\[0\]", "return_indices"),
    (nn.Sequential(nn.Flatten(1, 2)), r"module\[0\]", "end_dim"),
    (nn.Sequential(nn.Linear(2, 2).half()), r"module\[0\]", "float16"),
    (nn.Conv3d(1, 1, 3), "module", "Conv3d"),  # Conv1d is supported since issue 19
])
def test_unsupported_torch_modules(module, where, match):
    with pytest.raises(TypeError, match=f"from_torch: {where}.*{match}"):
        mdl.interop.from_torch(module)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tcls, shape", [(nn.BatchNorm1d, (6, 3)), (nn.BatchNorm2d, (4, 3, 5, 5))], ids=["1d", "2d"])
def test_batchnorm_without_affine_both_ways(tcls, shape, dtype):
    """BatchNorm1d(affine=False).double() has buffers but no parameters: from_torch took float32 for it and
    raised TypeError (float64 buffers into a float32 layer)."""
    tbn = tcls(3, affine=False, dtype=getattr(torch, np.dtype(dtype).name))
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype) * 2 + 1
    with torch.no_grad():
        tbn(_t(x))  # running statistics that are not the defaults
    bn = mdl.interop.from_torch(tbn)
    assert type(bn).__name__ == tcls.__name__[:-1] + "D" and not bn.affine and bn.dtype == dtype
    for train in (False, True):
        tbn.train(train), bn.train(train)
        _compare(bn, tbn, x * 0.5, dtype, train)  # outputs, input gradient (train), running statistics
    back = mdl.interop.to_torch(bn)
    assert back.running_mean.dtype == tbn.running_mean.dtype and back.weight is None
    np.testing.assert_array_equal(back.running_var.numpy(), bn.running_var)


def _sgd_step_both(model, tmodel, lr=0.1):
    mdl.optim.SGD(model.parameters(), lr=lr).step()
    torch.optim.SGD(tmodel.parameters(), lr=lr).step()


def _torch_used_twice(dtype):
    """A Linear used twice, a nested block used twice, a merged ZeroPad2d + Conv2d used twice, and
    two Linears sharing one weight (torch's tied weights)."""
    torch.manual_seed(0)
    tdt = getattr(torch, np.dtype(dtype).name)
    pad, conv = nn.ZeroPad2d((0, 1, 1, 0)), nn.Conv2d(2, 2, 2, dtype=tdt)
    lin, tied = nn.Linear(8, 8, dtype=tdt), nn.Linear(8, 8, dtype=tdt)
    tied.weight = lin.weight
    block = nn.Sequential(lin, nn.Tanh())
    return nn.Sequential(pad, conv, nn.ReLU(), pad, conv, nn.Flatten(), block, block, tied, nn.ReLU(), lin)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_from_torch_keeps_a_module_used_twice_tied(dtype):
    """nn.Sequential(lin, nn.ReLU(), lin) gave a 2-layer minidl model (torch's named_children skips a
    repeat) whose outputs differed; now each place is a layer and the places share the Parameters."""
    tmodel = _torch_used_twice(dtype)
    x = np.random.default_rng(0).standard_normal((5, 2, 2, 2)).astype(dtype)
    model = mdl.interop.from_torch(tmodel)
    assert len(model) == len(tmodel) - 2  # the two ZeroPad2d merged into their Conv2d
    assert model[0].weight is model[2].weight and model[0].bias is model[2].bias
    assert model[4][0].weight is model[5][0].weight is model[6].weight is model[8].weight
    assert model[4][0].bias is model[8].bias and model[6].bias is not model[8].bias
    assert len(model.parameters()) == len(list(tmodel.parameters())) == 5
    for _ in range(2):  # outputs, input and parameter gradients (both uses summed), then one SGD step
        _compare(model, tmodel, x, dtype)
        _sgd_step_both(model, tmodel)
    _compare(model, tmodel, x, dtype)
    assert model[0].weight is model[2].weight  # still one parameter after training


def test_from_torch_refuses_a_module_with_buffers_used_twice():
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match=r"from_torch: module\[2\] .*shares its buffer 'running_mean' with "
                                         r"module\[0\].*minidl layers can share parameters, not buffers"):
        mdl.interop.from_torch(nn.Sequential(bn, nn.ReLU(), bn))
    mdl.interop.from_torch(nn.Sequential(bn, nn.ReLU(), nn.BatchNorm1d(3)))  # two modules: fine


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_torch_keeps_tied_weights(dtype):
    """minidl's tied weights (one Parameter in two layers) became two torch parameters (4 for 3)."""
    r = np.random.default_rng(0)
    d1, d2, d3 = (L.Dense(6, 6, dtype=dtype, rng=r) for _ in range(3))
    d2.weight = d1.weight
    d3.weight, d3.bias = d1.weight, d2.bias
    model = mdl.Sequential(d1, L.ReLU(), d2, L.Tanh(), d3)
    tmodel = mdl.interop.to_torch(model)
    assert tmodel[2].weight is tmodel[0].weight is tmodel[4].weight and tmodel[4].bias is tmodel[2].bias
    assert len(list(tmodel.parameters())) == len(model.parameters()) == 3
    x = r.standard_normal((4, 6)).astype(dtype)
    for _ in range(2):
        _compare(model, tmodel, x, dtype)
        _sgd_step_both(model, tmodel)
    _compare(model, tmodel, x, dtype)
    back = mdl.interop.from_torch(tmodel)
    assert back[2].weight is back[0].weight is back[4].weight and back[4].bias is back[2].bias


def test_conv_and_pool_options_round_trip():
    """Every padding form of Conv2D and MaxPool2D maps to torch and back to the same layer."""
    convs = [L.Conv2D(2, 2, 3, stride=s, padding=p, padding_mode=m, dtype=np.float64, rng=0)
             for s in (1, 2, 3) for p in (0, 1, (1, 0), ((0, 2), (1, 1)), "same", "valid")
             for m in ("zeros", "reflect", "replicate", "circular")]
    pools = [L.MaxPool2D(3, stride=s, padding=p, ceil_mode=c) for s in (1, 2, 3) for p in (0, 1, "same")
             for c in (False, True)]
    x = np.random.default_rng(8).standard_normal((2, 2, 7, 8))
    for layer in convs + pools:
        tlayer = mdl.interop.to_torch(layer)
        assert _err(layer(x), tlayer(_t(x)).detach().numpy()) <= 1e-10, layer
        back = mdl.interop.from_torch(tlayer)
        assert type(back) is type(layer) and back.stride == layer.stride, (back, layer)
        if not isinstance(layer.padding, str) or layer.padding == "same":  # torch: 'valid' -> 0
            assert back.padding == layer.padding or _pads(back) == _pads(layer), (back, layer)
        assert _err(back(x), layer(x)) == 0.0, layer


def _pads(layer):
    return mdl.functional.resolve_padding(layer.padding, (7, 8), layer.kernel_size, layer.stride)
