"""Issue 17, 'Nothing half-done': a checkpoint written inside an epoch (after Ctrl-C) resumes bit for bit,
or the resume is refused; never a silent wrong resume (before: the epoch was repeated, 0.099 off)."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as mdl
from minidl import layers
from minidl.callbacks import Callback, LearningRateScheduler
from minidl.transforms import RandomShift

EPOCHS, BATCH = 3, 16


def _build(init_seed):
    rng = np.random.default_rng(init_seed)
    model = mdl.Sequential(layers.Conv2D(1, 4, 3, padding="same", rng=rng), layers.BatchNorm2D(4), layers.ReLU(),
                           layers.Dropout(0.2, rng=init_seed), layers.Flatten(), layers.Dense(256, 10, rng=rng))
    opt = mdl.optim.Adam(model.parameters(), lr=3e-3)
    sched = LearningRateScheduler(mdl.optim.StepLR(opt, step_size=1, gamma=0.8))
    return mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(), opt), sched


def _data():
    (X, y), (Xt, yt) = mdl.data.load_digits()
    return X[:150], y[:150], (Xt[:40], yt[:40])


class _CtrlC(Callback):
    """Raises KeyboardInterrupt in epoch ``epoch``, batch ``batch``, at hook ``where``."""

    def __init__(self, epoch, batch, where):
        self.epoch, self.batch, self.where, self.current = epoch, batch, where, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def _maybe(self, where, batch):
        if (self.current, batch, where) == (self.epoch, self.batch, self.where):
            raise KeyboardInterrupt("simulated Ctrl-C")

    def on_batch_begin(self, batch, logs=None):
        self._maybe("begin", batch)

    def on_after_backward(self, batch, logs=None):
        self._maybe("after_backward", batch)

    def on_batch_end(self, batch, logs=None):
        self._maybe("end", batch)


def _fit(trainer, sched, extra=(), **kw):
    X, y, val = _data()
    kw = {"epochs": EPOCHS, "batch_size": BATCH, "seed": 3, "validation_data": val,
          "transform": RandomShift(1), **kw}
    return trainer.fit(X, y, callbacks=[sched, *extra], progress=False, **kw)


def _outcome(trainer):
    return trainer.model.state_dict(), trainer.optimizer.state_dict(), trainer.history.history


def _assert_identical(a, b):
    (ma, oa, ha), (mb, ob, hb) = a, b
    assert ha == hb  # every logged value, exactly
    assert ma.keys() == mb.keys()
    for k in ma:
        np.testing.assert_array_equal(ma[k], mb[k], err_msg=k)
    for i, st in oa["state"].items():
        for name, v in st.items():
            np.testing.assert_array_equal(v, ob["state"][i][name], err_msg=f"optimizer state {i}.{name}")


@pytest.fixture(scope="module")
def straight():
    trainer, sched = _build(0)
    _fit(trainer, sched)
    return _outcome(trainer)


@pytest.mark.parametrize("where, batch", [("begin", 4), ("after_backward", 4), ("end", 4), ("begin", 0),
                                          ("end", 9)])
def test_ctrl_c_mid_epoch_then_save_load_resume_is_bit_identical_to_an_uninterrupted_run(
        tmp_path, straight, where, batch):
    trainer, sched = _build(0)
    with pytest.raises(KeyboardInterrupt):
        _fit(trainer, sched, extra=[_CtrlC(1, batch, where)])
    path = tmp_path / "interrupted.npz"
    trainer.save_checkpoint(path)
    resumed, sched2 = _build(1)  # a new Trainer, built the same way (other initial weights)
    resumed.load_checkpoint(path)
    assert resumed.epochs_done == 1
    _fit(resumed, sched2)
    _assert_identical(_outcome(resumed), straight)


class _SaveAt(Callback):
    """Writes a checkpoint from hook ``where`` of epoch 2, batch 5, and lets the run go on."""

    def __init__(self, where, path):
        self.where, self.path, self.current = where, path, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def _maybe(self, where, batch):
        if (self.current, batch, where) == (1, 4, self.where):
            self.trainer.save_checkpoint(self.path)

    def on_batch_begin(self, batch, logs=None):
        self._maybe("begin", batch)

    def on_after_backward(self, batch, logs=None):
        self._maybe("after_backward", batch)

    def on_batch_end(self, batch, logs=None):
        self._maybe("end", batch)


@pytest.mark.parametrize("where", ["begin", "after_backward", "end"])
def test_a_checkpoint_written_from_a_batch_callback_resumes_bit_for_bit(tmp_path, straight, where):
    """From on_batch_begin the augmentation of the batch was already drawn, from on_after_backward also its
    Dropout masks and BatchNorm statistics, while the batch was not done: the resumed run trained it again
    from there (epoch 2 loss 2.1034 / 2.0863 against 2.1293). The file now holds the state from before it."""
    trainer, sched = _build(0)
    path = tmp_path / "during.npz"
    _fit(trainer, sched, extra=[_SaveAt(where, path)])
    _assert_identical(_outcome(trainer), straight)  # the run that wrote it went on unchanged
    resumed, sched2 = _build(1)
    resumed.load_checkpoint(path)
    _fit(resumed, sched2)
    _assert_identical(_outcome(resumed), straight)


def test_drop_last_mid_epoch_resume_is_bit_identical(tmp_path):
    """The position holds drop_last: the epoch's 9 full batches of 16 (6 samples left out) resume exactly."""
    trainer, sched = _build(0)
    _fit(trainer, sched, drop_last=True)
    straight_drop = _outcome(trainer)
    trainer, sched = _build(0)
    with pytest.raises(KeyboardInterrupt):
        _fit(trainer, sched, extra=[_CtrlC(1, 5, "end")], drop_last=True)
    trainer.save_checkpoint(tmp_path / "c.npz")
    assert _meta(tmp_path / "c.npz")["position"]["drop_last"] is True
    resumed, sched2 = _build(1)
    resumed.load_checkpoint(tmp_path / "c.npz")
    with pytest.raises(ValueError, match="drop_last: False .the checkpoint's run: True"):
        _fit(resumed, sched2)
    _fit(resumed, sched2, drop_last=True)
    _assert_identical(_outcome(resumed), straight_drop)


def test_a_mid_epoch_checkpoint_is_version_2_and_a_reloaded_one_saves_the_same_position(tmp_path):
    trainer, sched = _build(0)
    with pytest.raises(KeyboardInterrupt):
        _fit(trainer, sched, extra=[_CtrlC(1, 3, "begin")])
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    trainer.save_checkpoint(first)
    again, _ = _build(1)
    again.load_checkpoint(first)
    again.save_checkpoint(second)
    metas = [_meta(first), _meta(second)]
    assert metas[0]["version"] == 2 and metas[0]["position"]["batch"] == 3
    assert metas[0]["position"] == metas[1]["position"]


def _meta(path):
    return mdl.io.read(path).extra_meta["trainer"]


@pytest.mark.parametrize("change, match", [({"batch_size": 8}, "batch_size: 8 .the checkpoint's run: 16"),
                                           ({"seed": 4}, "seed: 4 .the checkpoint's run: 3"),
                                           ({"shuffle": False}, "shuffle: False"),
                                           ({"transform": None}, "transform: False"),
                                           ({"drop_last": True}, "drop_last: True .the checkpoint's run: False")])
def test_resuming_mid_epoch_with_other_settings_is_refused_and_initial_epoch_restarts_the_epoch(
        tmp_path, change, match):
    trainer, sched = _build(0)
    with pytest.raises(KeyboardInterrupt):
        _fit(trainer, sched, extra=[_CtrlC(1, 3, "begin")])
    path = tmp_path / "interrupted.npz"
    trainer.save_checkpoint(path)
    resumed, sched2 = _build(1)
    resumed.load_checkpoint(path)
    before = resumed.model.state_dict()
    with pytest.raises(ValueError, match=r"stopped inside epoch 2, after batch 3 of 10.*" + match):
        _fit(resumed, sched2, **change)
    for k, v in resumed.model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    _fit(resumed, sched2, initial_epoch=1, **change)  # the documented way out: epoch 2 again, from batch 1
    assert resumed.history.epoch == [0, 1, 2]


def test_epoch_boundary_checkpoints_stay_version_1(tmp_path):
    trainer, sched = _build(0)
    _fit(trainer, sched, epochs=1)
    path = tmp_path / "end.npz"
    trainer.save_checkpoint(path)
    assert _meta(path)["version"] == 1 and "position" not in _meta(path)


def _tamper(src, dst, edit):
    file = mdl.io.read(src)
    meta = file.extra_meta
    edit(meta["trainer"])
    mdl.io.write(file.model, dst, extra_meta=meta, extra_arrays=file.extra_arrays)


@pytest.mark.parametrize("edit", [
    lambda m: m["position"].update(batch=11),  # more batches than the epoch has
    lambda m: m["position"].update(seen=7),  # not the samples of 3 batches of 16
    lambda m: m["position"].update(epoch=0),  # not the stored epoch
    lambda m: m["position"].update(sums={"loss": "x"}),
    lambda m: m.pop("position"),  # version 2 without a position
    lambda m: m.update(version=1),  # version 1 with one
    lambda m: m["position"].update(drop_last="no"),
    lambda m: m["position"].pop("drop_last"),
    lambda m: m["position"].update(drop_last=True, batch=10, seen=150),  # drop_last: 9 batches of 16
], ids=["batch", "seen", "epoch", "sums", "no-position", "version-1", "drop_last-type", "no-drop_last",
        "drop_last-batch"])
def test_a_hostile_position_is_refused_and_nothing_changes(tmp_path, edit):
    trainer, sched = _build(0)
    with pytest.raises(KeyboardInterrupt):
        _fit(trainer, sched, extra=[_CtrlC(1, 3, "begin")])
    good, bad = tmp_path / "good.npz", tmp_path / "bad.npz"
    trainer.save_checkpoint(good)
    _tamper(good, bad, edit)
    fresh, _ = _build(1)
    before = fresh.model.state_dict()
    with pytest.raises(ValueError, match="trainer entry is malformed"):
        fresh.load_checkpoint(bad)
    assert fresh.epochs_done == 0
    for k, v in fresh.model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_an_augmentation_state_that_cannot_be_restored_is_refused(tmp_path):
    trainer, sched = _build(0)
    with pytest.raises(KeyboardInterrupt):
        _fit(trainer, sched, extra=[_CtrlC(1, 3, "begin")])
    good, bad = tmp_path / "good.npz", tmp_path / "bad.npz"
    trainer.save_checkpoint(good)
    _tamper(good, bad, lambda m: m["position"].update(augment={"bit_generator": "MT19937"}))
    fresh, _ = _build(1)
    with pytest.raises(ValueError, match="cannot restore the augmentation generator"):
        fresh.load_checkpoint(bad)
