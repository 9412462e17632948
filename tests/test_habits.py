"""The habits PyTorch and Keras users bring (issue 21): torch's names answered with minidl's,
Keras's ``model.add(layer)``, one global seed (``mdl.manual_seed``)."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as mdl
from minidl import layers as L
from minidl.layers import _init


@pytest.fixture
def global_seed_reset():
    yield
    _init._GLOBAL[0] = None  # later tests get unseeded layers again, as without manual_seed


@pytest.mark.parametrize("module, name, hint", [
    (mdl.layers, "Conv2d", "Conv2D"), (mdl.layers, "BatchNorm2d", "BatchNorm2D"), (mdl.layers, "Linear", "Dense"),
    (mdl.layers, "MaxPool2d", "MaxPool2D"), (mdl.layers, "AdaptiveAvgPool2d", "AdaptiveAvgPool2D"),
    (mdl.layers, "GlobalMaxPooling2D", "GlobalMaxPool2D"), (mdl.layers, "Conv1d", "Conv1D"),
    (mdl.losses, "CrossEntropyLoss", "SoftmaxCrossEntropy"), (mdl.losses, "MSELoss", "MSE"),
    (mdl.layers, "Sequential", "minidl.Sequential"), (mdl.layers, "Dropuot", "Dropout"),
])
def test_a_torch_name_is_answered_with_minidls(module, name, hint):
    with pytest.raises(AttributeError, match=rf"no attribute '{name}'\. Did you mean {hint}\?"):
        getattr(module, name)
    assert not hasattr(module, name)


def test_an_unknown_name_stays_a_plain_attribute_error():
    with pytest.raises(AttributeError) as info:
        mdl.layers.Transformer  # noqa: B018
    assert "Did you mean" not in str(info.value)
    assert getattr(mdl.layers, "Transformer", None) is None


def test_keras_model_add_appends_and_graph_add_still_works(tmp_path):
    model = mdl.Sequential()
    model.add(L.Flatten())
    model.add(L.Dense(64, 10, rng=0))
    assert [type(layer).__name__ for _, layer in model.named_children()] == ["Flatten", "Dense"]
    assert model(np.zeros((2, 1, 8, 8), np.float32)).shape == (2, 10)
    model.save(tmp_path / "m.npz")
    assert repr(mdl.load(tmp_path / "m.npz")) == repr(model)
    g = mdl.Graph()
    g.add("a", L.ReLU())
    with pytest.raises(TypeError):
        g.add(L.ReLU())  # a Graph's nodes have names: no Keras form there


def test_manual_seed_makes_unseeded_layers_reproducible(global_seed_reset):
    mdl.manual_seed(0)
    a = [L.Dense(3, 3), L.Conv2D(1, 2, 3)]
    mdl.manual_seed(0)
    b = [L.Dense(3, 3), L.Conv2D(1, 2, 3)]
    for x, y in zip(a, b):
        assert all(np.array_equal(p.data, q.data) for p, q in zip(x.parameters(), y.parameters()))
    assert not np.array_equal(a[0].weight.data, L.Dense(3, 3).weight.data)  # the next draw differs
    mdl.manual_seed(0)
    assert not np.array_equal(L.Dense(3, 3, rng=5).weight.data, b[0].weight.data)  # rng= still wins
    for bad, exc in (("0", TypeError), (True, TypeError), (-1, ValueError)):
        with pytest.raises(exc, match="minidl.manual_seed: seed"):
            mdl.manual_seed(bad)


# ----------------------------------------------------------- summary() without an input shape
def test_summary_without_input_shape_takes_a_first_dense_s_features():
    model = mdl.Sequential(L.Dense(64, 32, rng=0), L.ReLU(), L.Dense(32, 10, rng=0))
    text = model.summary()
    assert text == model.summary((64,))
    assert "(N, 64)" in text and "(N, 10)" in text
    assert text.splitlines()[-3:] == ["Total params: 2,410", "Trainable params: 2,410", "Non-trainable params: 0"]


def test_summary_without_input_shape_after_a_first_conv_shows_what_it_knows():
    model = mdl.models.reference_cnn(rng=0)
    text = model.summary()  # a TypeError (missing input_shape) before
    rows = {r.split()[0]: r for r in text.splitlines() if r[:1].isdigit()}
    assert "(N, 16, ?, ?)" in rows["0"] and rows["0"].rstrip().endswith("160")
    assert "(N, 32, ?, ?)" in rows["5"] and "(N, ?)" in rows["6"]  # MaxPool, Flatten: they depend on H, W
    assert "(N, 10)" in rows["7"] and rows["7"].rstrip().endswith("1,290")  # the Dense fixes its own input
    assert "Total params: 6,090" in text and "summary((1, H, W))" in text
    graph = mdl.models.residual_cnn(rng=0).summary()
    assert "(N, 16, ?, ?)" in next(r for r in graph.splitlines() if r.startswith("skip (Add)"))
    assert "(N, 10)" in graph and "?" not in model.summary((1, 8, 8))


def test_summary_counts_buffers_as_non_trainable_as_keras():
    model = mdl.models.digits_best(rng=0)
    lines = model.summary((1, 8, 8)).splitlines()
    frozen = sum(b.size for name, b in model.named_buffers() if "running" in name)  # 4 BatchNorm2D: 2 * 192
    assert frozen == 384
    assert lines[-3:] == [f"Total params: {model.num_parameters() + frozen:,}",
                          f"Trainable params: {model.num_parameters():,}", f"Non-trainable params: {frozen:,}"]


def test_summary_refuses_what_it_cannot_infer_with_a_clear_message():
    with pytest.raises(ValueError, match=r"Sequential.summary: the first layer, Flatten\(\), does not fix .*"
                                         r"summary\(\(1, 28, 28\)\)"):
        mdl.Sequential(L.Flatten(), L.Dense(64, 10, rng=0)).summary()
    with pytest.raises(TypeError, match=r"input_shape must be the shape of one sample.*Received: 64"):
        mdl.Sequential(L.Dense(64, 10, rng=0)).summary(64)


def test_count_params_is_keras_s_name_for_num_parameters():
    model = mdl.models.digits_best(rng=0)
    assert model.count_params() == model.num_parameters() == 67_946
    assert L.Dense(4, 3).count_params() == 15


# ----------------------------------------------------------- Trainer.fit: Keras's verbose, validation_split, epochs
def _trainer(seed=0):
    model = mdl.Sequential(L.Flatten(), L.Dense(64, 10, rng=seed))
    return mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(), mdl.optim.SGD(model.parameters(), lr=0.1))


@pytest.fixture(scope="module")
def digits():
    (X, y), _ = mdl.data.load_digits()
    return X[:200], y[:200]


def test_verbose_2_prints_one_line_per_epoch_and_0_nothing(digits, capfd):
    X, y = digits
    _trainer().fit(X, y, epochs=3, seed=0, verbose=2, validation_split=0.25)
    out, err = capfd.readouterr()
    lines = out.splitlines()
    assert len(lines) == 3 and err == ""  # no tqdm bar on stderr
    assert lines[0].startswith("Epoch 1/3 - ") and lines[2].startswith("Epoch 3/3 - ")
    assert all(k in lines[0] for k in (" - loss: ", " - accuracy: ", " - val_loss: ", " - val_accuracy: "))
    _trainer().fit(X, y, epochs=2, seed=0, verbose=0)
    assert capfd.readouterr() == ("", "")
    _trainer().fit(X, y, epochs=1, seed=0, verbose=1)
    out, err = capfd.readouterr()
    assert out == "" and "Epoch 1/1" in err  # the progress bar, as progress=True


@pytest.mark.parametrize("kw, match", [
    ({"verbose": 2, "progress": True}, r"progress=True and verbose=2 contradict each other"),
    ({"verbose": 1, "progress": False}, r"progress=False and verbose=1 contradict"),
    ({"verbose": 3}, r"verbose must be 0 \(silent\), 1 .* or 2 .*Received: verbose=3"),
    ({"validation_split": 1.0}, r"validation_split must be a float in \(0, 1\).*Received: validation_split=1.0"),
    ({"validation_split": True}, r"validation_split must be a float"),
    ({"validation_split": "0.2"}, r"validation_split must be a float"),
    ({"validation_split": 0.2, "validation_data": "any"}, r"validation_split=0.2 and validation_data both"),
    ({"validation_split": 0.001}, r"of 200 samples leaves 200 to train on and 0 to validate on"),
])
def test_fit_refuses_bad_keras_arguments_before_any_work(digits, kw, match):
    X, y = digits
    trainer = _trainer()
    before = trainer.model.state_dict()
    with pytest.raises(ValueError, match=match):
        trainer.fit(X, y, epochs=1, seed=0, **kw)
    assert all(np.array_equal(v, trainer.model.state_dict()[k]) for k, v in before.items())
    assert trainer.history.history == {}
    trainer.fit(X, y, epochs=1, seed=0, verbose=0, progress=False)  # agreeing: fine


def test_validation_split_validates_on_the_last_fraction_before_shuffling(digits):
    X, y = digits
    split = _trainer().fit(X, y, epochs=2, seed=0, verbose=0, validation_split=0.2).history
    k = 160  # ceil(200 * 0.8), as Keras
    explicit = _trainer().fit(X[:k], y[:k], epochs=2, seed=0, verbose=0, validation_data=(X[k:], y[k:])).history
    assert split == explicit  # every value, exactly
    assert sorted(split) == ["accuracy", "loss", "val_accuracy", "val_loss"]


def test_epochs_defaults_to_one_as_keras(digits):
    X, y = digits
    history = _trainer().fit(X, y, seed=0, verbose=0)  # a TypeError (epochs missing) before
    assert history.epoch == [0]


class _StopAt(mdl.callbacks.Callback):
    def on_batch_begin(self, batch, logs=None):
        if batch == 2 and self.trainer.epochs_done == 1:
            raise KeyboardInterrupt("simulated Ctrl-C")


def test_a_run_with_validation_split_resumes_bit_for_bit_and_refuses_another_split(digits, tmp_path):
    X, y = digits
    straight = _trainer()
    straight.fit(X, y, epochs=3, seed=4, verbose=0, validation_split=0.2)
    stopped = _trainer()
    with pytest.raises(KeyboardInterrupt):
        stopped.fit(X, y, epochs=3, seed=4, verbose=0, validation_split=0.2, callbacks=[_StopAt()])
    stopped.save_checkpoint(tmp_path / "run.npz")
    resumed = _trainer(seed=9)
    resumed.load_checkpoint(tmp_path / "run.npz")
    with pytest.raises(ValueError, match=r"inside epoch 2.*len\(X\): 150 \(the checkpoint's run: 160\)"):
        resumed.fit(X, y, epochs=3, verbose=0, validation_split=0.25)
    resumed.fit(X, y, epochs=3, verbose=0, validation_split=0.2)
    assert resumed.history.history == straight.history.history
    for k, v in straight.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[k], v, err_msg=k)


# ----------------------------------------------------------- predict(probabilities=True)
def test_predict_returns_logits_or_their_softmax(digits):
    X, y = digits
    trainer = _trainer()
    trainer.fit(X, y, epochs=1, seed=0, verbose=0)
    logits = trainer.predict(X)
    probs = trainer.predict(X, probabilities=True)  # a TypeError (unexpected keyword) before
    e = np.exp(logits.astype(np.float64) - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)
    assert probs.dtype == np.float32 and np.array_equal(probs.argmax(1), logits.argmax(1))
    assert "Keras users: probabilities=True" in " ".join(mdl.Trainer.predict.__doc__.split())
    with pytest.raises(TypeError, match=r"Trainer.predict: probabilities must be True or False"):
        trainer.predict(X, probabilities=1)
    scalar = mdl.Sequential(L.Flatten(), L.Dense(64, 1, rng=0))  # one logit: its softmax would be 1
    reg = mdl.Trainer(scalar, mdl.losses.MSE(), mdl.optim.SGD(scalar.parameters(), lr=0.1))
    with pytest.raises(ValueError, match=r"probabilities=True takes the softmax over the classes.*\(200, 1\)"):
        reg.predict(X, probabilities=True)


# ----------------------------------------------------------- fit(seed=None) after mdl.manual_seed
def test_manual_seed_makes_fit_without_seed_reproducible(digits, global_seed_reset):
    X, y = digits

    def run():
        mdl.manual_seed(0)
        model = mdl.Sequential(L.Flatten(), L.Dense(64, 10))  # rng=None: the manual_seed generator
        trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(), mdl.optim.SGD(model.parameters(), lr=0.1))
        return trainer.fit(X, y, epochs=2, batch_size=16, verbose=0).history  # seed=None

    assert run() == run()  # the shuffling too: before, the losses differed
    _init._GLOBAL[0] = None  # without manual_seed: a fresh seed from the OS, as before
    a, b = _trainer(), _trainer()
    assert a.fit(X, y, epochs=1, batch_size=16, verbose=0).history != b.fit(X, y, epochs=1, batch_size=16,
                                                                         verbose=0).history


# ----------------------------------------------------------- the examples' figures: mdl.plot.save_figures
def test_save_figures_writes_each_open_figure_next_to_the_script(tmp_path, capsys):
    plt = pytest.importorskip("matplotlib.pyplot")
    plt.close("all")
    try:
        plt.figure(num=1)
        plt.figure(num=3)
        paths = mdl.plot.save_figures(str(tmp_path / "plot_demo.py"))
        assert [p.name for p in paths] == ["plot_demo_1.png", "plot_demo_3.png"]
        assert capsys.readouterr().out.splitlines() == [f"wrote {p}" for p in paths]
        before = paths[0].read_bytes()
        fig = plt.figure(1)
        fig.savefig = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("disk full"))  # a failing save
        with pytest.raises(RuntimeError, match="disk full"):
            mdl.plot.save_figures(tmp_path / "plot_demo.py")
        assert paths[0].read_bytes() == before  # the old PNG intact
        assert sorted(p.name for p in tmp_path.iterdir()) == ["plot_demo_1.png", "plot_demo_3.png"]  # no temporary
    finally:
        plt.close("all")
    with pytest.raises(TypeError, match=r"minidl.plot.save_figures: script must be the script's path"):
        mdl.plot.save_figures(3)


# ----------------------------------------------------------- tiny things
@pytest.mark.parametrize("epochs", [1, 2, 7])
def test_learning_curves_have_integer_epoch_ticks_even_for_one_epoch(epochs):
    plt = pytest.importorskip("matplotlib.pyplot")
    fig = mdl.plot.learning_curves({"loss": [0.5] * epochs, "val_loss": [0.6] * epochs})
    try:
        fig.canvas.draw()
        ax = fig.axes[0]
        lo, hi = ax.get_xlim()
        shown = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert shown and all(float(t).is_integer() for t in shown), shown  # before, 1 epoch: 0.945, 0.96, ...
        assert 1 in shown
    finally:
        plt.close(fig)


def test_saving_into_a_missing_folder_names_the_folder_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = mdl.Sequential(L.Dense(2, 2, rng=0))
    with pytest.raises(FileNotFoundError) as info:
        model.save("no/such/m.npz")
    text = str(info.value)
    # before: "... Create the folder first (os.makedirs(folder, exist_ok=True)).: 'no/such/m.npz'"
    assert text == ("[Errno 2] minidl.save: cannot write 'no/such/m.npz': the folder 'no/such' does not exist. "
                    "Create it first (os.makedirs('no/such', exist_ok=True)) or choose another path.")
    assert info.value.errno == 2 and not (tmp_path / "no").exists()
    trainer = mdl.Trainer(model, mdl.losses.MSE(), mdl.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(FileNotFoundError, match=r"the folder 'gone' does not exist\. Create it first"):
        trainer.save_checkpoint("gone/run.npz")
