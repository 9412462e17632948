"""Trainer (fit / evaluate / predict), History and the callbacks."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pytest

import minidl as mdl
from minidl import layers, losses, models
from minidl.callbacks import Callback, EarlyStopping, LearningRateScheduler, ModelCheckpoint

RNG = np.random.default_rng


# ----------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def digits():
    return mdl.data.load_digits()


@pytest.fixture(scope="module")
def small(digits):
    """300 training and 100 validation digits (fast)."""
    (X, y), (Xt, yt) = digits
    return (X[:300], y[:300]), (Xt[:100], yt[:100])


def linear_model(seed=0, dtype=np.float32):
    return mdl.Sequential(layers.Flatten(), layers.Dense(64, 10, dtype=dtype, rng=RNG(seed)))


def make_trainer(model=None, lr=0.1, momentum=0.0, metrics=("accuracy",)):
    model = model if model is not None else linear_model()
    opt = mdl.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    return mdl.Trainer(model, losses.SoftmaxCrossEntropy(), opt, metrics=metrics)


def weights(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def assert_weights_equal(model, snap):
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, snap[k], err_msg=k)


class Recorder(Callback):
    """Records every hook call as (hook, index) and snapshots the weights at each epoch end."""

    def __init__(self):
        self.calls = []
        self.epoch_weights = []
        self.batch_logs = []
        self.lrs = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin", None))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_batch_begin(self, batch, logs=None):
        self.calls.append(("batch_begin", batch))
        self.lrs.append(self.trainer.optimizer.lr)

    def on_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch))
        self.batch_logs.append(dict(logs))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch))
        self.epoch_weights.append(weights(self.trainer.model))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end", None))


# ----------------------------------------------------------------------- History
def test_fit_returns_history_mapping(small):
    (X, y), val = small
    trainer = make_trainer()
    history = trainer.fit(X, y, epochs=3, validation_data=val, seed=0, progress=False)
    assert isinstance(history, mdl.History) and isinstance(history, Mapping)
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history) == 4
    for key in history:
        assert isinstance(history[key], list) and len(history[key]) == 3
        assert all(isinstance(v, float) for v in history[key])
    assert history.history is not None and history.history["loss"] == history["loss"]
    assert dict(history) == history.history
    assert history.epoch == [0, 1, 2]
    assert trainer.history is history
    assert all(0.0 <= a <= 1.0 for a in history["accuracy"] + history["val_accuracy"])
    assert history["loss"][-1] < history["loss"][0]
    with pytest.raises(KeyError):
        history["nope"]


def test_fit_without_validation_or_metrics(small):
    (X, y), _ = small
    h = make_trainer(metrics=()).fit(X, y, epochs=1, seed=0, progress=False)
    assert set(h) == {"loss"}
    h = make_trainer().fit(X, y, epochs=1, seed=0, progress=False)
    assert set(h) == {"loss", "accuracy"}


def test_val_metrics_equal_evaluate_after_last_epoch(small):
    (X, y), (Xv, yv) = small
    trainer = make_trainer()
    h = trainer.fit(X, y, epochs=2, validation_data=(Xv, yv), seed=0, progress=False)
    result = trainer.evaluate(Xv, yv)
    assert h["val_loss"][-1] == pytest.approx(result["loss"], rel=1e-12)
    assert h["val_accuracy"][-1] == pytest.approx(result["accuracy"], rel=1e-12)


def test_epoch_loss_is_sample_weighted_mean_of_batch_losses(small):
    (X, y), _ = small
    X, y = X[:100], y[:100]  # batches of 32, 32, 32, 4
    rec = Recorder()
    h = make_trainer().fit(X, y, epochs=1, batch_size=32, seed=0, callbacks=[rec], progress=False)
    sizes = [b["batch_size"] for b in rec.batch_logs]
    assert sizes == [32, 32, 32, 4]
    for key in ("loss", "accuracy"):
        expected = sum(b[key] * b["batch_size"] for b in rec.batch_logs) / 100
        assert h[key][0] == pytest.approx(expected, rel=1e-12)


def test_custom_metric_callable(small):
    (X, y), val = small

    def top2(y_true, outputs):
        return float(np.mean((np.argsort(outputs, axis=1)[:, -2:] == y_true[:, None]).any(axis=1)))

    h = make_trainer(metrics=("acc", top2)).fit(X, y, epochs=1, validation_data=val, seed=0, progress=False)
    assert set(h) == {"loss", "accuracy", "top2", "val_loss", "val_accuracy", "val_top2"}
    assert h["top2"][0] >= h["accuracy"][0]


# --------------------------------------------------------------------- progress
def test_progress_false_prints_nothing(small, capfd):
    (X, y), val = small
    capfd.readouterr()
    make_trainer().fit(X, y, epochs=2, validation_data=val, seed=0, progress=False)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_progress_true_writes_a_tqdm_bar_with_loss_to_stderr(small, capfd):
    (X, y), val = small
    capfd.readouterr()
    make_trainer().fit(X, y, epochs=2, validation_data=val, seed=0, progress=True)
    out, err = capfd.readouterr()
    assert out == ""
    assert "Epoch 1/2" in err and "Epoch 2/2" in err
    assert "loss=" in err and "val_loss=" in err and "accuracy=" in err
    assert f"{-(-300 // 32)}/{-(-300 // 32)}" in err  # 10/10 batches


def test_evaluate_and_predict_print_nothing(small, capfd):
    (X, y), _ = small
    trainer = make_trainer()
    capfd.readouterr()
    trainer.evaluate(X, y)
    trainer.predict(X)
    assert capfd.readouterr() == ("", "")


# ------------------------------------------------------------ evaluate / predict
def test_evaluate_weights_partial_last_batch_by_samples(digits):
    (X, y), _ = digits
    X, y = X[:70], y[:70]  # batches of 32, 32, 6
    model = models.reference_cnn(rng=RNG(0))
    trainer = make_trainer(model)
    full_logits = model.forward(X)
    full_loss = losses.SoftmaxCrossEntropy()(full_logits, y)
    full_acc = float(np.mean(full_logits.argmax(1) == y))
    result = trainer.evaluate(X, y, batch_size=32)
    assert set(result) == {"loss", "accuracy"}
    assert result["loss"] == pytest.approx(full_loss, rel=1e-5)
    assert result["accuracy"] == pytest.approx(full_acc, abs=1e-12)
    # a plain mean over batches would differ: make sure the test can tell
    batch_means = [losses.SoftmaxCrossEntropy()(model.forward(X[i:i + 32]), y[i:i + 32])
                   for i in range(0, 70, 32)]
    assert abs(np.mean(batch_means) - full_loss) > 1e-4
    assert trainer.evaluate(X, y, batch_size=256)["loss"] == pytest.approx(full_loss, rel=1e-5)


@pytest.mark.parametrize("n, batch_size", [(37, 8), (70, 256), (5, 1), (64, 32)])
def test_predict_equals_one_forward_pass(digits, n, batch_size):
    (X, _), _ = digits
    model = models.reference_cnn(rng=RNG(0))
    trainer = make_trainer(model)
    pred = trainer.predict(X[:n], batch_size=batch_size)
    assert pred.shape == (n, 10) and pred.dtype == np.float32
    np.testing.assert_allclose(pred, model.forward(X[:n]), rtol=0, atol=1e-5)


def test_evaluate_and_predict_use_eval_mode_and_restore_it(small):
    (X, y), _ = small
    seen = []

    class ModeSpy(layers.Layer):
        def forward(self, x):
            seen.append(self.training)
            return x

        def backward(self, g):
            return g

    model = mdl.Sequential(ModeSpy(), layers.Flatten(), layers.Dense(64, 10, rng=RNG(0)))
    trainer = make_trainer(model)
    trainer.evaluate(X, y)
    trainer.predict(X)
    assert seen and not any(seen)
    assert model.training and model[0].training
    model.eval()
    trainer.predict(X)
    assert not model.training  # restored to what it was
    seen.clear()
    trainer.fit(X, y, epochs=1, seed=0, progress=False)  # fit trains in training mode
    assert seen[0] is False and all(seen[1:])  # after its check of one sample in eval mode (fit_probe)


# -------------------------------------------------------------------- callbacks
def test_callback_hooks_order_and_counts(small):
    (X, y), val = small
    X, y = X[:100], y[:100]
    rec = Recorder()
    trainer = make_trainer()
    trainer.fit(X, y, epochs=3, batch_size=32, validation_data=val, seed=0, callbacks=[rec], progress=False)
    assert rec.trainer is trainer
    names = [c[0] for c in rec.calls]
    assert names.count("train_begin") == 1 and names.count("train_end") == 1
    assert names.count("epoch_begin") == names.count("epoch_end") == 3
    assert names.count("batch_begin") == names.count("batch_end") == 3 * 4
    expected = [("train_begin", None)]
    for e in range(3):
        expected.append(("epoch_begin", e))
        for b in range(4):
            expected += [("batch_begin", b), ("batch_end", b)]
        expected.append(("epoch_end", e))
    expected.append(("train_end", None))
    assert rec.calls == expected


def test_callbacks_see_epoch_logs(small):
    (X, y), val = small
    got = {}

    class Grab(Callback):
        def on_epoch_end(self, epoch, logs=None):
            got[epoch] = dict(logs)

        def on_train_end(self, logs=None):
            got["end"] = dict(logs)

    h = make_trainer().fit(X, y, epochs=2, validation_data=val, seed=0, callbacks=[Grab()], progress=False)
    assert set(got[0]) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    for e in range(2):
        for k in h:
            assert got[e][k] == h[k][e]
    assert got["end"]["loss"] == h["loss"][-1]


def test_fit_rejects_non_callbacks(small):
    (X, y), _ = small
    with pytest.raises(TypeError, match="Callback"):
        make_trainer().fit(X, y, epochs=1, callbacks=[lambda *a: None], progress=False)


# ------------------------------------------------------------- early stopping
PATIENCE = 2


def _diverging_run(small, patience=PATIENCE, restore=True, epochs=10):
    """Linear model, lr 0.5 for 3 epochs (val_loss improves: ~1.68, 1.20, 1.02), then lr 100
    (val_loss jumps above 10 and stays there): the best epoch is epoch 2 (0-based)."""
    (X, y), val = small
    model = linear_model(0)
    trainer = make_trainer(model, lr=0.5)
    rec = Recorder()
    sched = LearningRateScheduler(lambda epoch, lr: 0.5 if epoch < 3 else 100.0)
    stop = EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=restore)
    h = trainer.fit(X, y, epochs=epochs, validation_data=val, seed=0,
                    callbacks=[sched, rec, stop], progress=False)
    return model, h, rec, stop


def test_early_stopping_stops_after_no_improvement_and_restores_best_weights(small):
    model, h, rec, stop = _diverging_run(small)
    val = h["val_loss"]
    best = int(np.argmin(val))
    assert best == 2, val  # the engineered run: improves for 3 epochs, then diverges
    assert len(val) < 10  # stopped early
    assert all(v > val[best] for v in val[best + 1:])
    assert stop.best == val[best] and stop.best_epoch == best
    assert stop.stopped_epoch == len(val) - 1
    # the weights are those at the end of the best epoch, not of the last one
    assert_weights_equal(model, rec.epoch_weights[best])
    assert not np.array_equal(model.state_dict()["1.weight"], rec.epoch_weights[-1]["1.weight"])
    # and they give the best validation loss again
    (_, _), (Xv, yv) = small
    trainer = make_trainer(model)
    assert trainer.evaluate(Xv, yv)["loss"] == pytest.approx(val[best], rel=1e-6)


def test_early_stopping_without_restore_keeps_last_weights(small):
    model, h, rec, _ = _diverging_run(small, restore=False)
    assert len(h["loss"]) < 10
    assert_weights_equal(model, rec.epoch_weights[-1])


def test_early_stopping_stops_exactly_patience_epochs_after_best_real_run(small):
    _, h, _, stop = _diverging_run(small)
    best = int(np.argmin(h["val_loss"]))
    assert len(h["val_loss"]) == best + 1 + PATIENCE  # epochs 0..best, then PATIENCE bad ones
    assert stop.stopped_epoch == best + PATIENCE


class ScriptedLogs(Callback):
    """Overwrites logs[key] with a scripted sequence (placed before EarlyStopping)."""

    def __init__(self, key, values):
        self.key, self.values = key, values
        self.logged_keys = (key,)  # declared, so EarlyStopping may monitor it

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


def _scripted(small, values, **kwargs):
    (X, y), _ = small
    stop = EarlyStopping(**kwargs)
    h = make_trainer().fit(X[:64], y[:64], epochs=len(values), seed=0, progress=False,
                           callbacks=[ScriptedLogs(kwargs.get("monitor", "val_loss"), values), stop])
    return len(h["loss"]), stop


def test_early_stopping_patience_zero_stops_at_first_non_improvement(small):
    n, stop = _scripted(small, [3.0, 2.0, 2.5, 1.0, 0.5], monitor="val_loss", patience=0)
    assert n == 3 and stop.stopped_epoch == 2 and stop.best == 2.0


def test_early_stopping_patience_two_scripted(small):
    # best at epoch 1; epochs 2 and 3 do not improve -> stop after epoch 3 (4 epochs run)
    n, stop = _scripted(small, [3.0, 2.0, 2.5, 2.1, 0.5, 0.1], monitor="val_loss", patience=2)
    assert n == 4 and stop.stopped_epoch == 3


def test_early_stopping_resets_wait_on_improvement_and_respects_mode_and_min_delta(small):
    # monitor accuracy ('auto' -> max): 0.5, 0.6, 0.55, 0.7, 0.65 ... never two bad in a row,
    # so patience=2 never fires (the wait counter resets on every improvement)
    n, stop = _scripted(small, [0.5, 0.6, 0.55, 0.7, 0.65, 0.8], monitor="accuracy", patience=2)
    assert n == 6 and stop.stopped_epoch is None and stop.best == 0.8 and stop.best_epoch == 5
    # min_delta: improvements smaller than 0.1 do not count
    n, stop = _scripted(small, [1.0, 0.95, 0.92, 0.5], monitor="val_loss", patience=0, min_delta=0.1)
    assert n == 2 and stop.best == 1.0


def test_early_stopping_unknown_monitor_names_the_available_metrics(small):
    (X, y), _ = small
    with pytest.raises(ValueError, match="val_loss") as info:
        make_trainer().fit(X[:32], y[:32], epochs=1, seed=0, progress=False,
                           callbacks=[EarlyStopping(monitor="val_loss")])
    assert "'loss'" in str(info.value) and "validation_data" in str(info.value)


def test_early_stopping_rejects_bad_arguments():
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="up")


# ----------------------------------------------------------- model checkpoint
def test_model_checkpoint_save_best_only_writes_loadable_best_models(small, tmp_path):
    (X, y), (Xv, yv) = small
    model = linear_model(0)
    trainer = make_trainer(model, lr=0.5)
    rec = Recorder()
    sched = LearningRateScheduler(lambda epoch, lr: 0.5 if epoch < 3 else 100.0)
    ckpt = ModelCheckpoint(tmp_path / "ckpt-{epoch:02d}-{val_loss:.3f}.npz", monitor="val_loss",
                           save_best_only=True)
    h = trainer.fit(X, y, epochs=6, validation_data=(Xv, yv), seed=0,
                    callbacks=[sched, rec, ckpt], progress=False)
    val = h["val_loss"]
    improved = [e for e in range(len(val)) if val[e] < min(val[:e], default=np.inf)]
    assert improved == [0, 1, 2]
    expected = [f"ckpt-{e + 1:02d}-{val[e]:.3f}.npz" for e in improved]
    assert sorted(os.listdir(tmp_path)) == expected
    assert [os.path.basename(p) for p in ckpt.saved] == expected
    for e, name in zip(improved, expected):
        loaded = mdl.load(tmp_path / name)
        assert_weights_equal(loaded, rec.epoch_weights[e])
        result = make_trainer(loaded).evaluate(Xv, yv)
        assert result["loss"] == pytest.approx(val[e], rel=1e-6)


def test_model_checkpoint_every_epoch_overwrites_one_path(small, tmp_path):
    (X, y), val = small
    model = linear_model(0)
    path = tmp_path / "last.npz"
    ckpt = ModelCheckpoint(path, monitor="loss", save_best_only=False)
    make_trainer(model).fit(X, y, epochs=3, validation_data=val, seed=0, callbacks=[ckpt],
                            progress=False)
    assert ckpt.saved == [str(path)] * 3
    assert os.listdir(tmp_path) == ["last.npz"]
    assert_weights_equal(mdl.load(path), weights(model))


def test_model_checkpoint_monitor_max_mode(small, tmp_path):
    (X, y), _ = small
    ckpt = ModelCheckpoint(tmp_path / "e{epoch}.npz", monitor="accuracy", save_best_only=True)
    _ = make_trainer().fit(X[:64], y[:64], epochs=4, seed=0, progress=False,
                           callbacks=[ScriptedLogs("accuracy", [0.2, 0.1, 0.3, 0.3]), ckpt])
    assert sorted(os.listdir(tmp_path)) == ["e1.npz", "e3.npz"]


# ------------------------------------------------------- learning-rate schedule
def test_learning_rate_scheduler_sets_lr_each_epoch(small):
    (X, y), _ = small
    X, y = X[:64], y[:64]
    rec = Recorder()
    trainer = make_trainer(lr=0.1)
    sched = LearningRateScheduler(lambda epoch, lr: 0.1 * 0.5 ** epoch)
    h = trainer.fit(X, y, epochs=4, batch_size=32, seed=0, callbacks=[sched, rec], progress=False)
    assert rec.lrs == [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125]
    assert trainer.optimizer.lr == 0.0125
    assert h["lr"] == [0.1, 0.05, 0.025, 0.0125]


def test_learning_rate_scheduler_receives_current_lr(small):
    (X, y), _ = small
    trainer = make_trainer(lr=1.0)
    seen = []

    def schedule(epoch, lr):
        seen.append((epoch, lr))
        return lr * 0.1

    trainer.fit(X[:32], y[:32], epochs=3, seed=0, progress=False,
                callbacks=[LearningRateScheduler(schedule)])
    assert [e for e, _ in seen] == [0, 1, 2]
    np.testing.assert_allclose([lr for _, lr in seen], [1.0, 0.1, 0.01])
    assert trainer.optimizer.lr == pytest.approx(0.001)


def test_learning_rate_scheduler_with_step_lr(small):
    (X, y), _ = small
    trainer = make_trainer(lr=0.8)
    rec = Recorder()
    step = mdl.optim.StepLR(trainer.optimizer, step_size=2, gamma=0.5)
    h = trainer.fit(X[:32], y[:32], epochs=5, batch_size=32, seed=0, progress=False,
                    callbacks=[LearningRateScheduler(step), rec])
    assert rec.lrs == [0.8, 0.8, 0.4, 0.4, 0.2]  # lr used in epochs 0..4
    assert step.last_epoch == 5 and trainer.optimizer.lr == 0.2
    assert len(h["lr"]) == 5


def test_history_lr_is_the_lr_used_in_each_epoch_with_step_lr(small):
    (X, y), _ = small
    trainer = make_trainer(lr=0.8)
    step = mdl.optim.StepLR(trainer.optimizer, step_size=2, gamma=0.5)
    h = trainer.fit(X[:32], y[:32], epochs=5, batch_size=32, seed=0, progress=False,
                    callbacks=[LearningRateScheduler(step)])
    assert h["lr"] == [0.8, 0.8, 0.4, 0.4, 0.2]


def test_learning_rate_scheduler_rejects_bad_schedules(small):
    (X, y), _ = small
    with pytest.raises(TypeError):
        LearningRateScheduler(0.1)
    with pytest.raises(ValueError, match="lr"):
        make_trainer().fit(X[:32], y[:32], epochs=1, progress=False,
                           callbacks=[LearningRateScheduler(lambda e, lr: float("nan"))])


# ----------------------------------------------------------- non-finite losses
def test_nan_input_is_refused_before_the_first_batch_naming_the_sample(small):
    """Issue 6, item 4: checked before work (it used to stop at epoch 1, batch 3, after two updates)."""
    (X, y), _ = small
    X = X[:128].copy()
    X[70, 0, 3, 3] = np.nan
    rec = Recorder()
    trainer = make_trainer()
    before = weights(trainer.model)
    with pytest.raises(ValueError, match=r"X contains nan or inf in 1 sample.*sample 70"):
        trainer.fit(X, y[:128], epochs=2, batch_size=32, shuffle=False, callbacks=[rec], progress=False)
    assert rec.calls == []
    assert_weights_equal(trainer.model, before)


def test_nan_in_later_epoch_names_that_epoch(small):
    (X, y), _ = small
    X, y = X[:64].copy(), y[:64]  # a copy: the fixture's data must stay clean

    class Poison(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                X[40, 0, 0, 0] = np.nan  # second batch of 32, unshuffled

    with pytest.raises(FloatingPointError, match=r"(?i)nan.*epoch 3, batch 2"):
        make_trainer().fit(X, y, epochs=4, batch_size=32, shuffle=False,
                           callbacks=[Poison()], progress=False)


def test_huge_learning_rate_raises_floating_point_error(small):
    (X, y), _ = small
    trainer = make_trainer(models.reference_cnn(rng=RNG(0)), lr=1e30)
    with np.errstate(all="ignore"):
        with pytest.raises(FloatingPointError, match=r"(?i)(nan|inf).*epoch \d+, batch \d+") as info:
            trainer.fit(X, y, epochs=5, batch_size=32, seed=0, progress=False)
    assert "epoch 1, batch 2" in str(info.value)  # the first update already overflows


# ---------------------------------------------------------------- determinism
def _history(small, layer_seed, fit_seed, shuffle=True):
    (X, y), val = small
    model = models.reference_cnn(rng=RNG(layer_seed))
    trainer = make_trainer(model, lr=0.05, momentum=0.9)
    return trainer.fit(X[:128], y[:128], epochs=2, batch_size=32, validation_data=val,
                       seed=fit_seed, shuffle=shuffle, progress=False).history


def test_same_seeds_give_identical_history(small):
    a, b = _history(small, 0, 0), _history(small, 0, 0)
    assert a == b  # exactly, not approximately


def test_different_fit_seed_or_layer_seed_changes_history(small):
    a = _history(small, 0, 0)
    assert _history(small, 0, 1)["loss"] != a["loss"]
    assert _history(small, 1, 0)["loss"] != a["loss"]


def test_without_shuffle_the_fit_seed_does_not_matter(small):
    assert _history(small, 0, 0, shuffle=False) == _history(small, 0, 1, shuffle=False)


# --------------------------------------------------------------- input checks
def test_fit_and_evaluate_argument_errors(small):
    (X, y), _ = small
    trainer = make_trainer()
    for epochs in (0, -1):
        with pytest.raises(ValueError, match="epochs must be >= 1"):
            trainer.fit(X, y, epochs=epochs, progress=False)
    for epochs in (1.5, 1.0, True, None):  # issue 11: a TypeError (a ValueError before)
        with pytest.raises(TypeError, match="epochs must be an int"):
            trainer.fit(X, y, epochs=epochs, progress=False)
    with pytest.raises(TypeError, match="numpy"):
        trainer.fit(X.tolist(), y, epochs=1, progress=False)
    with pytest.raises(ValueError, match="300 and 299"):
        trainer.fit(X, y[:-1], epochs=1, progress=False)
    with pytest.raises(ValueError, match="empty"):
        trainer.evaluate(X[:0], y[:0])
    with pytest.raises(ValueError, match="batch_size"):
        trainer.fit(X, y, epochs=1, batch_size=-4, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        trainer.evaluate(X, y, batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        trainer.predict(X, batch_size=0)
    with pytest.raises(ValueError, match="unknown metric"):
        make_trainer(metrics=("f1",))
    with pytest.raises(TypeError, match="metrics"):
        make_trainer(metrics=(3,))


def test_fit_batch_size_zero_is_a_value_error(small):
    (X, y), _ = small
    with pytest.raises(ValueError, match="batch_size"):
        make_trainer().fit(X, y, epochs=1, batch_size=0, progress=False)


# ------------------------------------------------------------------------ slow
@pytest.mark.slow
def test_reference_cnn_reaches_98_percent_on_digits(digits):
    (X, y), (Xt, yt) = digits
    model = models.reference_cnn(rng=np.random.default_rng(0))
    opt = mdl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    trainer = mdl.Trainer(model, losses.SoftmaxCrossEntropy(), opt)
    h = trainer.fit(X, y, epochs=20, batch_size=32, seed=0, validation_data=(Xt, yt), progress=False)
    result = trainer.evaluate(Xt, yt)
    per_epoch = [round(a, 4) for a in h["val_accuracy"]]
    assert len(per_epoch) == 20
    assert result["accuracy"] == h["val_accuracy"][-1]
    assert result["accuracy"] >= 0.98, f"test accuracy per epoch: {per_epoch}"
    assert h["accuracy"][-1] > 0.99


@pytest.mark.parametrize("bad, match", [
    ((np.zeros((3, 1, 8, 8), np.float32),), "pair"),
    ((np.zeros((3, 1, 8, 8), np.float32), np.zeros(2, np.int64)), "same number of samples"),
])
def test_fit_rejects_malformed_validation_data_before_training(small, bad, match):
    (X, y), _ = small
    model = linear_model(0)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=match):
        make_trainer(model).fit(X[:32], y[:32], epochs=1, validation_data=bad, progress=False)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])  # nothing was trained


def test_blas_threads_limited_inside_fit_and_restored_after(small):
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads():
        return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]

    before = blas_threads()
    if not before:
        pytest.skip("no BLAS library visible to threadpoolctl")
    seen = []

    class Probe(mdl.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(blas_threads())

    (X, y), _ = small
    trainer = make_trainer(linear_model(0))
    trainer.blas_threads = 1  # an explicit limit (the default is "auto")
    trainer.fit(X[:64], y[:64], epochs=1, progress=False, callbacks=[Probe()])
    assert seen and all(t == [1] * len(before) for t in seen)
    assert blas_threads() == before  # restored
    with pytest.raises(ValueError, match="blas_threads"):
        make_trainer(linear_model(0)).__class__(
            trainer.model, trainer.loss, trainer.optimizer, blas_threads=0)


def test_fit_accepts_numpy_integer_epochs(small):
    (X, y), _ = small
    h = make_trainer().fit(X[:32], y[:32], epochs=np.int64(2), progress=False)
    assert len(h["loss"]) == 2


def test_optimizer_of_another_model_is_refused_before_training():
    """Issue 6, item 4: an optimizer built on another model's parameters (a second
    reference_cnn(), a model rebuilt after the optimizer) used to train nothing, silently."""
    model, other = linear_model(0), linear_model(0)
    opt = mdl.optim.SGD(other.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"none of the optimizer's 2 parameters .* model"):
        mdl.Trainer(model, losses.SoftmaxCrossEntropy(), opt)
    # some parameters (the others frozen) are fine
    mdl.Trainer(model, losses.SoftmaxCrossEntropy(), mdl.optim.SGD(model.parameters()[:1], lr=0.1))


def test_auto_threads_run_blas_on_one_thread_and_split_large_batches(small):
    """blas_threads="auto" (the default): inside fit BLAS runs on one thread while large
    batches are split into runs computed on as many threads as BLAS had (blas.map_batch);
    the BLAS setting is restored after fit, and outside fit nothing is split."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from minidl.functional._engine import blas

    def blas_threads():
        return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]

    before = blas_threads()
    if not before or max(before) < 2:
        pytest.skip("needs a BLAS library with 2 or more threads")
    seen = {}

    class Probe(mdl.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            seen["blas"] = blas_threads()
            seen["large"] = blas.batch_runs(64, 1e12)
            seen["small"] = blas.batch_runs(64, blas.PARALLEL_MIN_FLOPS)

    (X, y), _ = small
    trainer = make_trainer(linear_model(0))
    assert trainer.blas_threads == "auto"
    trainer.fit(X[:32], y[:32], epochs=1, progress=False, callbacks=[Probe()])
    assert seen == {"blas": [1] * len(before), "large": min(blas.MAX_RUNS, 64), "small": 1}
    assert blas_threads() == before  # restored
    assert blas.batch_runs(64, 1e12) == 1  # outside fit: never split
    a = RNG(1).random((300, 300), dtype=np.float32)
    np.testing.assert_array_equal(blas.matmul(a, a), a @ a)
    assert blas_threads() == before
