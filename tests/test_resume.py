"""Issue 6: training resumes bit for bit from a checkpoint, in a new process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import minidl as mdl
from minidl import layers, losses, models
from minidl.callbacks import Callback

RNG = np.random.default_rng

# One script, three uses: train epochs [start, stop) and write parameters + history.
SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import minidl as mdl
    from minidl.callbacks import LearningRateScheduler

    def build():
        (X, y), (Xt, yt) = mdl.data.load_digits()
        model = mdl.models.reference_cnn(rng=np.random.default_rng(0))
        opt = mdl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
        trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(), opt)
        sched = LearningRateScheduler(mdl.optim.StepLR(opt, step_size=1, gamma=0.7))
        return trainer, sched, (X[:192], y[:192]), (Xt[:64], yt[:64])

    def run(epochs, out, load=None, save=None, drop_momentum=False):
        trainer, sched, (X, y), val = build()
        if load:
            trainer.load_checkpoint(load)
            if drop_momentum:
                trainer.optimizer.momentum_buffers.clear()
        trainer.fit(X, y, epochs=epochs, batch_size=32, seed=7, validation_data=val,
                    callbacks=[sched], progress=False)
        if save:
            trainer.save_checkpoint(save)
        np.savez(out, **trainer.model.state_dict())
        with open(out + ".json", "w") as f:
            json.dump({"history": trainer.history.history, "epoch": trainer.history.epoch,
                       "lr": trainer.optimizer.lr}, f)

    run(**json.loads(sys.argv[1]))
""")


def _run(tmp_path, **kwargs):
    script = tmp_path / "resume_script.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), json.dumps(kwargs)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    with np.load(kwargs["out"]) as npz:
        params = {k: npz[k] for k in npz.files}
    with open(kwargs["out"] + ".json") as f:
        return params, json.load(f)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    ckpt = str(tmp / "after2.npz")
    straight = _run(tmp, epochs=4, out=str(tmp / "straight.npz"))
    _run(tmp, epochs=2, out=str(tmp / "first.npz"), save=ckpt)
    resumed = _run(tmp, epochs=4, out=str(tmp / "resumed.npz"), load=ckpt)
    no_momentum = _run(tmp, epochs=4, out=str(tmp / "nomomentum.npz"), load=ckpt, drop_momentum=True)
    return straight, resumed, no_momentum, ckpt


def test_resuming_in_a_new_process_is_bit_identical_to_an_uninterrupted_run(runs):
    (p_straight, h_straight), (p_resumed, h_resumed), _, _ = runs
    assert h_resumed == h_straight  # loss, accuracy, val_*, lr per epoch; epochs 0-3; final lr
    assert h_resumed["epoch"] == [0, 1, 2, 3]
    assert list(p_resumed) == list(p_straight)
    for k in p_straight:
        np.testing.assert_array_equal(p_resumed[k], p_straight[k], err_msg=k)


def test_leaving_the_momentum_buffers_out_breaks_the_resume(runs):
    """The control: the test above can fail, and the momentum buffers are why it does not."""
    (p_straight, h_straight), _, (p_nomom, h_nomom), _ = runs
    assert h_nomom["history"]["loss"][:2] == h_straight["history"]["loss"][:2]
    assert h_nomom["history"]["loss"][2:] != h_straight["history"]["loss"][2:]
    assert any(not np.array_equal(p_nomom[k], p_straight[k]) for k in p_straight)


def test_checkpoint_is_a_loadable_model_file(runs):
    *_, ckpt = runs
    model = mdl.load(ckpt)
    assert [n for n, _ in model.named_parameters()] == \
        [n for n, _ in models.reference_cnn(rng=RNG(0)).named_parameters()]
    file = mdl.io.read(ckpt)
    meta = file.extra_meta["trainer"]
    assert meta["epochs_done"] == 2 and meta["seed"] == 7
    assert meta["optimizer"]["class"] == "SGD"
    # the six momentum buffers (SGD.state_dict()["state"][i]["momentum_buffer"]: entry 2, then
    # entry i, then entry 0), one per parameter
    assert sorted(file.extra_arrays) == sorted(f"optimizer.2.{i}.0" for i in range(6))
    for i, (_, p) in enumerate(model.named_parameters()):
        assert file.extra_arrays[f"optimizer.2.{i}.0"].shape == p.shape


def _labels_seen(seed, epochs, initial_epoch=None):
    """The label sequence of each epoch (a probe of the shuffling order)."""
    X = np.arange(40, dtype=np.float32).reshape(40, 1)
    y = np.arange(40)
    seen = {}

    class Probe(mdl.layers.Layer):
        def forward(self, x):
            if self.training:  # not fit's eval-mode check of one sample before the first batch
                seen.setdefault(current[0], []).extend(x[:, 0].astype(int).tolist())
            return np.repeat(x, 2, axis=1) * 0

        def backward(self, g):
            return g[:, :1]

    class Epoch(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            current[0] = epoch

    current = [None]
    model = mdl.Sequential(Probe(), layers.Dense(2, 2, rng=RNG(0)))
    trainer = mdl.Trainer(model, losses.SoftmaxCrossEntropy(), mdl.optim.SGD(model.parameters(), lr=0.0),
                          metrics=())
    trainer.fit(X, y % 2, epochs=epochs, batch_size=8, seed=seed, progress=False, callbacks=[Epoch()],
                initial_epoch=initial_epoch)
    return seen


def test_shuffle_order_of_epoch_k_depends_only_on_seed_and_k():
    full = _labels_seen(3, epochs=4)
    later = _labels_seen(3, epochs=4, initial_epoch=2)
    assert sorted(later) == [2, 3]
    assert later[2] == full[2] and later[3] == full[3]  # not a replay of epoch 0's order
    assert full[0] != full[2] and sorted(full[0]) == sorted(full[2]) == list(range(40))
    assert _labels_seen(4, epochs=1)[0] != full[0]


def _tiny_trainer(hidden=10, momentum=0.9):
    model = mdl.Sequential(layers.Flatten(), layers.Dense(64, hidden, rng=RNG(0)))
    return mdl.Trainer(model, losses.SoftmaxCrossEntropy(),
                       mdl.optim.SGD(model.parameters(), lr=0.1, momentum=momentum))


def test_load_checkpoint_refuses_a_different_model_or_optimizer_and_changes_nothing(tmp_path):
    (X, y), _ = mdl.data.load_digits()
    trainer = _tiny_trainer()
    trainer.fit(X[:64], y[:64], epochs=1, seed=0, progress=False)
    path = tmp_path / "ckpt.npz"
    trainer.save_checkpoint(path)
    other = _tiny_trainer(hidden=12)
    before = other.model.state_dict()
    with pytest.raises(ValueError, match="another architecture"):
        other.load_checkpoint(path)
    for k, v in other.model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    plain = tmp_path / "model.npz"
    trainer.model.save(plain)
    with pytest.raises(ValueError, match="not a Trainer checkpoint"):
        _tiny_trainer().load_checkpoint(plain)

    class MySGD(mdl.optim.SGD):
        pass

    model = mdl.Sequential(layers.Flatten(), layers.Dense(64, 10, rng=RNG(0)))
    odd = mdl.Trainer(model, losses.SoftmaxCrossEntropy(), MySGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="optimizer is 'SGD'"):
        odd.load_checkpoint(path)


def test_fit_after_load_continues_the_history(tmp_path):
    (X, y), _ = mdl.data.load_digits()
    trainer = _tiny_trainer()
    trainer.fit(X[:64], y[:64], epochs=2, seed=0, progress=False)
    trainer.save_checkpoint(tmp_path / "c.npz")
    again = _tiny_trainer()
    again.load_checkpoint(tmp_path / "c.npz")
    assert again.epochs_done == 2 and again.history.epoch == [0, 1]
    h = again.fit(X[:64], y[:64], epochs=3, seed=0, progress=False)
    assert h.epoch == [0, 1, 2] and len(h["loss"]) == 3
    # a later plain fit starts a new run
    h2 = again.fit(X[:64], y[:64], epochs=1, seed=0, progress=False)
    assert h2.epoch == [0]


# ------------------------------------------------- callbacks that keep state across a resume
def _diverging_setup(tmp_path, patience=2):
    """lr 0.5 for three epochs, then 50: val_loss improves, then gets worse."""
    model = mdl.Sequential(layers.Flatten(), layers.Dense(64, 10, rng=RNG(0)))
    trainer = mdl.Trainer(model, losses.SoftmaxCrossEntropy(),
                          mdl.optim.SGD(model.parameters(), lr=0.5, momentum=0.9))
    sched = mdl.LearningRateScheduler(lambda epoch, lr: 0.5 if epoch < 3 else 50.0)
    best = mdl.ModelCheckpoint(tmp_path / "best.npz", monitor="val_loss", save_best_only=True)
    stop = mdl.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    return trainer, [sched, best, stop]


def _fit(trainer, callbacks, epochs):
    (X, y), (Xt, yt) = mdl.data.load_digits()
    return trainer.fit(X[:128], y[:128], epochs=epochs, validation_data=(Xt[:64], yt[:64]),
                       seed=0, callbacks=callbacks, progress=False)


def test_resumed_model_checkpoint_never_replaces_a_better_best_file(tmp_path):
    """The restored best value used to be reset by on_train_begin: the first resumed epoch
    (val_loss 54) overwrote the best file (val_loss 0.87)."""
    trainer, cbs = _diverging_setup(tmp_path)
    _fit(trainer, cbs, epochs=3)
    trainer.save_checkpoint(tmp_path / "ckpt.npz")
    best_before = (tmp_path / "best.npz").read_bytes()
    assert cbs[1].best == min(trainer.history["val_loss"])

    again, cbs2 = _diverging_setup(tmp_path)
    again.load_checkpoint(tmp_path / "ckpt.npz")
    h = _fit(again, cbs2, epochs=4)
    assert h["val_loss"][3] > min(h["val_loss"][:3])  # the resumed epoch is worse ...
    assert cbs2[1].saved == [] and cbs2[1].best == min(h["val_loss"][:3])
    assert (tmp_path / "best.npz").read_bytes() == best_before  # ... so the best file stays


class SaveCheckpoint(Callback):
    """Writes a Trainer checkpoint at the end of one epoch (placed last among the callbacks)."""

    def __init__(self, path, epoch):
        self.path, self.epoch = path, epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.trainer.save_checkpoint(self.path)


def test_resumed_early_stopping_stops_and_restores_like_an_uninterrupted_run(tmp_path):
    """EarlyStopping's state (best value and epoch, epochs waited, best weights) is in the
    checkpoint, and a checkpoint written from a callback holds that epoch's History entry."""
    (tmp_path / "straight").mkdir()
    straight, cbs = _diverging_setup(tmp_path / "straight")
    ckpt = tmp_path / "ckpt.npz"
    h_straight = _fit(straight, cbs + [SaveCheckpoint(ckpt, epoch=3)], epochs=8)
    stop = cbs[2]
    assert (stop.best_epoch, stop.stopped_epoch) == (2, 4)  # the engineered run: best epoch 2
    assert mdl.io.read(ckpt).extra_meta["trainer"]["history"]["epoch"] == [0, 1, 2, 3]

    again, cbs2 = _diverging_setup(tmp_path)
    again.load_checkpoint(ckpt)  # after epoch 3: one epoch of patience used
    h = _fit(again, cbs2, epochs=8)
    assert h.history == h_straight.history and h.epoch == h_straight.epoch == [0, 1, 2, 3, 4]
    assert (cbs2[2].stopped_epoch, cbs2[2].best_epoch, cbs2[2].best) == \
        (stop.stopped_epoch, stop.best_epoch, stop.best)
    for k, v in straight.model.state_dict().items():  # epoch 2's weights, restored by both
        np.testing.assert_array_equal(again.model.state_dict()[k], v)


def test_early_stopping_refuses_a_malformed_state():
    stop = mdl.EarlyStopping()
    for bad in ({}, {"best": "x", "wait": 0, "best_epoch": None, "stopped_epoch": None,
                     "best_weights": None},
                {"best": 1.0, "wait": -1, "best_epoch": None, "stopped_epoch": None,
                 "best_weights": None},
                {"best": 1.0, "wait": 0, "best_epoch": None, "stopped_epoch": None,
                 "best_weights": {"w": [1.0]}}):
        with pytest.raises(ValueError, match="EarlyStopping.load_state_dict"):
            stop.load_state_dict(bad)


def test_a_new_run_starts_counting_epochs_from_zero_even_if_it_fails(tmp_path):
    """epochs_done used to keep the previous run's count until the new run's first epoch ended,
    so a checkpoint written after a failing first epoch claimed the old run's epochs."""
    (X, y), _ = mdl.data.load_digits()
    trainer = _tiny_trainer()
    trainer.fit(X[:64], y[:64], epochs=3, seed=0, progress=False)

    class Fail(Callback):
        def on_batch_end(self, batch, logs=None):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trainer.fit(X[:64], y[:64], epochs=5, seed=0, progress=False, callbacks=[Fail()])
    assert trainer.epochs_done == 0 and trainer.history.epoch == []
    trainer.save_checkpoint(tmp_path / "c.npz")
    assert mdl.io.read(tmp_path / "c.npz").extra_meta["trainer"]["epochs_done"] == 0
