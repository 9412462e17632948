"""Issue 10: the ``on_after_backward`` hook and the opt-in NormHistory callback."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as mdl
from minidl import layers, losses
from minidl.callbacks import Callback, NormHistory


def tiny_model(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return mdl.Sequential(
        layers.Conv2D(1, 2, 3, padding=1, dtype=dtype, rng=rng), layers.ReLU(), layers.Flatten(),
        layers.Dense(2 * 4 * 4, 3, dtype=dtype, rng=rng),
    )


def tiny_data(n=16, dtype=np.float64):
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, 1, 4, 4)).astype(dtype), rng.integers(0, 3, n)


def make_trainer(model, lr=0.5):
    return mdl.Trainer(model, losses.SoftmaxCrossEntropy(), mdl.optim.SGD(model.parameters(), lr=lr),
                       blas_threads=None)


class Spy(Callback):
    """Snapshots of the weights and grads at each hook of a batch."""

    def __init__(self):
        self.calls, self.after_backward = [], []

    def _snap(self):
        return {n: (p.data.copy(), p.grad.copy()) for n, p in self.trainer.model.named_parameters()}

    def on_batch_begin(self, batch, logs=None):
        self.calls.append(("batch_begin", batch))
        self.begin = self._snap()

    def on_after_backward(self, batch, logs=None):
        self.calls.append(("after_backward", batch))
        self.after_backward.append((dict(logs), self._snap(), self.begin))

    def on_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch))


def test_on_after_backward_runs_between_backward_and_step():
    X, y = tiny_data()
    model = tiny_model()
    spy = Spy()
    make_trainer(model).fit(X, y, epochs=2, batch_size=8, shuffle=False, callbacks=[spy], progress=False)
    assert spy.calls == [(h, b) for _ in range(2) for b in range(2)
                         for h in ("batch_begin", "after_backward", "batch_end")]
    for logs, at_hook, at_begin in spy.after_backward:
        assert logs["batch_size"] == 8 and np.isfinite(logs["loss"])
        for name, (data, grad) in at_hook.items():
            np.testing.assert_array_equal(data, at_begin[name][0], err_msg=name)  # not yet stepped
            assert np.any(grad != 0), name  # the batch's gradient is there
    # the logged loss is that of the batch (the first batch: the untouched initial model)
    ref = tiny_model()
    expected = losses.SoftmaxCrossEntropy().forward(ref.forward(X[:8]), y[:8])
    assert spy.after_backward[0][0]["loss"] == pytest.approx(expected, rel=1e-12)


def _by_hand(X, y, batch_size, clip=None, lr=0.5):
    """The norms of the gradients (before clipping and the step) and weights, per batch."""
    model, loss = tiny_model(), losses.SoftmaxCrossEntropy()
    opt = mdl.optim.SGD(model.parameters(), lr=lr)
    grads, weights = [], []
    for start in range(0, len(X), batch_size):
        xb, yb = X[start:start + batch_size], y[start:start + batch_size]
        loss.forward(model.forward(xb), yb)
        opt.zero_grad()
        model.backward(loss.backward())
        grads.append({n: np.linalg.norm(p.grad) for n, p in model.named_parameters()})
        weights.append({n: np.linalg.norm(p.data) for n, p in model.named_parameters()})
        if clip is not None:
            mdl.optim.clip_grad_norm(model.parameters(), clip)
        opt.step()
    return grads, weights


def test_norm_history_equals_norms_computed_by_hand_before_the_step():
    """Two batches; clipping to 1e-3 makes the post-clip gradients tiny and the lr moves the
    weights, so norms recorded after the clip/step (or after zero_grad: zeros) would not match."""
    X, y = tiny_data()
    norms = NormHistory()
    make_trainer(tiny_model()).fit(X, y, epochs=1, batch_size=8, shuffle=False, clip_grad_norm=1e-3,
                                   callbacks=[norms], progress=False)
    grads, weights = _by_hand(X, y, 8, clip=1e-3)
    names = ["0.weight", "0.bias", "3.weight", "3.bias"]
    assert norms.steps == [0, 1]
    assert list(norms.grad_norms) == names and list(norms.weight_norms) == names
    for name in names:
        np.testing.assert_allclose(norms.grad_norms[name], [g[name] for g in grads], rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(norms.weight_norms[name], [w[name] for w in weights], rtol=1e-12,
                                   err_msg=name)
        assert all(isinstance(v, float) for v in norms.grad_norms[name] + norms.weight_norms[name])
    # the test discriminates: the recorded gradients are far above the clipped ones, and the
    # second batch's weights are not the first's
    total = np.sqrt(sum(norms.grad_norms[n][1] ** 2 for n in names))
    assert total > 1e-1
    assert norms.weight_norms["3.weight"][1] != pytest.approx(norms.weight_norms["3.weight"][0], rel=1e-6)


def test_norm_history_every_counts_batches_over_the_run_and_restarts_with_fit():
    X, y = tiny_data(20)
    norms = NormHistory(every=2)
    trainer = make_trainer(tiny_model())
    trainer.fit(X, y, epochs=2, batch_size=8, callbacks=[norms], seed=0, progress=False)  # 3 batches/epoch
    assert norms.steps == [0, 2, 4]
    assert all(len(v) == 3 for v in [*norms.grad_norms.values(), *norms.weight_norms.values()])
    trainer.fit(X, y, epochs=1, batch_size=8, callbacks=[norms], seed=0, progress=False)
    assert norms.steps == [0, 2]


def test_norm_history_resumes_from_a_trainer_checkpoint(tmp_path):
    X, y = tiny_data(24)

    def run(epochs, load=None, save=None):
        norms = NormHistory(every=2)
        trainer = make_trainer(tiny_model())
        if load:
            trainer.load_checkpoint(load)
        trainer.fit(X, y, epochs=epochs, batch_size=8, callbacks=[norms], seed=3, progress=False)
        if save:
            trainer.save_checkpoint(save)
        return norms

    whole = run(2)
    run(1, save=tmp_path / "ckpt.npz")
    resumed = run(2, load=tmp_path / "ckpt.npz")
    assert whole.steps == resumed.steps == [0, 2, 4]
    assert resumed.grad_norms == whole.grad_norms and resumed.weight_norms == whole.weight_norms


def test_norm_history_state_dict_round_trip_and_bad_state():
    a = NormHistory()
    a.load_state_dict({"grad_norms": {"w": [1.0, 2.0]}, "weight_norms": {"w": [3.0, 4.0]},
                       "steps": [0, 1], "count": 2})
    b = NormHistory()
    b.load_state_dict(a.state_dict())
    assert (b.steps, b.grad_norms, b.weight_norms) == ([0, 1], {"w": [1.0, 2.0]}, {"w": [3.0, 4.0]})
    with pytest.raises(ValueError, match=r"NormHistory.load_state_dict: expected .*Received"):
        b.load_state_dict({"grad_norms": {"w": [1.0]}, "weight_norms": {}, "steps": [0, 1], "count": 2})
    assert b.steps == [0, 1]  # unchanged


@pytest.mark.parametrize("every, exc, match", [
    (0, ValueError, r"NormHistory: every must be >= 1\. Received: every=0"),
    (1.5, TypeError, r"NormHistory: every must be an int\. Received: every=1\.5"),
    (True, TypeError, "every must be an int"),
])
def test_norm_history_rejects_bad_every(every, exc, match):
    with pytest.raises(exc, match=match):
        NormHistory(every=every)


def test_norm_history_is_exported():
    assert mdl.NormHistory is NormHistory and "NormHistory" in mdl.callbacks.__all__
    assert "NormHistory" in mdl.__all__


def test_norm_history_record_copies_no_parameter():
    """Memory: a record reads the arrays in place (np.linalg.norm of a contiguous array ravels
    to a view); a copy of the largest gradient (Dense 3136x128, 1.5 MiB) would show in the peak."""
    import tracemalloc

    model = mdl.models.mnist_cnn(0)
    norms = NormHistory()
    norms.set_trainer(type("T", (), {"model": model})())
    for p in model.parameters():
        p.grad[...] = 1.0
    norms.on_after_backward(0)  # warm up
    tracemalloc.start()
    try:
        norms.on_after_backward(1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    largest = max(p.grad.nbytes for p in model.parameters())
    assert peak < largest / 50, (peak, largest)
    assert norms.grad_norms["7.weight"][-1] == pytest.approx(np.sqrt(3136 * 128))
