"""Issue 6: non-finite values never reach weights or checkpoints; errors before work; clipping."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

import minidl as mdl
from minidl import layers, losses, models
from minidl.callbacks import Callback, EarlyStopping, LearningRateScheduler, ModelCheckpoint

RNG = np.random.default_rng


@pytest.fixture(scope="module")
def small():
    (X, y), (Xt, yt) = mdl.data.load_digits()
    return (X[:256], y[:256]), (Xt[:64], yt[:64])


def linear(seed=0, dtype=np.float32):
    return mdl.Sequential(layers.Flatten(), layers.Dense(64, 10, dtype=dtype, rng=RNG(seed)))


def trainer_for(model, lr=0.1, momentum=0.0, **kwargs):
    return mdl.Trainer(model, losses.SoftmaxCrossEntropy(),
                       mdl.optim.SGD(model.parameters(), lr=lr, momentum=momentum), **kwargs)


def snapshot(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def assert_same(model, snap):
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, snap[k], err_msg=k)


class Spy(Callback):
    """Keeps the weights at the start of every batch and counts batches."""

    def __init__(self):
        self.batches, self.before = 0, None

    def on_batch_begin(self, batch, logs=None):
        self.batches += 1
        self.before = snapshot(self.trainer.model)


# ------------------------------------------------------------ 3. non-finite
def test_overflowing_update_on_the_last_batch_never_leaves_nan_weights_or_poisons_the_best_checkpoint(small, tmp_path):
    """Before: the update of the last batch made the weights inf/nan, fit returned normally and
    save_best_only overwrote the best file with them. Now the update is refused, fit stops
    naming where, the weights are the pre-step ones and the best file is kept."""
    (X, y), _ = small
    X = X * 1000  # finite, but gradients large enough that lr * grad overflows float32
    model = linear()
    trainer = trainer_for(model, lr=1e-4, momentum=0.9)
    best = tmp_path / "best.npz"
    spy = Spy()
    jump = LearningRateScheduler(lambda epoch, lr: 1e-4 if epoch == 0 else 1e37)
    ckpt = ModelCheckpoint(best, monitor="loss", save_best_only=True)
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match=r"epoch 2, batch 1") as info:
        trainer.fit(X, y, epochs=2, batch_size=len(X), seed=0, progress=False, callbacks=[jump, spy, ckpt])
    assert "non-finite" in str(info.value) and "before this batch" in str(info.value)
    assert_same(model, spy.before)  # exactly the pre-step weights
    assert all(np.isfinite(p.data).all() for p in model.parameters())
    saved = mdl.load(best)
    assert all(np.isfinite(v).all() for v in saved.state_dict().values())
    assert info.value.history.epoch == [0]  # the completed epoch is not lost


def test_schedule_jumping_to_an_lr_not_finite_in_float32_stops_before_the_epoch(small, tmp_path):
    (X, y), _ = small
    model = linear()
    best = tmp_path / "best.npz"
    spy = Spy()
    jump = LearningRateScheduler(lambda epoch, lr: 0.1 if epoch == 0 else 1e39)
    with pytest.raises(ValueError, match=r"lr=1e\+39 is not finite in the parameters' dtype float32") as info:
        trainer_for(model).fit(X, y, epochs=3, batch_size=64, seed=0, progress=False,
                               callbacks=[jump, spy, ModelCheckpoint(best, monitor="loss", save_best_only=True)])
    assert spy.batches == 4  # epoch 1 only
    assert info.value.history.epoch == [0]
    assert all(np.isfinite(v).all() for v in mdl.load(best).state_dict().values())


def test_huge_lr_error_is_true_no_weight_is_non_finite(small):
    (X, y), _ = small
    model = models.reference_cnn(rng=RNG(0))
    trainer = trainer_for(model, lr=1e8)
    spy = Spy()
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError) as info:
        trainer.fit(X, y, epochs=3, batch_size=32, seed=0, progress=False, callbacks=[spy])
    assert "epoch 1" in str(info.value)
    assert_same(model, spy.before)
    assert sum(int((~np.isfinite(p.data)).sum()) for p in model.parameters()) == 0


def test_momentum_buffers_are_restored_with_the_weights(small):
    (X, y), _ = small
    model = linear()
    trainer = trainer_for(model, lr=0.1, momentum=0.9)
    trainer.fit(X, y, epochs=1, batch_size=64, seed=0, progress=False)
    buffers = {i: b.copy() for i, b in trainer.optimizer.momentum_buffers.items()}
    weights = snapshot(model)
    trainer.optimizer.lr = 1e37
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError):
        trainer.fit(X * 1000, y, epochs=1, batch_size=64, seed=1, progress=False)
    assert_same(model, weights)
    assert sorted(buffers) == sorted(trainer.optimizer.momentum_buffers)
    for i, b in buffers.items():
        np.testing.assert_array_equal(trainer.optimizer.momentum_buffers[i], b)


class NaNOptimizer:
    """A user optimizer without an atomic step: it writes nan into the first weight."""

    def __init__(self, params):
        self.params, self.steps = list(params), 0

    def zero_grad(self):
        for p in self.params:
            p.zero_grad()

    def step(self):
        self.steps += 1
        for p in self.params:
            p.data -= 0.01 * p.grad
        self.params[0].data[0] = np.nan

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.steps = state["steps"]


def test_other_optimizers_are_rolled_back_by_the_trainer(small):
    (X, y), _ = small
    model = linear()
    opt = NaNOptimizer(model.parameters())
    trainer = mdl.Trainer(model, losses.SoftmaxCrossEntropy(), opt)
    before = snapshot(model)
    with pytest.raises(FloatingPointError, match="epoch 1, batch 1"):
        trainer.fit(X, y, epochs=1, progress=False)
    assert_same(model, before)
    assert opt.steps == 0


@pytest.mark.parametrize("dtype, ok", [(np.float32, False), (np.float64, True)])
def test_sgd_refuses_an_lr_that_is_not_finite_in_the_parameters_dtype(dtype, ok):
    params = linear(dtype=dtype).parameters()
    if ok:
        assert mdl.optim.SGD(params, lr=1e39).lr == 1e39
    else:
        with pytest.raises(ValueError, match="not finite in the parameters' dtype float32"):
            mdl.optim.SGD(params, lr=1e39)
    opt = mdl.optim.SGD(params, lr=0.1)
    for bad in (np.inf, np.nan, 1e309):
        with pytest.raises(ValueError, match="lr"):
            opt.lr = bad
    assert opt.lr == 0.1


def test_model_checkpoint_never_writes_non_finite_weights(small, tmp_path):
    (X, y), _ = small
    path = tmp_path / "m.npz"
    model = linear()
    model.save(path)
    before = path.read_bytes()

    class Poison(Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.trainer.model.parameters()[0].data[0, 0] = np.inf

    with pytest.raises(FloatingPointError, match="nan or inf.*nothing was written"):
        trainer_for(model).fit(X, y, epochs=1, progress=False, callbacks=[Poison(), ModelCheckpoint(path)])
    assert path.read_bytes() == before


def test_nan_in_validation_data_is_refused_before_training(small):
    """Before: val_loss was nan, EarlyStopping stopped after one epoch and restored nothing."""
    (X, y), (Xt, yt) = small
    Xt = Xt.copy()
    Xt[5, 0, 1, 1] = np.nan
    model = linear()
    before, spy = snapshot(model), Spy()
    with pytest.raises(ValueError, match=r"validation_data\[0\] contains nan or inf.*sample 5"):
        trainer_for(model).fit(X, y, epochs=5, validation_data=(Xt, yt), progress=False,
                               callbacks=[spy, EarlyStopping(restore_best_weights=True)])
    assert spy.batches == 0
    assert_same(model, before)


def test_validation_loss_that_overflows_raises(small):
    (X, y), (Xt, yt) = small
    huge = np.full_like(Xt, 3e38)  # finite input, but the logits overflow
    # to inf or nan, depending on the BLAS and numpy build (inf - inf in the softmax)
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match="validation loss is (nan|inf)"):
        trainer_for(linear()).fit(X, y, epochs=2, validation_data=(huge, yt), progress=False)


# ------------------------------------------------------- 4. errors before work
@pytest.mark.parametrize("make, match", [
    (lambda m: (m, layers.Dense(10, 10), mdl.optim.SGD(m.parameters(), lr=0.1)), "loss must be a loss"),
    (lambda m: (m, losses.SoftmaxCrossEntropy, mdl.optim.SGD(m.parameters(), lr=0.1)),
     r"SoftmaxCrossEntropy\(\.\.\.\)"),
    (lambda m: (m, losses.SoftmaxCrossEntropy(), object()), "optimizer must have step"),
    (lambda m: (m, losses.SoftmaxCrossEntropy(), mdl.optim.SGD), r"an instance is needed: SGD\(\.\.\.\)"),
    (lambda m: (np.zeros(3), losses.SoftmaxCrossEntropy(), mdl.optim.SGD(m.parameters(), lr=0.1)), "model must be"),
])
def test_trainer_refuses_wrong_components(make, match):
    with pytest.raises(TypeError, match=match):
        mdl.Trainer(*make(linear()))


def test_bare_string_metrics_is_refused():
    m = linear()
    with pytest.raises(TypeError, match=r"metrics=\['accuracy'\]"):
        mdl.Trainer(m, losses.SoftmaxCrossEntropy(), mdl.optim.SGD(m.parameters(), lr=0.1), metrics="accuracy")


@pytest.mark.parametrize("bad_y", [None, "list"])
def test_y_must_be_an_array(small, bad_y):
    (X, y), _ = small
    spy = Spy()
    with pytest.raises(TypeError, match="y must be a numpy.ndarray"):
        trainer_for(linear()).fit(X, None if bad_y is None else y.tolist(), epochs=1, progress=False,
                                  callbacks=[spy])
    assert spy.batches == 0


@pytest.mark.parametrize("template, match", [
    ("m-{val_loss:.3f}.npz", "val_loss.*will not be logged"),
    ("m-{x}.npz", r"\{x\}"),
    ("m-{0}.npz", r"\{0\}"),
    ("m-{}.npz", r"\{\}"),
    ("m-{epoch.real}.npz", "epoch.real"),
    ("m-{epoch.npz", "malformed"),
    ("m-{epoch:q}.npz", "does not format"),
    ("missing-folder/m.npz", "does not exist"),
])
def test_model_checkpoint_templates_are_checked_before_the_first_batch(small, tmp_path, template, match):
    (X, y), _ = small
    model = linear()
    before, spy = snapshot(model), Spy()
    with pytest.raises(ValueError, match=match):
        trainer_for(model).fit(X, y, epochs=3, progress=False,
                               callbacks=[spy, ModelCheckpoint(str(tmp_path / template))])
    assert spy.batches == 0
    assert_same(model, before)
    assert os.listdir(tmp_path) == []


def test_model_checkpoint_template_with_logged_metrics_works(small, tmp_path):
    (X, y), val = small
    cb = ModelCheckpoint(str(tmp_path / "m-{epoch:02d}-{val_loss:.3f}-{accuracy:.2f}-{lr}.npz"))
    trainer_for(linear()).fit(X, y, epochs=2, validation_data=val, progress=False,
                              callbacks=[LearningRateScheduler(lambda e, lr: 0.1), cb])
    assert len(cb.saved) == 2 and all(os.path.exists(p) for p in cb.saved)


def test_failed_checkpoint_write_keeps_the_history_of_completed_epochs(small, tmp_path):
    (X, y), _ = small
    folder = tmp_path / "ckpts"
    folder.mkdir()

    class RemoveFolder(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                shutil.rmtree(folder)

    trainer = trainer_for(linear())
    with pytest.raises(FileNotFoundError, match="m.npz") as info:
        trainer.fit(X, y, epochs=4, progress=False,
                    callbacks=[RemoveFolder(), ModelCheckpoint(str(folder / "m.npz"))])
    history = info.value.history
    assert history is trainer.history and history.epoch == [0, 1]
    assert len(history["loss"]) == 2 and all(np.isfinite(history["loss"]))


def test_early_stopping_monitor_is_checked_before_work(small):
    (X, y), _ = small
    spy = Spy()
    with pytest.raises(ValueError, match="will not be in the logs"):
        trainer_for(linear()).fit(X, y, epochs=2, progress=False, callbacks=[spy, EarlyStopping()])
    assert spy.batches == 0


@pytest.mark.parametrize("patience", [True, 1.0, "2"])
def test_early_stopping_patience_must_be_an_int(patience):
    # issue 11: a TypeError, from the one integer validator (a ValueError before)
    with pytest.raises(TypeError, match=r"EarlyStopping: patience must be an int\. Received: patience="):
        EarlyStopping(patience=patience)
    assert EarlyStopping(patience=np.int64(2)).patience == 2


# ---------------------------------------------------------------- clipping
@pytest.mark.parametrize("norm_type", [2.0, 1.0, np.inf, 3.5])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(norm_type, dtype, max_norm):
    torch = pytest.importorskip("torch")
    rng = RNG(0)
    params = [mdl.Parameter(rng.standard_normal(s).astype(dtype)) for s in [(3, 4), (5,), (2, 2, 3)]]
    for p in params:
        p.grad[...] = rng.standard_normal(p.shape).astype(dtype) * 3
    tparams = [torch.nn.Parameter(torch.from_numpy(p.data.copy())) for p in params]
    for t, p in zip(tparams, params):
        t.grad = torch.from_numpy(p.grad.copy())
    total = mdl.optim.clip_grad_norm(params, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type)
    tol = dict(rtol=1e-12, atol=0) if dtype == np.float64 else dict(rtol=2e-6, atol=0)
    np.testing.assert_allclose(total, float(ttotal), **tol)
    for p, t in zip(params, tparams):
        assert p.grad.dtype == dtype
        np.testing.assert_allclose(p.grad, t.grad.numpy(), **tol)


def test_clip_grad_norm_non_finite_like_torch():
    torch = pytest.importorskip("torch")
    g = np.array([1.0, np.nan, 2.0])
    p = mdl.Parameter(np.zeros(3))
    p.grad[...] = g
    t = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    t.grad = torch.from_numpy(g.copy())
    assert np.isnan(mdl.optim.clip_grad_norm([p], 1.0))
    torch.nn.utils.clip_grad_norm_([t], 1.0)
    np.testing.assert_array_equal(p.grad, t.grad.numpy())
    p.grad[...] = g
    with pytest.raises(RuntimeError, match="non"):
        torch.nn.utils.clip_grad_norm_([t], 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="nan"):
        mdl.optim.clip_grad_norm([p], 1.0, error_if_nonfinite=True)


def test_fit_clip_grad_norm_bounds_each_update(small):
    (X, y), _ = small
    a, b = linear(), linear()
    trainer_for(a, lr=1.0).fit(X[:32], y[:32], epochs=1, seed=0, progress=False, clip_grad_norm=1e-3)
    trainer_for(b, lr=1.0).fit(X[:32], y[:32], epochs=1, seed=0, progress=False, clip_grad_norm=1e9)
    c = linear()
    delta = np.sqrt(sum(((p.data - q.data) ** 2).sum() for p, q in zip(a.parameters(), c.parameters())))
    assert delta <= 1e-3 * (1 + 1e-5)
    unclipped = linear()
    trainer_for(unclipped, lr=1.0).fit(X[:32], y[:32], epochs=1, seed=0, progress=False)
    assert_same(b, snapshot(unclipped))
    with pytest.raises(ValueError, match="clip_grad_norm"):
        trainer_for(linear()).fit(X, y, epochs=1, progress=False, clip_grad_norm=-1.0)
