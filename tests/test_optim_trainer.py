"""Schedules and adaptive optimizers through Trainer.fit: per-batch and per-metric stepping,
torch's lr sequences, and checkpoints that resume bit for bit."""

import math

import numpy as np
import pytest

import minidl as mdl
from minidl import layers, losses, optim
from minidl.callbacks import Callback, LearningRateScheduler

N, BATCH = 100, 16  # 7 batches per epoch
BATCHES = math.ceil(N / BATCH)


@pytest.fixture(scope="module")
def digits():
    (X, y), (Xt, yt) = mdl.data.load_digits()
    return (X[:N], y[:N]), (Xt[:40], yt[:40])


def tiny_model():
    rng = np.random.default_rng(0)
    return mdl.Sequential(layers.Flatten(), layers.Dense(64, 16, rng=rng), layers.ReLU(),
                          layers.Dense(16, 10, rng=rng))


def groups(model):
    """Weights with the defaults, biases without weight decay (the usual split)."""
    named = list(model.named_parameters())
    return [{"params": [p for n, p in named if not n.endswith("bias")]},
            {"params": [p for n, p in named if n.endswith("bias")], "weight_decay": 0.0}]


class Probe(Callback):
    """The lrs and momentum-like values the optimizer holds at the start of every batch."""

    def __init__(self):
        self.lrs, self.moms = [], []

    def on_batch_begin(self, batch, logs=None):
        gs = self.trainer.optimizer.param_groups
        self.lrs.append([g["lr"] for g in gs])
        self.moms.append([g["betas"][0] if "betas" in g else g.get("momentum") for g in gs])


def torch_sequence(torch, opt_name, opt_kwargs, sched_name, sched_kwargs, steps, metrics=None,
                   per=1):
    """torch's lrs (and momentums), as seen by each of ``steps * per`` batches."""
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.Linear(16, 10))
    w = [p for n, p in model.named_parameters() if n.endswith("weight")]
    b = [p for n, p in model.named_parameters() if n.endswith("bias")]
    topt = getattr(torch.optim, opt_name)([{"params": w}, {"params": b, "weight_decay": 0.0}],
                                          **opt_kwargs)
    tsched = getattr(torch.optim.lr_scheduler, sched_name)(topt, **sched_kwargs)
    lrs, moms = [], []
    for step in range(steps):
        for _ in range(per):
            lrs.append([g["lr"] for g in topt.param_groups])
            moms.append([g["betas"][0] if "betas" in g else g.get("momentum") for g in topt.param_groups])
            topt.step()  # no gradients: nothing moves, but torch sees the order it expects
            if per == 1 or sched_name == "OneCycleLR":
                tsched.step()
        if per > 1 and sched_name != "OneCycleLR":
            tsched.step(metrics[step]) if metrics is not None else tsched.step()
        elif metrics is not None:
            tsched.step(metrics[step])
    return lrs, moms


def fit(digits, opt_factory, callback, epochs=3, validation=False):
    (X, y), val = digits
    model = tiny_model()
    trainer = mdl.Trainer(model, losses.SoftmaxCrossEntropy(), opt_factory(model))
    probe = Probe()
    cb = callback(trainer.optimizer)
    trainer.fit(X, y, epochs=epochs, batch_size=BATCH, seed=0, progress=False,
                validation_data=val if validation else None, callbacks=[cb, probe])
    return trainer, probe


def test_one_cycle_per_batch_from_fit_matches_torch(digits):
    torch = pytest.importorskip("torch")
    kw = dict(max_lr=0.05, epochs=3, steps_per_epoch=BATCHES)
    trainer, probe = fit(digits, lambda m: optim.SGD(groups(m), lr=0.01, momentum=0.9, weight_decay=1e-3),
                         lambda o: LearningRateScheduler(optim.OneCycleLR(o, **kw), interval="batch"))
    lrs, moms = torch_sequence(torch, "SGD", dict(lr=0.01, momentum=0.9, weight_decay=1e-3),
                               "OneCycleLR", kw, 3 * BATCHES)
    assert probe.lrs == lrs and probe.moms == moms and len(lrs) == 21
    assert len(set(map(tuple, lrs))) == 21  # a new lr every batch
    # the epoch logs hold the lr of each epoch's last batch
    assert trainer.history["lr"] == [lrs[BATCHES * (e + 1) - 1][0] for e in range(3)]


def test_cosine_per_epoch_from_fit_matches_torch(digits):
    torch = pytest.importorskip("torch")
    trainer, probe = fit(digits, lambda m: optim.AdamW(groups(m), lr=0.01),
                         lambda o: LearningRateScheduler(optim.CosineAnnealingLR(o, T_max=2)), epochs=4)
    lrs, _ = torch_sequence(torch, "AdamW", dict(lr=0.01), "CosineAnnealingLR", dict(T_max=2), 4,
                            per=BATCHES)
    assert probe.lrs == lrs
    assert trainer.history["lr"] == [lrs[BATCHES * e][0] for e in range(4)]
    assert trainer.history["lr"] == pytest.approx([0.01, 0.005, 0.0, 0.005], abs=1e-15)


def test_reduce_on_plateau_from_fit_follows_the_monitored_metric(digits):
    torch = pytest.importorskip("torch")
    kw = dict(patience=0, factor=0.5, threshold=0.3)  # a 30 % improvement or the lr halves
    trainer, probe = fit(digits, lambda m: optim.Adam(groups(m), lr=0.01),
                         lambda o: LearningRateScheduler(optim.ReduceLROnPlateau(o, **kw),
                                                         monitor="val_loss"),
                         epochs=6, validation=True)
    val_loss = trainer.history["val_loss"]
    lrs, _ = torch_sequence(torch, "Adam", dict(lr=0.01), "ReduceLROnPlateau", kw, 6,
                            metrics=val_loss, per=BATCHES)
    assert probe.lrs == lrs
    assert len({lr[0] for lr in lrs}) > 1  # it did reduce


@pytest.mark.parametrize("make,match", [
    (lambda o: LearningRateScheduler(optim.StepLR(o, 1), interval="step"), "interval must be 'epoch' or 'batch'"),
    (lambda o: LearningRateScheduler(lambda e, lr: lr, interval="batch"), "interval='batch' steps a scheduler"),
    (lambda o: LearningRateScheduler(optim.ReduceLROnPlateau(o)), "pass the metric to monitor"),
    (lambda o: LearningRateScheduler(optim.StepLR(o, 1), monitor=3), "monitor names a logged metric"),
])
def test_bad_scheduler_callbacks_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make(optim.SGD(tiny_model(), lr=0.1))


def test_an_unlogged_monitor_is_refused_before_training(digits):
    (X, y), _ = digits
    model = tiny_model()
    opt = optim.SGD(model, lr=0.1)
    trainer = mdl.Trainer(model, losses.SoftmaxCrossEntropy(), opt)
    before = [p.data.copy() for p in model.parameters()]
    cb = LearningRateScheduler(optim.ReduceLROnPlateau(opt), monitor="val_loss")
    with pytest.raises(ValueError, match="'val_loss' will not be in the logs"):
        trainer.fit(X, y, epochs=1, progress=False, callbacks=[cb])
    assert all(np.array_equal(p.data, b) for p, b in zip(model.parameters(), before))


# ------------------------------------------------------------- resume, bit for bit
SETUPS = {
    "Adam+OneCycleLR": (lambda m: optim.Adam(groups(m), lr=0.01, weight_decay=1e-3, amsgrad=True),
                        lambda o: LearningRateScheduler(optim.OneCycleLR(o, 0.02, epochs=4,
                                                                         steps_per_epoch=BATCHES),
                                                        interval="batch")),
    "AdamW+CosineAnnealingLR": (lambda m: optim.AdamW(m, lr=0.01),
                                lambda o: LearningRateScheduler(optim.CosineAnnealingLR(o, T_max=3))),
    "RMSprop+ReduceLROnPlateau": (
        lambda m: optim.RMSprop(groups(m), lr=0.003, momentum=0.5, centered=True, weight_decay=1e-3),
        lambda o: LearningRateScheduler(optim.ReduceLROnPlateau(o, patience=0, threshold=0.2),
                                        monitor="val_loss")),
    "SGD+LinearLR": (lambda m: optim.SGD(groups(m), lr=0.05, momentum=0.9, nesterov=True,
                                         weight_decay=1e-3),
                     lambda o: LearningRateScheduler(optim.LinearLR(o, total_iters=3))),
    "NAdam+StepLR": (lambda m: optim.NAdam(groups(m), lr=0.01, weight_decay=1e-3, momentum_decay=0.1),
                     lambda o: LearningRateScheduler(optim.StepLR(o, step_size=1, gamma=0.5))),
    "RAdam+ExponentialLR": (lambda m: optim.RAdam(m, lr=0.01, weight_decay=1e-3, decoupled_weight_decay=True),
                            lambda o: LearningRateScheduler(optim.ExponentialLR(o, gamma=0.8))),
    "Adagrad+StepLR": (lambda m: optim.Adagrad(groups(m), lr=0.05, lr_decay=0.01, initial_accumulator_value=0.1),
                       lambda o: LearningRateScheduler(optim.StepLR(o, step_size=2, gamma=0.5))),
    "Adamax+LinearLR": (lambda m: optim.Adamax(m, lr=0.01, maximize=False),
                        lambda o: LearningRateScheduler(optim.LinearLR(o, total_iters=3))),
}


def _resume_run(digits, name, tmp_path, stop=None, drop_state=False):
    """Four epochs straight (stop=None), or two, a checkpoint, and a fresh Trainer that loads it
    and trains to four."""
    (X, y), val = digits
    make_opt, make_cb = SETUPS[name]

    def build():
        model = tiny_model()
        trainer = mdl.Trainer(model, losses.SoftmaxCrossEntropy(), make_opt(model))
        return trainer, make_cb(trainer.optimizer)

    def train(trainer, cb, epochs):
        return trainer.fit(X, y, epochs=epochs, batch_size=BATCH, seed=3, progress=False,
                           validation_data=val, callbacks=[cb])

    trainer, cb = build()
    if stop is None:
        train(trainer, cb, 4)
        return trainer
    train(trainer, cb, stop)
    trainer.save_checkpoint(tmp_path / "ckpt.npz")
    trainer, cb = build()
    trainer.load_checkpoint(tmp_path / "ckpt.npz")
    if drop_state:
        trainer.optimizer.state.clear()
    train(trainer, cb, 4)
    return trainer


@pytest.mark.parametrize("name", list(SETUPS))
def test_a_resumed_run_is_bit_identical_to_an_uninterrupted_one(digits, tmp_path, name):
    straight = _resume_run(digits, name, tmp_path)
    resumed = _resume_run(digits, name, tmp_path, stop=2)
    assert resumed.history.history == straight.history.history  # losses, metrics, lr per epoch
    assert resumed.optimizer.state_dict()["param_groups"] == straight.optimizer.state_dict()["param_groups"]
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=k)
    sa, sb = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for i in sa:
        for k in sa[i]:
            np.testing.assert_array_equal(sa[i][k], sb[i][k], err_msg=f"{i} {k}")
    if name.startswith("Adam"):
        assert sa[0]["step"] == 4 * BATCHES
    assert len(set(straight.history["lr"])) > 1  # the schedule moved


@pytest.mark.parametrize("name", ["Adam+OneCycleLR", "RMSprop+ReduceLROnPlateau"])
def test_leaving_the_optimizer_state_out_breaks_the_resume(digits, tmp_path, name):
    """The control: the moments (and step counts) in the checkpoint are what make it exact."""
    straight = _resume_run(digits, name, tmp_path)
    dropped = _resume_run(digits, name, tmp_path, stop=2, drop_state=True)
    assert dropped.history["loss"][:2] == straight.history["loss"][:2]
    assert dropped.history["loss"][2:] != straight.history["loss"][2:]


def test_the_checkpoint_holds_adams_moments(digits, tmp_path):
    _resume_run(digits, "Adam+OneCycleLR", tmp_path, stop=2)
    file = mdl.io.read(tmp_path / "ckpt.npz")
    meta = file.extra_meta["trainer"]
    assert meta["optimizer"]["class"] == "Adam"
    names = sorted(file.extra_arrays)
    assert len(names) == 4 * 3  # 4 parameters x exp_avg, exp_avg_sq, max_exp_avg_sq
    assert meta["callbacks"][0]["class"] == "LearningRateScheduler"
