"""Issue 17, section 5: fit refuses bad data and untrainable batches before the first batch
(minidl.train.fit_probe), and fit(..., drop_last=True) leaves out each epoch's last partial batch."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as mdl
from minidl import layers, losses
from minidl.callbacks import Callback

RNG = np.random.default_rng


class Count(Callback):
    """Counts the batches trained and the batch sizes of each epoch."""

    def __init__(self):
        self.sizes = {}

    def on_epoch_begin(self, epoch, logs=None):
        self.sizes[epoch] = []

    def on_batch_end(self, batch, logs=None):
        self.sizes[max(self.sizes)].append(logs["batch_size"])

    @property
    def batches(self):
        return sum(len(v) for v in self.sizes.values())


def _mlp(batchnorm=False, dropout=False):
    parts = [layers.Dense(4, 8, rng=RNG(0))]
    parts += [layers.BatchNorm1D(8)] if batchnorm else []
    parts += [layers.ReLU()] + ([layers.Dropout(0.3, rng=RNG(1))] if dropout else [])
    model = mdl.Sequential(*parts, layers.Dense(8, 3, rng=RNG(2)))
    return mdl.Trainer(model, losses.SoftmaxCrossEntropy(), mdl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))


X = RNG(0).normal(size=(64, 4)).astype(np.float32)
Y = np.arange(64) % 3

BAD_VALIDATION = [  # (X_val, y_val, error, message): each used to fail after a whole epoch
    (X[:, :3], Y, ValueError, r"validation_data\[0\] \(shape \(64, 3\).*expected input with 4 features"),
    (X.astype(np.float64), Y, TypeError, r"validation_data\[0\].*float64 does not match weight dtype float32"),
    (X.astype(np.int64), Y, TypeError, r"validation_data\[0\].*floating-point dtype"),
    (X[:, None, :], Y, ValueError, r"validation_data\[0\] \(shape \(64, 1, 4\).*2 dimensions"),
    (X, Y[:, None], ValueError, r"validation_data\[1\] \(shape \(64, 1\).*integer labels of shape"),
    (X, Y.astype(np.float32), ValueError, r"validation_data\[1\].*probability targets"),
    (X, Y + 1, ValueError, r"validation_data\[1\].*labels \[1, 2, 3\].*labels must be in \[0, 2\] for 3 classes"),
    (X, Y - 1, ValueError, r"validation_data\[1\].*labels \[-1, 0, 1\].*labels must be in \[0, 2\]"),
]


@pytest.mark.parametrize("X_val, y_val, error, match", BAD_VALIDATION,
                         ids=["features", "float64", "int", "rank", "y rank", "y float", "label 3", "label -1"])
def test_bad_validation_data_is_refused_before_the_first_batch(X_val, y_val, error, match):
    trainer, count = _mlp(batchnorm=True, dropout=True), Count()
    before = trainer.model.state_dict()
    rng_state = trainer.model[3].rng.bit_generator.state
    with pytest.raises(error, match=r"Trainer\.fit: .*" + match):
        trainer.fit(X, Y, epochs=2, batch_size=16, validation_data=(X_val, y_val), progress=False, callbacks=[count])
    assert count.batches == 0 and trainer.history.epoch == []
    for k, v in trainer.model.state_dict().items():  # running statistics included
        np.testing.assert_array_equal(v, before[k])
    assert trainer.model[3].rng.bit_generator.state == rng_state  # no Dropout mask drawn
    assert trainer.model.training  # the mode is restored


def test_an_out_of_range_training_label_is_refused_before_the_first_batch():
    """A label 7 at sample 50 failed at batch 4 (shuffle=False), after three batches had trained."""
    trainer, count = _mlp(), Count()
    before = trainer.model.state_dict()
    y = Y.copy()
    y[50] = 7
    with pytest.raises(ValueError, match=r"Trainer\.fit: y \(shape \(64,\).*labels \[0, 1, 2, 7\].*got 1 out of"):
        trainer.fit(X, y, epochs=1, batch_size=16, shuffle=False, progress=False, callbacks=[count])
    assert count.batches == 0
    for k, v in trainer.model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_labels_of_a_memmap_are_checked_in_chunks(tmp_path, monkeypatch):
    from minidl.train import fit_probe

    monkeypatch.setattr(fit_probe, "_CHUNK_BYTES", 64)  # 8 int64 labels at a time
    y = np.lib.format.open_memmap(tmp_path / "y.npy", mode="w+", dtype=np.int64, shape=(64,))
    y[:] = Y
    y[37] = -5
    with pytest.raises(ValueError, match=r"labels \[-5, 0, 1, 2\]"):
        _mlp().fit(X, y, epochs=1, progress=False)


def test_ignored_labels_and_valid_data_are_not_refused():
    y = Y.copy()
    y[::5] = -100  # SoftmaxCrossEntropy's ignore_index
    history = _mlp().fit(X, y, epochs=1, batch_size=16, progress=False, validation_data=(X, y))
    assert np.isfinite(history["val_loss"][0])
    y[3] = -1
    with pytest.raises(ValueError, match=r"labels \[-100, -1, 1, 2\]"):
        _mlp().fit(X, y, epochs=1, progress=False)



def test_a_batchnorm_without_running_statistics_is_not_refused():
    """BatchNorm1D(track_running_stats=False) normalizes with the batch's statistics in eval mode too (as
    torch): the probe ran it on one sample, and fit refused batches of 4 ('expected more than 1 value per
    channel'). It trains, is validated, and batches of one sample are still refused before work."""
    model = mdl.Sequential(layers.Dense(4, 8, rng=RNG(0)), layers.BatchNorm1D(8, track_running_stats=False),
                           layers.Dense(8, 3, rng=RNG(1)))
    trainer = mdl.Trainer(model, losses.SoftmaxCrossEntropy(), mdl.optim.SGD(model.parameters(), lr=0.1))
    count = Count()
    history = trainer.fit(X[:20], Y[:20], epochs=1, batch_size=4, progress=False, validation_data=(X[20:30], Y[20:30]),
                          callbacks=[count])
    assert count.sizes == {0: [4] * 5} and np.isfinite(history["val_loss"][0])
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        trainer.fit(X[:20], Y[:20], epochs=1, batch_size=1, progress=False, callbacks=[count])
    assert count.batches == 5

# --------------------------------------------------------------- BatchNorm and drop_last
def test_a_last_batch_of_one_sample_with_batchnorm_is_refused_before_work():
    """33 samples, batch_size 32: BatchNorm1D refused the last batch mid-epoch, after the first had trained,
    with the hint "Use a batch of 2 or more" that the user cannot follow."""
    trainer, count = _mlp(batchnorm=True), Count()
    with pytest.raises(ValueError, match=r"Trainer\.fit: the last batch of every epoch would hold 1 sample \(33 "
                                         r"samples, batch_size=32\), and BatchNorm1D\(8\).*drop_last=True.*"
                                         r"batch_size=31"):
        trainer.fit(X[:33], Y[:33], epochs=1, progress=False, callbacks=[count])
    assert count.batches == 0
    with pytest.raises(ValueError, match="batch_size=1 gives batches of 1 sample.*batch_size=2 or more"):
        trainer.fit(X[:32], Y[:32], epochs=1, batch_size=1, progress=False)
    history = trainer.fit(X[:33], Y[:33], epochs=2, progress=False, callbacks=[count], drop_last=True)
    assert count.sizes == {0: [32], 1: [32]} and len(history["loss"]) == 2


def test_batchnorm2d_with_pixels_trains_on_a_last_batch_of_one_sample():
    """One image still gives BatchNorm2D H * W values per channel: torch trains it, and so does fit."""
    model = mdl.Sequential(layers.Conv2D(1, 2, 3, padding=1, rng=RNG(0)), layers.BatchNorm2D(2), layers.Flatten(),
                           layers.Dense(2 * 4 * 4, 3, rng=RNG(1)))
    trainer = mdl.Trainer(model, losses.SoftmaxCrossEntropy(), mdl.optim.SGD(model.parameters(), lr=0.1))
    count = Count()
    trainer.fit(RNG(0).random((9, 1, 4, 4), dtype=np.float32), np.arange(9) % 3, epochs=1, batch_size=4,
                progress=False, callbacks=[count])
    assert count.sizes == {0: [4, 4, 1]}


def test_drop_last_leaves_out_the_partial_batch_and_logs_the_mean_over_the_samples_trained():
    count, losses_seen = Count(), []

    class Losses(Callback):
        def on_batch_end(self, batch, logs=None):
            losses_seen.append((logs["loss"], logs["batch_size"]))

    history = _mlp().fit(X[:50], Y[:50], epochs=2, batch_size=16, seed=0, progress=False, drop_last=True,
                         callbacks=[count, Losses()])
    assert count.sizes == {0: [16, 16, 16], 1: [16, 16, 16]}
    first = losses_seen[:3]
    assert history["loss"][0] == pytest.approx(sum(v * n for v, n in first) / 48)
    assert mdl.data.num_batches(50, 16, drop_last=True) == 3


def test_drop_last_leaves_out_different_samples_each_epoch():
    seen, batches = {}, []

    class Probe(layers.Layer):
        def forward(self, x):
            if self.training:
                seen.setdefault(len(batches) // 3, set()).update(x[:, 0].astype(int).tolist())
                batches.append(len(x))
            return x

        def backward(self, g):
            return g

    model = mdl.Sequential(Probe(), layers.Dense(4, 3, rng=RNG(0)))
    trainer = mdl.Trainer(model, losses.SoftmaxCrossEntropy(), mdl.optim.SGD(model.parameters(), lr=0.0))
    Xi = np.repeat(np.arange(50, dtype=np.float32)[:, None], 4, axis=1)
    trainer.fit(Xi, Y[:50], epochs=2, batch_size=16, seed=0, progress=False, drop_last=True)
    assert batches == [16] * 6
    assert all(len(s) == 48 for s in seen.values()) and seen[0] != seen[1]


def test_drop_last_refuses_bad_values_before_work():
    with pytest.raises(ValueError, match="drop_last=True with 10 samples and batch_size=32 leaves no batch"):
        _mlp().fit(X[:10], Y[:10], epochs=1, progress=False, drop_last=True)
    with pytest.raises(TypeError, match="drop_last must be True or False"):
        _mlp().fit(X, Y, epochs=1, progress=False, drop_last="yes")


def test_drop_last_resumes_bit_for_bit(tmp_path):
    """A resumed run with drop_last trains the batches of the uninterrupted one: the same History and weights."""
    full = _mlp(batchnorm=True, dropout=True)
    full.fit(X[:49], Y[:49], epochs=4, batch_size=16, seed=3, progress=False, drop_last=True)
    first = _mlp(batchnorm=True, dropout=True)
    first.fit(X[:49], Y[:49], epochs=2, batch_size=16, seed=3, progress=False, drop_last=True)
    first.save_checkpoint(tmp_path / "run.npz")
    resumed, count = _mlp(batchnorm=True, dropout=True), Count()
    resumed.load_checkpoint(tmp_path / "run.npz")
    resumed.fit(X[:49], Y[:49], epochs=4, batch_size=16, progress=False, drop_last=True, callbacks=[count])
    assert count.sizes == {2: [16, 16, 16], 3: [16, 16, 16]}
    assert resumed.history.history == full.history.history and resumed.history.epoch == [0, 1, 2, 3]
    for k, v in full.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[k], v)


class _Tally(layers.Layer):
    """Counts every forward in a buffer and draws from its generator, in either mode (a custom layer)."""

    def __init__(self):
        super().__init__()
        self.rng = np.random.default_rng(0)
        self.register_buffer("calls", np.zeros((), np.int64))

    def forward(self, x):
        self.calls += 1
        self.rng.random()
        return x

    def backward(self, grad):
        return grad


def test_the_probe_leaves_layers_as_it_found_them():
    """The check before the first batch runs the model once in eval mode: a custom layer's buffers and
    generator, and every layer's own mode, are put back (the review found the buffer counted and the
    generator advanced)."""
    tally = _Tally()
    model = mdl.Sequential(layers.Dense(4, 3, rng=0), tally)
    X, y = np.ones((8, 4), np.float32), np.arange(8) % 3
    trainer = mdl.Trainer(model, losses.SoftmaxCrossEntropy(), mdl.optim.SGD(model.parameters(), lr=0.1))
    from minidl.train.fit_checks import check_fit_args
    from minidl.train.fit_probe import check_data_against_model
    run, _ = check_fit_args(X, y, 1, 4, None, True, 0, [], False, None, None)
    model.train()
    model[0].eval()  # a layer frozen in eval mode by its user
    check_data_against_model(model, trainer.loss, run)
    assert int(tally.calls) == 0
    assert tally.rng.bit_generator.state == np.random.default_rng(0).bit_generator.state
    assert model.training and tally.training and not model[0].training


def test_one_value_per_channel_hints_eval_mode_only_with_running_statistics():
    """Eval mode normalizes with the running statistics: no help to a BatchNorm that keeps none."""
    x = np.ones((1, 3), np.float32)
    with pytest.raises(ValueError, match=r"Use a batch of 2 or more\.$"):
        layers.BatchNorm1D(3, track_running_stats=False)(x)
    with pytest.raises(ValueError, match=r"or eval mode \(with running statistics\)\.$"):
        layers.BatchNorm1D(3)(x)
