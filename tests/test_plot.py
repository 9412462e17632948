"""Issue 10: minidl.plot draws what it is given (behaviour, not pixels), on the Agg backend."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

import minidl as mdl
from minidl import layers, losses
from minidl.functional import conv_reference as ref
from minidl.train.history import History

HAVE_MPL = importlib.util.find_spec("matplotlib") is not None
needs_mpl = pytest.mark.skipif(not HAVE_MPL, reason="needs matplotlib (pip install 'minidl[plot]')")
FUNCTIONS = ["learning_curves", "filters", "feature_maps", "confusion_matrix", "misclassified", "norms",
             "gradient_errors", "save_figures"]


@pytest.fixture
def plt():
    pytest.importorskip("matplotlib")
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def images_of(fig):
    """The image arrays of the figure's Axes that show one (colour bars excluded)."""
    return [a.images[0].get_array() for a in fig.axes if a.images and a.get_label() != "<colorbar>"]


def title_of(fig):
    """The figure's suptitle (Figure.get_suptitle needs matplotlib >= 3.8)."""
    return fig._suptitle.get_text() if fig._suptitle is not None else ""


# ---------------------------------------------------------------------------- no matplotlib
def test_missing_matplotlib_names_the_function_and_the_fix(monkeypatch):
    for name in [m for m in list(sys.modules) if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    model = mdl.models.reference_cnn(rng=0)
    history = {"loss": [1.0, 0.5]}
    rec = mdl.NormHistory()
    rec.steps, rec.grad_norms, rec.weight_norms = [0], {"w": [1.0]}, {"w": [1.0]}
    calls = {
        "learning_curves": lambda: mdl.plot.learning_curves(history),
        "filters": lambda: mdl.plot.filters(model),
        "feature_maps": lambda: mdl.plot.feature_maps(model, np.zeros((1, 8, 8), np.float32)),
        "confusion_matrix": lambda: mdl.plot.confusion_matrix([0, 1], [1, 1]),
        "misclassified": lambda: mdl.plot.misclassified(np.zeros((2, 8, 8)), [0, 1], [1, 1]),
        "norms": lambda: mdl.plot.norms(rec),
        "gradient_errors": lambda: mdl.plot.gradient_errors(mdl.check_model(mdl.layers.ReLU(), np.ones(3))),
        "save_figures": lambda: mdl.plot.save_figures("plot_x.py"),
    }
    assert sorted(calls) == sorted(FUNCTIONS) == sorted(mdl.plot.__all__)
    for name, call in calls.items():
        with pytest.raises(ImportError) as info:
            call()
        assert str(info.value) == f"minidl.plot.{name} needs matplotlib: pip install 'minidl[plot]'"


def test_import_minidl_plot_needs_no_matplotlib_and_selects_no_backend():
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "import minidl, minidl.plot, minidl.cli\n"
            "assert callable(minidl.plot.filters)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([sys.executable, "-c", "import sys, minidl, minidl.plot; "
                           "print(any(m.startswith('matplotlib') for m in sys.modules))"],
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "False", proc.stderr  # importing minidl never imports matplotlib


# ---------------------------------------------------------------------------- learning_curves
def _history():
    h = History()
    for e, (loss, acc, vloss) in enumerate([(1.5, 0.4, 1.6), (0.9, 0.7, 1.0), (0.6, 0.8, 0.9)]):
        h._append(e, {"loss": loss, "accuracy": acc, "val_loss": vloss, "lr": 0.1})
    return h


@needs_mpl
def test_learning_curves_one_panel_per_metric_with_train_and_val(plt):
    h = _history()
    fig = mdl.plot.learning_curves(h)
    assert [a.get_ylabel() for a in fig.axes] == ["loss", "accuracy", "lr"]
    (train, val), (acc,) = fig.axes[0].lines, fig.axes[1].lines
    assert (train.get_label(), val.get_label(), acc.get_label()) == ("train", "validation", "train")
    np.testing.assert_array_equal(train.get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(train.get_ydata(), h["loss"])
    np.testing.assert_array_equal(val.get_ydata(), h["val_loss"])
    np.testing.assert_array_equal(acc.get_ydata(), h["accuracy"])
    # a plain dict, chosen metrics, on the caller's Axes
    fig2, ax = plt.subplots()
    assert mdl.plot.learning_curves(h.history, metrics=["accuracy"], ax=ax) is fig2
    assert [line.get_label() for line in ax.lines] == ["train"]


@needs_mpl
@pytest.mark.parametrize("history, kwargs, exc, match", [
    ([1.0, 2.0], {}, TypeError, r"history must be a History .*Received: list"),
    ({}, {}, ValueError, "non-empty lists"),
    ({"loss": [1.0]}, {"metrics": ["accuracy"]}, ValueError, r"metric 'accuracy' is not in the history.*\['loss'\]"),
    ({"loss": [1.0]}, {"metrics": 3}, TypeError, "metrics must be a list"),
    ({"loss": [1.0], "accuracy": [0.5]}, {"ax": "axes"}, ValueError, r"ax must be None, or 2 matplotlib Axes"),
])
def test_learning_curves_bad_input(plt, history, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        mdl.plot.learning_curves(history, **kwargs)


# ---------------------------------------------------------------------------- filters
@needs_mpl
def test_filters_one_image_per_output_channel_equal_to_the_weights(plt):
    model = mdl.models.reference_cnn(rng=0)
    w = model[0].weight.data  # (16, 1, 3, 3)
    fig = mdl.plot.filters(model)
    shown = images_of(fig)
    assert len(shown) == 16
    for o, image in enumerate(shown):
        np.testing.assert_array_equal(image, w[o, 0])
    limit = np.abs(w).max()
    for a in fig.axes:
        if a.images and a.get_label() != "<colorbar>":
            assert a.images[0].get_clim() == pytest.approx((-limit, limit))  # symmetric around 0
    assert [a.get_title() for a in fig.axes if a.get_title()] == [str(o) for o in range(16)]


@needs_mpl
def test_filters_of_a_multichannel_conv_mean_or_one_channel(plt):
    conv = layers.Conv2D(3, 4, 2, rng=0)
    w = conv.weight.data
    for channel, expected in [(None, w.mean(axis=1)), (2, w[:, 2])]:
        fig = plt.figure()
        assert mdl.plot.filters(conv, channel=channel, fig=fig) is fig
        shown = images_of(fig)
        assert len(shown) == 4
        for o in range(4):
            np.testing.assert_array_equal(shown[o], expected[o])
    # the first Conv2D of a graph, nested
    g = mdl.Graph()
    g.add("block", mdl.Sequential(layers.ReLU(), layers.Conv2D(3, 5, 3, rng=1)), "input")
    g.add("conv", layers.Conv2D(5, 2, 3, rng=2), "block")
    assert len(images_of(mdl.plot.filters(g))) == 5


@needs_mpl
@pytest.mark.parametrize("obj, kwargs, exc, match", [
    ("model", {"channel": 1}, ValueError, r"channel must be < 1.*Received: channel=1"),
    ("model", {"channel": -1}, ValueError, r"channel must be >= 0"),
    ("model", {"channel": 0.0}, TypeError, r"channel must be an int"),
    ("dense", {}, ValueError, r"filters: the model has no Conv2D layer.*Sequential"),
    ("array", {}, TypeError, r"expected a minidl model or layer. Received: ndarray"),
    ("model", {"fig": "figure"}, TypeError, r"fig must be None or a matplotlib Figure"),
])
def test_filters_bad_input(plt, obj, kwargs, exc, match):
    objs = {"model": mdl.models.reference_cnn(rng=0), "array": np.zeros((4, 1, 3, 3)),
            "dense": mdl.Sequential(layers.Flatten(), layers.Dense(4, 2, rng=0))}
    with pytest.raises(exc, match=match):
        mdl.plot.filters(objs[obj], **kwargs)


# ---------------------------------------------------------------------------- feature_maps
def _snapshot(model):
    from minidl.graph import walk_layers

    return [(layer, layer.training, layer._saved) for _, layer in walk_layers(model, "")]


@needs_mpl
def test_feature_maps_equal_the_layer_output_and_leave_training_state_alone(plt):
    model = mdl.models.reference_cnn(rng=0, dtype=np.float64)
    (X, y), (Xt, _) = mdl.data.load_digits()
    X, x = X[:8].astype(np.float64), Xt[3].astype(np.float64)
    loss = losses.SoftmaxCrossEntropy()
    loss.forward(model.forward(X), y[:8])  # a training forward waiting for its backward
    before = _snapshot(model)
    fig = mdl.plot.feature_maps(model, x)  # default: layer "1", the ReLU after the first conv
    after = _snapshot(model)
    assert all(a[0] is b[0] and a[1] == b[1] is True and a[2] is b[2] for a, b in zip(before, after))
    assert "forward" not in vars(model[1])
    # the backward of the earlier forward still gives the gradients it would have given
    model.backward(loss.backward())
    fresh = mdl.models.reference_cnn(rng=0, dtype=np.float64)
    loss.forward(fresh.forward(X), y[:8])
    fresh.backward(loss.backward())
    for (name, p), q in zip(model.named_parameters(), fresh.parameters()):
        np.testing.assert_array_equal(p.grad, q.grad, err_msg=name)
    # the images: relu(conv(x)) by the loop reference, one per channel
    conv = model[0]
    expected = np.maximum(ref.conv2d_forward(x[None], conv.weight.data, conv.bias.data, padding="same"), 0)[0]
    shown = images_of(fig)
    assert len(shown) == 16
    for c in range(16):
        np.testing.assert_allclose(shown[c], expected[c], rtol=1e-12, atol=1e-12)
    assert "layer 1 (ReLU)" in title_of(fig)


@needs_mpl
def test_feature_maps_runs_in_eval_mode_and_names_graph_nodes(plt):
    rng = np.random.default_rng(0)
    model = mdl.Graph()
    model.add("conv", layers.Conv2D(1, 3, 3, padding=1, rng=0), "input")
    model.add("bn", layers.BatchNorm2D(3), "conv")
    model.add("drop", layers.Dropout(0.9, rng=1), "bn")
    model.add("relu", layers.ReLU(), "drop")
    model.add("inner", mdl.Sequential(layers.MaxPool2D(2), layers.ReLU()), "relu")
    model["bn"].running_mean[:] = [0.5, -0.5, 1.0]
    model["bn"].running_var[:] = [2.0, 0.5, 1.0]
    x = rng.standard_normal((1, 1, 6, 6)).astype(np.float32)
    running = model["bn"].running_mean.copy()
    fig = mdl.plot.feature_maps(model, x, layer="drop", max_maps=2)
    # eval mode: BatchNorm uses (and keeps) its running statistics, Dropout is the identity
    np.testing.assert_array_equal(model["bn"].running_mean, running)
    assert model.training and model["drop"].training
    model.eval()
    expected = model["bn"].forward(model["conv"].forward(x))
    model.train()
    shown = images_of(fig)
    assert len(shown) == 2
    for c in range(2):
        np.testing.assert_array_equal(shown[c], expected[0, c])
    assert len(images_of(mdl.plot.feature_maps(model, x, layer="inner.1"))) == 3
    # the default: the ReLU after the first Conv2D, through BatchNorm and Dropout ...
    assert "layer relu (ReLU): 3 of 3" in title_of(mdl.plot.feature_maps(model, x[0]))
    pooled = mdl.Sequential(layers.Conv2D(1, 2, 3, rng=0), layers.MaxPool2D(2), layers.ReLU())
    # ... not past another layer: then the Conv2D itself
    assert "layer 0 (Conv2D)" in title_of(mdl.plot.feature_maps(pooled, x[0]))
    # only the model up to the layer runs: the Dense of a 6x6 input would refuse it
    assert len(images_of(mdl.plot.feature_maps(mdl.models.reference_cnn(rng=0), x[0]))) == 16
    residual = mdl.models.residual_cnn(rng=0)
    assert "layer stem_relu (ReLU)" in title_of(mdl.plot.feature_maps(residual, np.ones((1, 8, 8), np.float32)))


@needs_mpl
@pytest.mark.parametrize("x, kwargs, exc, match", [
    (np.zeros((2, 1, 8, 8), np.float32), {}, ValueError, r"x must be ONE input .*Received: x of shape \(2, 1, 8, 8\)"),
    (np.zeros((8, 8), np.float32), {}, ValueError, r"x must be ONE input"),
    ([[0.0]], {}, TypeError, r"x must be a numpy.ndarray.*Received: list"),
    (np.zeros((1, 8, 8), np.float32), {"layer": "conv9"}, ValueError,
     r"unknown layer 'conv9'. The model's layers are \['0', '1', .*'7'\]"),
    (np.zeros((1, 8, 8), np.float32), {"layer": "7"}, ValueError,
     r"layer '7' \(Dense\) outputs shape \(1, 10\); feature maps are \(1, C, H, W\)"),
    (np.zeros((1, 8, 8), np.float32), {"max_maps": 0}, ValueError, r"max_maps must be >= 1"),
    (np.zeros((1, 8, 8), np.float64), {}, TypeError, r"Conv2D.*float32"),  # the model's own message
])
def test_feature_maps_bad_input(plt, x, kwargs, exc, match):
    model = mdl.models.reference_cnn(rng=0)
    with pytest.raises(exc, match=match):
        mdl.plot.feature_maps(model, x, **kwargs)
    assert model.training and all("forward" not in vars(layer) for layer in model)


@needs_mpl
def test_feature_maps_of_a_layer_that_does_not_run(plt):
    g = mdl.Graph()
    g.add("conv", layers.Conv2D(1, 2, 3, rng=0), "input")
    g.add("unused", layers.ReLU(), "conv")
    g.add("out", layers.Identity(), "conv")
    with pytest.raises(ValueError, match="layer 'unused' did not run"):
        mdl.plot.feature_maps(g, np.zeros((1, 5, 5), np.float32), layer="unused")
    with pytest.raises(ValueError, match="has no Conv2D"):
        mdl.plot.feature_maps(mdl.Sequential(layers.ReLU()), np.zeros((1, 5, 5), np.float32))


# ---------------------------------------------------------------------------- confusion_matrix
@needs_mpl
def test_confusion_matrix_image_and_texts_are_the_counts(plt):
    y_true = np.array([0, 1, 1, 2, 2, 2, 3])
    y_pred = np.array([0, 1, 2, 2, 2, 0, 3])
    counts = [[1, 0, 0, 0], [0, 1, 1, 0], [1, 0, 2, 0], [0, 0, 0, 1]]
    fig = mdl.plot.confusion_matrix(y_true, y_pred)
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.images[0].get_array(), counts)
    assert [t.get_text() for t in ax.texts] == [str(v) for row in counts for v in row]
    assert [t.get_position() for t in ax.texts][:5] == [(0, 0), (1, 0), (2, 0), (3, 0), (0, 1)]  # (column, row)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "true")
    # scores as y_pred, a fixed number of classes, normalized rows
    scores = np.eye(6)[y_pred]
    fig = mdl.plot.confusion_matrix(y_true, scores, num_classes=6, normalize="true")
    ax = fig.axes[0]
    assert ax.images[0].get_array().shape == (6, 6)
    texts = [t.get_text() for t in ax.texts]
    assert texts[6:15] == ["0.00", "0.50", "0.50", "0.00", "0.00", "0.00", "0.33", "0.00", "0.67"]


def test_metrics_confusion_matrix_matches_scikit_learn():
    from sklearn.metrics import confusion_matrix as sk

    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    y_true[y_true == 4] = 3  # an empty row
    for normalize in (None, "true", "pred", "all"):
        np.testing.assert_allclose(mdl.metrics.confusion_matrix(y_true, y_pred, 5, normalize),
                                   sk(y_true, y_pred, labels=range(5), normalize=normalize), rtol=1e-12)
    from minidl import cli

    np.testing.assert_array_equal(cli.confusion_matrix(y_true, y_pred), sk(y_true, y_pred, labels=range(10)))


@pytest.mark.parametrize("args, kwargs, exc, match", [
    (([0, 1], [0]), {}, ValueError, r"one label per sample each. Received: 2 and 1"),
    (([0, -1], [0, 1]), {}, ValueError, r"y_true holds a negative label"),
    (([0, 3], [0, 1]), {"num_classes": 3}, ValueError, r"label 3 does not fit num_classes=3"),
    (([0, 1], [0, 1]), {"num_classes": 0}, ValueError, r"num_classes must be >= 1"),
    (([0, 1], [0, 1]), {"num_classes": 2.0}, TypeError, r"num_classes must be an int"),
    (([0, 1], [0, 1]), {"normalize": "rows"}, ValueError, r"normalize must be None, 'true', 'pred' or 'all'"),
    (([0.5, 1.0], [0, 1]), {}, ValueError, r"y_true must be integer class labels.*dtype float64"),
    ((np.zeros((2, 2, 2)), [0, 1]), {}, ValueError, r"shape \(2, 2, 2\)"),
])
def test_confusion_matrix_bad_input(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        mdl.metrics.confusion_matrix(*args, **kwargs)
    if HAVE_MPL:
        with pytest.raises(exc, match=match):
            mdl.plot.confusion_matrix(*args, **kwargs)


# ---------------------------------------------------------------------------- misclassified
@needs_mpl
def test_misclassified_shows_exactly_the_wrong_samples(plt):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 1, 8, 8)).astype(np.float32)
    y_true = np.arange(10) % 4
    y_pred = y_true.copy()
    wrong = [1, 4, 5, 9]
    y_pred[wrong] = [3, 2, 2, 0]
    fig = mdl.plot.misclassified(x, y_true, np.eye(4)[y_pred])
    assert [a.get_title() for a in fig.axes] == [f"{y_true[i]}→{y_pred[i]}" for i in wrong]
    for image, i in zip(images_of(fig), wrong):
        np.testing.assert_array_equal(image, x[i, 0])
    assert "misclassified: 4 of 10" in title_of(fig)
    fig = mdl.plot.misclassified(x[:, 0], y_true, y_pred, max_images=2)  # (N, H, W), the first two
    assert [a.get_title() for a in fig.axes] == [f"{y_true[i]}→{y_pred[i]}" for i in wrong[:2]]
    rgb = mdl.plot.misclassified(rng.random((3, 3, 4, 4)), [0, 1, 2], [1, 1, 2])
    assert images_of(rgb)[0].shape == (4, 4, 3)


@needs_mpl
def test_misclassified_with_none_wrong_says_so(plt):
    fig = mdl.plot.misclassified(np.zeros((3, 1, 4, 4)), [0, 1, 2], [0, 1, 2])
    assert [t.get_text() for a in fig.axes for t in a.texts] == ["no misclassified samples (of 3)"]
    assert images_of(fig) == []


@needs_mpl
@pytest.mark.parametrize("x, y_pred, kwargs, match", [
    (np.zeros((3, 2, 4, 4)), [0, 1, 1], {}, r"C = 1 or 3, or \(N, H, W\). Received: ndarray of shape \(3, 2, 4, 4\)"),
    (np.zeros((3, 4)), [0, 1, 1], {}, r"Received: ndarray of shape \(3, 4\)"),
    (np.zeros((3, 1, 4, 4)), [0, 1], {}, r"one entry per sample. Received: 3 images, 3 and 2 labels"),
    (np.zeros((3, 1, 4, 4)), [0, 1, 1], {"max_images": 0}, r"max_images must be >= 1"),
])
def test_misclassified_bad_input(plt, x, y_pred, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mdl.plot.misclassified(x, [0, 1, 2], y_pred, **kwargs)


# ---------------------------------------------------------------------------- norms
@needs_mpl
def test_norms_plots_the_recorded_series_per_parameter(plt):
    model = mdl.Sequential(layers.Flatten(), layers.Dense(64, 10, rng=0))
    trainer = mdl.Trainer(model, losses.SoftmaxCrossEntropy(), mdl.optim.SGD(model.parameters(), lr=0.1))
    (X, y), _ = mdl.data.load_digits()
    rec = mdl.NormHistory(every=3)
    trainer.fit(X[:256], y[:256], epochs=1, batch_size=32, callbacks=[rec], seed=0, progress=False)
    fig = mdl.plot.norms(rec)
    grads, weights = fig.axes[:2]
    assert (grads.get_title(), weights.get_title()) == ("gradient norm", "weight norm")
    assert grads.get_yscale() == weights.get_yscale() == "log"
    for a, series in ((grads, rec.grad_norms), (weights, rec.weight_norms)):
        assert [line.get_label() for line in a.lines] == ["1.weight", "1.bias"]
        for line in a.lines:
            np.testing.assert_array_equal(line.get_xdata(), [0, 3, 6])
            np.testing.assert_array_equal(line.get_ydata(), series[line.get_label()])
    _, axes = plt.subplots(2, 1)
    assert mdl.plot.norms(rec, ax=axes) is axes[0].figure


@needs_mpl
def test_norms_bad_input(plt):
    with pytest.raises(RuntimeError, match=r"no records yet. Pass it to Trainer.fit"):
        mdl.plot.norms(mdl.NormHistory())
    with pytest.raises(TypeError, match=r"expected a minidl.callbacks.NormHistory.*Received: dict"):
        mdl.plot.norms({"grad_norms": {}})


def test_gradient_errors_one_bar_per_layer_the_failing_one_red(plt):
    class Wrong(mdl.layers.Tanh):
        def backward(self, grad_output, *, input_grad=True):
            return 2 * super().backward(grad_output)

    x = np.random.default_rng(0).standard_normal((2, 3))
    report = mdl.check_model(mdl.Sequential(mdl.layers.Dense(3, 4, rng=0), Wrong(), mdl.layers.Dense(4, 2, rng=1)), x)
    fig = mdl.plot.gradient_errors(report)
    bars = fig.axes[0].patches
    assert len(bars) == 3 and report.first_failure == "1"
    red = [tuple(round(c, 3) for c in b.get_facecolor()[:3]) for b in bars]
    assert red[1] != red[0] == red[2]
    assert "first failure: 1" in fig.axes[0].get_title()
    with pytest.raises(TypeError, match="what minidl.check_model returns"):
        mdl.plot.gradient_errors({"rows": []})
    plt.close(fig)
