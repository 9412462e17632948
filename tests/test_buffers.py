"""Buffers (Layer.register_buffer): state that is saved and loaded but is not a parameter."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as mdl
from minidl import layers, losses
from minidl.parameter import Parameter


@mdl.register_layer
class Tracker(mdl.layers.Layer):
    """y = x * scale; keeps a running mean of its input (float) and a call count (int64, 0-d)
    in training mode, plus a non-persistent scratch buffer."""

    def __init__(self, features=3, dtype="float64"):
        super().__init__()
        self.features, dtype = features, np.dtype(dtype)
        self.scale = Parameter(np.ones(features, dtype))
        self.register_buffer("running_mean", np.zeros(features, dtype))
        self.register_buffer("calls", np.zeros((), np.int64))
        self.register_buffer("scratch", np.zeros(features, dtype), persistent=False)

    def forward(self, x):
        if self.training:
            self.running_mean *= 0.5
            self.running_mean += 0.5 * x.mean(0)
            self.calls += 1
        self.save_for_backward(x)
        return x * self.scale.data

    def backward(self, grad_output):
        (x,) = self.saved_values
        grad_output = self.check_grad_output(grad_output, x.shape, x.dtype)
        self.scale.grad += (grad_output * x).sum(0)
        return grad_output * self.scale.data

    def get_config(self):
        return dict(features=self.features, dtype=str(self.scale.dtype))


class Holder(mdl.layers.Layer):
    """Buffers in a layer held in a list attribute (names 'parts.1.calls')."""

    def __init__(self):
        super().__init__()
        self.register_buffer("own", np.arange(2.0))
        self.parts = [layers.ReLU(), Tracker()]


def trained(model, steps=3, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        model(rng.standard_normal((4, 3)))
    return model


def test_buffers_are_listed_but_are_not_parameters():
    t = Tracker()
    assert [n for n, _ in t.named_buffers()] == ["running_mean", "calls", "scratch"]
    assert [id(b) for b in t.buffers()] == [id(t.running_mean), id(t.calls), id(t.scratch)]
    assert [n for n, _ in t.named_parameters()] == ["scale"] and t.num_parameters() == 3
    assert all(isinstance(p, Parameter) for p in t.parameters())
    assert list(t.state_dict()) == ["scale", "running_mean", "calls"]  # non-persistent left out
    opt = mdl.optim.SGD(t.parameters(), lr=0.1)
    trained(t)
    before = {n: b.copy() for n, b in t.named_buffers()}
    t.backward(np.ones((4, 3)))
    opt.step()
    opt.zero_grad()
    for n, b in t.named_buffers():  # optimizers never touch buffers
        np.testing.assert_array_equal(b, before[n])
    assert t.calls == 3 and t.calls.dtype == np.int64 and t.calls.shape == ()


def test_state_dict_order_is_torchs_parameters_then_buffers_then_children():
    torch = pytest.importorskip("torch")
    model = mdl.Sequential(layers.Dense(3, 3, rng=0), Tracker(), Tracker())
    tm = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3))
    ours = [k.replace("scale", "weight").replace("calls", "num_batches_tracked") for k in model.state_dict()]
    theirs = [k for k in tm.state_dict() if not (k.endswith(".bias") and k[0] != "0")
              and not k.endswith("running_var")]
    assert ours == theirs
    assert [n for n, _ in model.named_buffers()] == ["1.running_mean", "1.calls", "1.scratch",
                                                     "2.running_mean", "2.calls", "2.scratch"]


def test_nested_container_buffers():
    h = Holder()
    trained(h.parts[1])
    assert list(h.state_dict()) == ["own", "parts.1.scale", "parts.1.running_mean", "parts.1.calls"]
    assert [n for n, _ in h.named_buffers(recurse=False)] == ["own"]
    g = Holder()
    g.load_state_dict(h.state_dict())
    np.testing.assert_array_equal(g.parts[1].running_mean, h.parts[1].running_mean)
    assert g.parts[1].calls == 3


def test_state_dict_copies_and_load_state_dict_restores_buffers():
    src, dst = trained(Tracker()), Tracker()
    sd = src.state_dict()
    assert sd["calls"] is not src.calls and sd["calls"].shape == () and sd["calls"].dtype == np.int64
    sd["running_mean"][0] = 99.0  # a copy: the layer is untouched
    assert src.running_mean[0] != 99.0
    kept = dst.running_mean
    dst.load_state_dict(src.state_dict())
    assert dst.running_mean is kept  # copied in place, as torch's copy_
    np.testing.assert_array_equal(dst.running_mean, src.running_mean)
    assert dst.calls == 3
    np.testing.assert_array_equal(dst.scratch, np.zeros(3))  # non-persistent: not loaded


def test_load_state_dict_checks_buffers_and_assigns_nothing_on_a_mismatch():
    src, dst = trained(Tracker()), Tracker()
    bad = src.state_dict()
    bad["calls"] = np.array(3.0)  # float instead of int64
    with pytest.raises(ValueError, match=r"nothing was loaded. 'calls': expected dtype int64, got float64"):
        dst.load_state_dict(bad)
    bad = src.state_dict()
    bad["running_mean"] = np.zeros(4)
    with pytest.raises(ValueError, match=r"'running_mean': expected shape \(3,\), got \(4,\)"):
        dst.load_state_dict(bad)
    bad = src.state_dict()
    del bad["calls"]
    with pytest.raises(ValueError, match=r"missing keys \['calls'\]"):
        dst.load_state_dict(bad)
    assert dst.calls == 0 and not dst.running_mean.any() and np.all(dst.scale.data == 1)
    dst.load_state_dict(bad, strict=False)
    assert dst.calls == 0 and dst.running_mean.any()


def test_register_buffer_refuses_bad_arguments():
    t = Tracker()
    with pytest.raises(TypeError, match="Python identifier"):
        t.register_buffer("a.b", np.zeros(1))
    with pytest.raises(TypeError, match="Python identifier"):
        t.register_buffer(3, np.zeros(1))
    with pytest.raises(ValueError, match="'scale' already exists and is not a buffer"):
        t.register_buffer("scale", np.zeros(1))
    with pytest.raises(TypeError, match=r"must be a numpy.ndarray or None. Received: list"):
        t.register_buffer("x", [1.0])
    with pytest.raises(TypeError, match="persistent must be a bool"):
        t.register_buffer("x", np.zeros(1), persistent=1)

    class NoInit(mdl.layers.Layer):
        def __init__(self):
            self.register_buffer("x", np.zeros(1))

    with pytest.raises(RuntimeError, match=r"call super\(\).__init__\(\)"):
        NoInit()
    t.register_buffer("running_mean", np.ones(3))  # re-registering a buffer replaces it
    np.testing.assert_array_equal(t.running_mean, np.ones(3))


def test_a_none_buffer_is_skipped():
    t = Tracker()
    t.register_buffer("maybe", None)
    assert "maybe" not in dict(t.named_buffers()) and "maybe" not in t.state_dict()
    t.maybe = np.ones(2)  # assigning the attribute sets the buffer
    assert list(t.state_dict())[-1] == "maybe"


@pytest.mark.parametrize("container", ["sequential", "graph", "nested"])
def test_save_and_load_round_trip_buffers_exactly(tmp_path, container):
    if container == "sequential":
        model = mdl.Sequential(Tracker(), layers.ReLU(), Tracker(dtype="float32"))
    elif container == "graph":
        model = mdl.Graph()
        model.add("a", Tracker(), "input")
        model.add("b", Tracker(dtype="float32"), "input")
        model.add("sum", layers.Add(), ["a", "b"])
    else:
        model = mdl.Sequential(mdl.Sequential(Tracker(), layers.ReLU()), Tracker())
    for seed, layer in enumerate(_trackers(model)):
        trained(layer, seed=seed)
    path = tmp_path / "m.npz"
    mdl.save(model, path)
    loaded = mdl.load(path)
    sd, sd2 = model.state_dict(), loaded.state_dict()
    assert list(sd) == list(sd2) and any(k.endswith("calls") for k in sd)
    for k in sd:
        assert sd[k].dtype == sd2[k].dtype and sd[k].shape == sd2[k].shape, k
        np.testing.assert_array_equal(sd[k], sd2[k], err_msg=k)
    for name, b in loaded.named_buffers():
        assert b.flags.writeable, name
    buffers = dict(mdl.io.read(path).model.named_buffers())
    assert all(not buffers[k].any() for k in buffers if k.endswith("scratch"))  # not saved


def _trackers(layer):
    if isinstance(layer, Tracker):
        yield layer
    for _, child in layer.named_children():
        yield from _trackers(child)


def test_load_refuses_a_file_whose_buffers_do_not_match(tmp_path):
    path = tmp_path / "m.npz"
    mdl.save(mdl.Sequential(Tracker()), path)
    with pytest.raises(ValueError, match=r"missing '0.count', unexpected 'buffer:0.calls'"):
        Renamed = type("Tracker", (Tracker,), {"__init__": _init_with_other_buffer})
        mdl.load(path, custom_layers={"Tracker": Renamed})


def _init_with_other_buffer(self, features=3, dtype="float64"):
    Tracker.__init__(self, features, dtype)
    del self._buffers["calls"], self.calls
    self.register_buffer("count", np.zeros((), np.int64))


def test_gradcheck_casts_float_buffers_and_leaves_the_layer_untouched():
    t = trained(Tracker(dtype="float32"))
    before = t.state_dict()
    report = mdl.gradcheck(t, np.random.default_rng(0).standard_normal((4, 3)))
    assert report.passed
    for k, v in t.state_dict().items():
        assert v.dtype == before[k].dtype
        np.testing.assert_array_equal(v, before[k])


def test_trainer_checkpoint_carries_buffers_and_resumes_bit_identically(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3)), rng.integers(0, 3, 40)

    def trainer():
        model = mdl.Sequential(Tracker(), layers.Dense(3, 3, rng=1, dtype=np.float64), Tracker())
        return mdl.Trainer(model, losses.SoftmaxCrossEntropy(), mdl.optim.SGD(model.parameters(), lr=0.1))

    straight = trainer()
    straight.fit(X, y, epochs=2, batch_size=8, seed=3, progress=False)
    first = trainer()
    first.fit(X, y, epochs=1, batch_size=8, seed=3, progress=False)
    first.save_checkpoint(tmp_path / "c.npz")
    resumed = trainer()
    resumed.load_checkpoint(tmp_path / "c.npz")
    assert resumed.model[0].calls == 5
    np.testing.assert_array_equal(resumed.model[2].running_mean, first.model[2].running_mean)
    resumed.fit(X, y, epochs=2, batch_size=8, seed=3, progress=False)
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert list(a) == list(b) and a["0.calls"] == 10
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_state_dict_keep_vars_gives_the_live_objects_as_torch():
    """``state_dict(keep_vars=True)``: the Parameters and buffer arrays themselves (what io and
    from_onnx read without copying), same keys and order as the copies."""
    from minidl import Sequential
    from minidl.layers import BatchNorm1D, Dense
    from minidl.parameter import Parameter
    model = Sequential(Dense(3, 2, rng=0), BatchNorm1D(2))
    live = model.state_dict(keep_vars=True)
    assert list(live) == list(model.state_dict())
    assert live["0.weight"] is model[0].weight and isinstance(live["0.weight"], Parameter)
    assert live["1.running_mean"] is model[1].running_mean
    assert model.state_dict()["1.running_mean"] is not model[1].running_mean
