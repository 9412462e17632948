"""BatchNorm1D / BatchNorm2D: parity with torch in float64 (training and eval, values, every
gradient, running statistics), gradchecks, layouts, memory and bad arguments."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest

import minidl as mdl
from minidl import functional as F
from minidl import layers, losses
from minidl.testing import tie_free

torch = pytest.importorskip("torch")

RNG = np.random.default_rng
TOL = 1e-10
#: The largest |minidl - torch| seen (values and gradients; running statistics), for the report.
PARITY = {"values_grads": 0.0, "running": 0.0, "configs": 0}

OPTIONS = [dict(), dict(momentum=None), dict(momentum=0.3, eps=1e-3), dict(affine=False),
           dict(track_running_stats=False), dict(affine=False, momentum=None)]
SHAPES = [("2d", (4, 3, 5, 6)), ("2d_channels_last", (4, 3, 5, 6)), ("1d_features", (7, 3)),
          ("1d_sequence", (4, 3, 5))]


def _pair(kind, kw, rng):
    cls, tcls = ((layers.BatchNorm2D, torch.nn.BatchNorm2d) if kind.startswith("2d")
                 else (layers.BatchNorm1D, torch.nn.BatchNorm1d))
    ours, theirs = cls(3, dtype=np.float64, **kw), tcls(3, dtype=torch.float64, **kw)
    if ours.affine:
        w, b = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
        ours.weight.data[:], ours.bias.data[:] = w, b
        with torch.no_grad():
            theirs.weight.copy_(torch.from_numpy(w))
            theirs.bias.copy_(torch.from_numpy(b))
    return ours, theirs


def _input(kind, shape, rng):
    x = rng.standard_normal(shape) * 3 + 5  # a mean far from 0: the two-pass variance matters
    if kind == "2d_channels_last":  # the layout conv2d returns: NCHW shape, NHWC memory
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    return x


def _err(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) if np.size(a) else 0.0


@pytest.mark.parametrize("kw", OPTIONS, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()) or "default")
@pytest.mark.parametrize("kind,shape", SHAPES, ids=[s[0] for s in SHAPES])
def test_parity_with_torch_in_training_and_eval_after_training(kind, shape, kw):
    rng = RNG(0)
    ours, theirs = _pair(kind, kw, rng)
    worst = 0.0
    for _ in range(4):  # training steps: values, every gradient, then the running statistics
        x, g = _input(kind, shape, rng), rng.standard_normal(shape)
        xt = torch.tensor(x, requires_grad=True)
        yt = theirs(xt)
        yt.backward(torch.from_numpy(g))
        y = ours(x)
        if ours.affine:
            ours.zero_grad()
        dx = ours.backward(g)
        errs = [_err(y, yt.detach()), _err(dx, xt.grad)]
        if ours.affine:
            errs += [_err(ours.weight.grad, theirs.weight.grad), _err(ours.bias.grad, theirs.bias.grad)]
            theirs.weight.grad = theirs.bias.grad = None
        worst = max(worst, *errs)
        assert max(errs) <= TOL, errs
        if kind == "2d_channels_last":
            assert y.transpose(0, 2, 3, 1).flags.c_contiguous and dx.transpose(0, 2, 3, 1).flags.c_contiguous
    sd, tsd = ours.state_dict(), theirs.state_dict()
    assert list(sd) == list(tsd)  # torch's names and order
    running = max([_err(sd[k], tsd[k]) for k in sd] + [0.0])
    assert running <= 1e-12
    for k in sd:
        assert sd[k].dtype == tsd[k].numpy().dtype and sd[k].shape == tuple(tsd[k].shape), k
    if ours.track_running_stats:
        assert int(sd["num_batches_tracked"]) == int(tsd["num_batches_tracked"]) == 4
        assert sd["num_batches_tracked"].dtype == np.int64
    # eval mode: the running statistics normalise; the gradient of torch's eval-mode module
    ours.eval()
    theirs.eval()
    x, g = _input(kind, shape, rng), rng.standard_normal(shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    yt.backward(torch.from_numpy(g))
    y = ours(x)
    errs = [_err(y, yt.detach())]
    if ours.track_running_stats:  # eval-mode gradient: the kernel with the running statistics
        inv_std = 1 / np.sqrt(ours.running_var + ours.eps)
        w = ours.weight.data if ours.affine else None
        dx, dw, db = F.batch_norm_backward(g, x, ours.running_mean, inv_std, w, training=False)
        errs.append(_err(dx, xt.grad))
        if ours.affine:
            errs += [_err(dw, theirs.weight.grad), _err(db, theirs.bias.grad)]
    # and the layer itself, whose eval-mode forward keeps its caches inside mdl.enable_grad
    ours.zero_grad()
    with mdl.enable_grad():
        np.testing.assert_array_equal(ours(x), y)
        errs.append(_err(ours.backward(g), xt.grad))
    if ours.affine:
        errs += [_err(ours.weight.grad, theirs.weight.grad), _err(ours.bias.grad, theirs.bias.grad)]
    worst = max(worst, *errs)
    assert max(errs) <= TOL, errs
    assert _err(ours.state_dict().get("running_mean", 0), theirs.state_dict().get("running_mean", torch.zeros(()))) \
        <= 1e-12  # eval mode updates nothing
    PARITY["values_grads"] = max(PARITY["values_grads"], worst)
    PARITY["running"] = max(PARITY["running"], running)
    PARITY["configs"] += 1


def test_functional_batch_norm_matches_torch_functional_and_updates_running_stats_in_place():
    rng = RNG(1)
    x = rng.standard_normal((5, 4, 3)) + 2
    w, b = rng.standard_normal(4), rng.standard_normal(4)
    rm, rv = rng.standard_normal(4), rng.uniform(0.5, 2, 4)
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    for training in (True, False):
        y = F.batch_norm(x, rm, rv, w, b, training=training, momentum=0.2, eps=1e-4)
        yt = torch.nn.functional.batch_norm(torch.tensor(x), trm, trv, torch.tensor(w), torch.tensor(b),
                                            training=training, momentum=0.2, eps=1e-4)
        assert _err(y, yt) <= TOL and _err(rm, trm) <= 1e-14 and _err(rv, trv) <= 1e-14


class FrozenStatsBN(layers.BatchNorm2D):
    """Normalises with the running statistics while in training mode (so that it keeps its cache):
    gradchecks the eval-mode backward of the kernel through the layer's own plumbing."""

    def forward(self, x):
        self._check_input(x)
        out, mean, inv_std = F.batch_norm(x, self.running_mean, self.running_var, self.weight.data,
                                          self.bias.data, training=False, eps=self.eps, return_stats=True)
        self.save_for_backward(x=x, mean=mean, inv_std=inv_std, use_batch=False)
        return out


def _trained(layer, shape, steps=3, seed=0):
    rng = RNG(seed)
    for _ in range(steps):
        layer(rng.standard_normal(shape) * 2 + 1)
    return layer


def test_gradcheck_of_the_eval_mode_gradient():
    bn = _trained(FrozenStatsBN(3, dtype=np.float64), (4, 3, 3, 3))
    bn.weight.data[:] = [0.5, 1.5, -2.0]
    bn.bias.data[:] = [0.1, -0.2, 0.3]
    report = mdl.gradcheck(bn, tie_free((2, 3, 3, 4), RNG(2)))
    assert report.passed, str(report)
    assert [t.name for t in report.tensors] == ["input", "weight", "bias"]


class MissingXhatTerm(layers.BatchNorm2D):
    """A classic bug: the input gradient without the ``- x_hat * sum(dy * x_hat)`` term."""

    def backward(self, grad_output):
        x, mean, inv_std, _ = self.saved_values
        dx = super().backward(grad_output)
        m = x.size // x.shape[1]
        xhat = (x - mean[:, None, None]) * inv_std[:, None, None]
        dot = np.einsum("nchw,nchw->c", grad_output, xhat)
        return dx + (self.weight.data * inv_std * dot / m)[:, None, None] * xhat


class MissingMeanTerm(layers.BatchNorm1D):
    """Another: the statistics treated as constants in training (the eval-mode gradient)."""

    def backward(self, grad_output):
        super().backward(grad_output)
        _, _, inv_std, _ = self.saved_values
        return grad_output * self.weight.data * inv_std


@pytest.mark.parametrize("cls,shape", [(MissingXhatTerm, (2, 3, 3, 3)), (MissingMeanTerm, (6, 3))])
def test_gradcheck_and_parity_catch_a_wrong_backward(cls, shape):
    rng = RNG(3)
    bn = cls(3, dtype=np.float64)
    bn.weight.data[:] = rng.uniform(0.5, 2, 3)
    report = mdl.gradcheck(bn, tie_free(shape, rng))
    assert not report.passed
    rows = {t.name: t.passed for t in report.tensors}
    assert rows == {"input": False, "weight": True, "bias": True}
    # and the torch parity check would catch it too
    x, g = rng.standard_normal(shape), rng.standard_normal(shape)
    tb = (torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d)(3, dtype=torch.float64)
    with torch.no_grad():
        tb.weight.copy_(torch.from_numpy(bn.weight.data))
    xt = torch.tensor(x, requires_grad=True)
    tb(xt).backward(torch.from_numpy(g))
    bn(x)
    assert _err(bn.backward(g), xt.grad) > 1e-3


def test_momentum_zero_and_one_and_cumulative_average():
    x1, x2 = RNG(4).standard_normal((2, 6, 2)) + 3
    frozen = layers.BatchNorm1D(2, momentum=0.0, dtype=np.float64)
    last = layers.BatchNorm1D(2, momentum=1.0, dtype=np.float64)
    cma = layers.BatchNorm1D(2, momentum=None, dtype=np.float64)
    for layer in (frozen, last, cma):
        layer(x1), layer(x2)
    np.testing.assert_array_equal(frozen.running_mean, 0) and np.testing.assert_array_equal(frozen.running_var, 1)
    np.testing.assert_allclose(last.running_mean, x2.mean(0), rtol=1e-14)
    np.testing.assert_allclose(last.running_var, x2.var(0, ddof=1), rtol=1e-14)
    np.testing.assert_allclose(cma.running_mean, (x1.mean(0) + x2.mean(0)) / 2, rtol=1e-14)
    np.testing.assert_allclose(cma.running_var, (x1.var(0, ddof=1) + x2.var(0, ddof=1)) / 2, rtol=1e-14)
    assert int(cma.num_batches_tracked) == 2


def test_float32_kept_and_close_to_float64():
    x = RNG(5).standard_normal((8, 4, 6, 6)) * 4 + 10
    b32, b64 = layers.BatchNorm2D(4), layers.BatchNorm2D(4, dtype=np.float64)
    y32, y64 = b32(x.astype(np.float32)), b64(x)
    g = RNG(6).standard_normal(x.shape)
    d32, d64 = b32.backward(g.astype(np.float32)), b64.backward(g)
    assert y32.dtype == d32.dtype == b32.running_mean.dtype == b32.weight.grad.dtype == np.float32
    assert _err(y32, y64) < 1e-4 and _err(d32, d64) < 1e-4
    assert _err(b32.running_var, b64.running_var) < 1e-4 * np.abs(b64.running_var).max()


def test_training_needs_more_than_one_value_per_channel():
    bn = layers.BatchNorm1D(3)
    with pytest.raises(ValueError, match=r"more than 1 value per channel when training.*\(1, 3\)") as info:
        bn(np.ones((1, 3), np.float32))
    assert "torch's rule" not in str(info.value)  # torch's rule also takes an empty batch: not this one
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        torch.nn.BatchNorm1d(3)(torch.ones(1, 3))  # torch refuses one value too
    assert int(bn.num_batches_tracked) == 0  # nothing counted for a refused batch
    bn.eval()(np.ones((1, 3), np.float32))  # eval mode is fine
    layers.BatchNorm2D(3)(np.ones((1, 3, 2, 1), np.float32))  # N * H * W = 2


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("track", [True, False])
@pytest.mark.parametrize("shape", [(0, 3), (0, 3, 4), (0, 3, 2, 2), (2, 3, 0, 2)])
def test_an_empty_batch_in_training_does_what_torch_does(shape, track, momentum):
    """torch 2.13 returns an empty output, leaves the running statistics as they are, counts the batch
    in num_batches_tracked and gives zero weight and bias gradients; minidl refused the batch."""
    ours = (layers.BatchNorm1D if len(shape) < 4 else layers.BatchNorm2D)(
        3, momentum=momentum, track_running_stats=track, dtype=np.float64)
    theirs = (torch.nn.BatchNorm1d if len(shape) < 4 else torch.nn.BatchNorm2d)(
        3, momentum=momentum, track_running_stats=track, dtype=torch.float64)
    state = {"weight": RNG(0).random(3) + 0.5, "bias": RNG(1).random(3)}
    if track:
        state.update(running_mean=RNG(2).random(3), running_var=RNG(3).random(3) + 1,
                     num_batches_tracked=np.array(5))
    ours.load_state_dict(state)
    theirs.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    x = np.ones(shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 0 / 0
        y = ours(x)
        dx = ours.backward(np.ones_like(y))
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    yt.sum().backward()
    assert y.shape == dx.shape == tuple(yt.shape) == shape and y.dtype == dx.dtype == np.float64
    for name, value in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[name], value.numpy(), err_msg=name)
    np.testing.assert_array_equal(ours.weight.grad, theirs.weight.grad.numpy())
    np.testing.assert_array_equal(ours.bias.grad, theirs.bias.grad.numpy())
    assert not ours.weight.grad.any()


def test_eval_mode_keeps_no_cache_and_backward_says_so():
    bn = _trained(layers.BatchNorm2D(2, dtype=np.float64), (2, 2, 3, 3))
    bn(np.ones((2, 2, 3, 3)))  # a training-mode cache
    bn.eval()
    before = bn.state_dict()
    bn(RNG(0).standard_normal((2, 2, 3, 3)))
    assert bn._saved is None
    with pytest.raises(RuntimeError, match="eval mode"):
        bn.backward(np.ones((2, 2, 3, 3)))
    for k, v in bn.state_dict().items():
        np.testing.assert_array_equal(v, before[k])  # nothing updated in eval mode


def test_bad_arguments_and_inputs_are_refused_clearly():
    with pytest.raises(TypeError, match="num_features must be an int"):
        layers.BatchNorm2D(3.0)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\] or None"):
        layers.BatchNorm2D(3, momentum=1.5)
    with pytest.raises(TypeError, match="momentum must be a real number or None"):
        layers.BatchNorm2D(3, momentum="0.1")
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        layers.BatchNorm1D(3, eps=0)
    with pytest.raises(TypeError, match="affine must be True or False"):
        layers.BatchNorm1D(3, affine=1)
    with pytest.raises(TypeError, match="dtype must be a floating-point dtype"):
        layers.BatchNorm1D(3, dtype=np.int32)
    bn = layers.BatchNorm2D(3)
    with pytest.raises(ValueError, match=r"BatchNorm2D\(3, .*expected input of shape \(N, C, H, W\)"):
        bn(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="expected input with 3 channels on axis 1, got shape"):
        bn(np.ones((2, 4, 2, 2), np.float32))
    with pytest.raises(TypeError, match=r"input dtype float64 does not match weight dtype float32"):
        bn(np.ones((2, 3, 2, 2)))
    with pytest.raises(ValueError, match=r"\(N, C\) or \(N, C, L\)"):
        layers.BatchNorm1D(3)(np.ones((2, 3, 2, 2), np.float32))
    with pytest.raises(TypeError, match="must be a numpy.ndarray"):
        bn([[1.0]])
    with pytest.raises(ValueError, match=r"running_mean is needed"):
        F.batch_norm(np.ones((2, 3)), None, None, training=False)
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\)"):
        F.batch_norm(np.ones((2, 3)), None, None, np.ones(4), training=True)


def test_memory_forward_holds_the_output_and_backward_one_temporary():
    """Forward allocates the output (the centred input becomes it); backward the result (the
    centred input becomes it) plus small per-channel vectors; no copy of the input is kept."""
    x = RNG(0).standard_normal((16, 8, 32, 32)).astype(np.float32)
    x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)  # channels-last
    g = np.ones_like(x)
    bn = layers.BatchNorm2D(8)
    bn(x), bn.backward(g)  # warm-up
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        y = bn(x)
        fwd = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        held = tracemalloc.get_traced_memory()[0]  # the output
        dx = bn.backward(g)
        bwd = tracemalloc.get_traced_memory()[1] - held
    finally:
        tracemalloc.stop()
    assert y.transpose(0, 2, 3, 1).flags.c_contiguous and dx.transpose(0, 2, 3, 1).flags.c_contiguous
    assert fwd < 1.1 * x.nbytes, (fwd, x.nbytes)
    assert bwd < 1.1 * x.nbytes, (bwd, x.nbytes)
    (saved_x, *_), = [bn.saved_values[:1]]
    assert saved_x is x  # the input itself, not a copy


def test_in_a_model_saved_loaded_and_resumed_bit_identically(tmp_path):
    rng = RNG(0)
    X, y = rng.standard_normal((48, 1, 6, 6)).astype(np.float32), rng.integers(0, 3, 48)

    def trainer():
        model = mdl.Sequential(layers.Conv2D(1, 4, 3, rng=1), layers.BatchNorm2D(4), layers.ReLU(),
                               layers.Flatten(), layers.Dense(64, 8, rng=2), layers.BatchNorm1D(8),
                               layers.Dense(8, 3, rng=3))
        return mdl.Trainer(model, losses.SoftmaxCrossEntropy(),
                           mdl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))

    straight = trainer()
    straight.fit(X, y, epochs=2, batch_size=16, seed=4, progress=False)
    first = trainer()
    first.fit(X, y, epochs=1, batch_size=16, seed=4, progress=False)
    first.save_checkpoint(tmp_path / "c.npz")
    resumed = trainer()
    resumed.load_checkpoint(tmp_path / "c.npz")
    resumed.fit(X, y, epochs=2, batch_size=16, seed=4, progress=False)
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert "1.running_var" in a and int(a["5.num_batches_tracked"]) == 6
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert len(straight.model.parameters()) == 10 and len(straight.model.buffers()) == 6
    straight.model.save(tmp_path / "m.npz")
    loaded = mdl.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.eval()(X), straight.model.eval()(X))
