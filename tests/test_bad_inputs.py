"""The bad-input table of docs/reliability.md: each row's call raises the documented exception.

Every row is answered before any work: nothing trained, nothing written, nothing allocated
beyond the check itself.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

import minidl as mdl
from minidl import cli, layers, losses
from minidl import functional as F
from minidl.callbacks import EarlyStopping, ModelCheckpoint

RNG = np.random.default_rng
DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"


def _linear():
    return mdl.Sequential(layers.Flatten(), layers.Dense(64, 10, rng=RNG(0)))


def _trainer(model=None):
    model = model or _linear()
    return mdl.Trainer(model, losses.SoftmaxCrossEntropy(), mdl.optim.SGD(model.parameters(), lr=0.1))


def _data():
    (X, y), (Xt, yt) = mdl.data.load_digits()
    return X[:64], y[:64], Xt[:16], yt[:16]


def _hostile(tmp, n):
    path = tmp / "hostile.npz"
    arch = {"format": "minidl", "format_version": 2, "arrays": {}, "model": {
        "class": "Sequential", "layers": [{"class": "Dense", "config": {"in_features": n, "out_features": n}}]}}
    with zipfile.ZipFile(path, "w") as zf, zf.open("__minidl_architecture__.npy", "w") as f:
        np.lib.format.write_array(f, np.array(json.dumps(arch)))
    return path


def _saved(tmp):
    path = tmp / "model.npz"
    _linear().save(path)
    return path


def _bzip2(tmp):
    path = tmp / "bz.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_BZIP2) as zf:
        for name, a in {"X": np.zeros((8, 8, 8), np.uint8), "y": np.zeros(8, np.int64)}.items():
            with zf.open(f"{name}.npy", "w") as f:
                np.lib.format.write_array(f, a)
    return path


def _loaded(tmp):
    mdl.Sequential(layers.Dense(64, 10, rng=RNG(0))).save(tmp / "d.npz")
    return mdl.load(tmp / "d.npz")


def _backward_once(model):
    model(np.ones((1, 64), np.float32))
    return model.backward(np.ones((1, 10), np.float32))


def _nan(a, index=3):
    a = a.copy()
    a[index, 0, 0, 0] = np.nan
    return a


def _fit(**kwargs):
    X, y, Xt, yt = _data()
    args = dict(X=X, y=y, epochs=1, progress=False)
    args.update(kwargs)
    return lambda tmp: _trainer().fit(**args)


class Unregistered(layers.ReLU):
    pass


def _cli(*argv):
    def run(tmp):
        cli.main([*argv, "--out", str(tmp / "run")] if argv[0] == "train" else list(argv))
    return run


# (row id, call(tmp_path), exception, message pattern); the ids are the table's rows
ROWS = [
    ("load: missing file", lambda tmp: mdl.load(tmp / "nope.npz"), FileNotFoundError, "nope.npz"),
    ("load: not a zip", lambda tmp: (tmp / "x.npz").write_bytes(b"hello") and mdl.load(tmp / "x.npz"),
     ValueError, "not a .npz"),
    ("load: truncated file", lambda tmp: (tmp / "t.npz").write_bytes(_saved(tmp).read_bytes()[:300])
     and mdl.load(tmp / "t.npz"), ValueError, "cannot load"),
    ("load: 1 KiB file declaring Dense(10**6, 10**6)", lambda tmp: mdl.load(_hostile(tmp, 10**6)),
     ValueError, "do not match the architecture"),
    ("load: arrays over max_bytes", lambda tmp: mdl.load(_saved(tmp), max_bytes=1000), ValueError, "max_bytes"),
    ("load: custom_layers not Layer classes", lambda tmp: mdl.load(_saved(tmp), custom_layers={"X": 3}),
     TypeError, "Layer subclasses"),
    ("save: unregistered layer class", lambda tmp: mdl.Sequential(Unregistered()).save(tmp / "u.npz"),
     ValueError, "register_layer"),
    ("save: folder does not exist", lambda tmp: _linear().save(tmp / "no" / "m.npz"), FileNotFoundError,
     r"cannot write .*m\.npz"),
    ("Graph.add: name with '/' or '\\x00'", lambda tmp: mdl.Graph().add("a/b", layers.ReLU()),
     ValueError, "printable"),
    ("Graph.add: name with '.'", lambda tmp: mdl.Graph().add("a.b", layers.ReLU()), ValueError, "'.'"),
    ("Trainer: a layer as the loss", lambda tmp: (lambda m: mdl.Trainer(m, layers.ReLU(), mdl.optim.SGD(
        m.parameters(), lr=0.1)))(_linear()), TypeError, "loss must be a loss"),
    ("Trainer: the optimizer class, not an instance", lambda tmp: mdl.Trainer(
        _linear(), losses.SoftmaxCrossEntropy(), mdl.optim.SGD), TypeError, "an instance is needed"),
    ("Trainer: metrics='accuracy'", lambda tmp: (lambda m: mdl.Trainer(
        m, losses.SoftmaxCrossEntropy(), mdl.optim.SGD(m.parameters(), lr=0.1),
        metrics="accuracy"))(_linear()), TypeError, r"metrics=\['accuracy'\]"),
    ("Trainer: an optimizer of another model's parameters", lambda tmp: mdl.Trainer(
        _linear(), losses.SoftmaxCrossEntropy(), mdl.optim.SGD(_linear().parameters(), lr=0.1)),
     ValueError, "parameters"),
    ("fit: y is a list", lambda tmp: _fit(y=[0] * 64)(tmp), TypeError, "y must be a numpy.ndarray"),
    ("fit: y is None", lambda tmp: _fit(y=None)(tmp), TypeError, "y must be a numpy.ndarray"),
    ("fit: nan in X", lambda tmp: _fit(X=_nan(_data()[0]))(tmp), ValueError, "X contains nan"),
    ("fit: nan in validation data", lambda tmp: _fit(validation_data=(_nan(_data()[2]), _data()[3]))(tmp),
     ValueError, r"validation_data\[0\] contains nan"),
    ("fit: epochs=0", lambda tmp: _fit(epochs=0)(tmp), ValueError, "epochs"),
    ("fit: clip_grad_norm=-1", lambda tmp: _fit(clip_grad_norm=-1.0)(tmp), ValueError, "clip_grad_norm"),
    ("ModelCheckpoint '{val_loss}' without validation data", lambda tmp: _fit(
        callbacks=[ModelCheckpoint(str(tmp / "{val_loss}.npz"))])(tmp), ValueError, "will not be logged"),
    ("ModelCheckpoint '{0}' or '{x}'", lambda tmp: _fit(
        callbacks=[ModelCheckpoint(str(tmp / "{0}.npz"))])(tmp), ValueError, "will not be logged"),
    ("EarlyStopping monitoring a metric that will not exist", lambda tmp: _fit(
        callbacks=[EarlyStopping(monitor="val_loss")])(tmp), ValueError, "will not be in the logs"),
    ("EarlyStopping(patience=True)", lambda tmp: EarlyStopping(patience=True), TypeError, "patience"),
    ("SGD: lr=1e39 with float32 parameters", lambda tmp: mdl.optim.SGD(_linear().parameters(), lr=1e39),
     ValueError, "not finite in the parameters' dtype"),
    ("SGD: lr=-1", lambda tmp: mdl.optim.SGD(_linear().parameters(), lr=-1), ValueError, ">= 0"),
    ("clip_grad_norm: max_norm=nan", lambda tmp: mdl.optim.clip_grad_norm(_linear().parameters(), np.nan),
     ValueError, "max_norm"),
    ("load_checkpoint: a plain model file", lambda tmp: _trainer().load_checkpoint(_saved(tmp)),
     ValueError, "not a Trainer checkpoint"),
    ("loss.backward(logits)",
     lambda tmp: (lambda loss: (loss(np.zeros((2, 3)), np.array([0, 1])),
                                loss.backward(np.zeros((2, 3)))))(losses.SoftmaxCrossEntropy()),
     ValueError, "backward takes no array"),
    ("Concat(axis=1.7)", lambda tmp: layers.Concat(axis=1.7), TypeError, "axis must be an int"),
    ("Dense.backward with a float64 gradient after a float32 forward",
     lambda tmp: (lambda d: (d(np.ones((1, 2), np.float32)), d.backward(np.ones((1, 2)))))(
         layers.Dense(2, 2, rng=RNG(0))), TypeError, r"dtype float32 .*got float64\. Cast it with"),
    ("Add.backward with a wrong-shaped gradient", lambda tmp: (lambda a: (a(np.ones(3), np.ones(3)),
                                                                         a.backward(np.ones(4))))(layers.Add()),
     ValueError, "expected grad_output of shape"),
    ("backward before forward", lambda tmp: layers.Dense(2, 2).backward(np.ones((1, 2))), RuntimeError,
     "before forward"),
    ("Conv2D with 0 input channels", lambda tmp: layers.Conv2D(0, 4, 3), ValueError, "in_channels"),
    ("conv2d with 0 channels", lambda tmp: F.conv2d(np.ones((1, 0, 4, 4)), np.ones((2, 0, 3, 3))),
     ValueError, "channel"),
    ("backward after a forward in eval mode", lambda tmp: (lambda d: (d.eval(), d(np.ones((1, 2), np.float32)),
                                                                     d.backward(np.ones((1, 2), np.float32))))(
        layers.Dense(2, 2, rng=RNG(0))), RuntimeError, "eval mode"),
    ("conv2d given a list", lambda tmp: F.conv2d([[[[1.0]]]], np.ones((1, 1, 1, 1))), TypeError, "numpy.ndarray"),
    ("fit: validation_data[0] the model cannot take", lambda tmp: _fit(
        validation_data=(_data()[2][:, :, :4], _data()[3]))(tmp), ValueError, r"cannot take validation_data\[0\]"),
    ("fit: a label out of range in y", lambda tmp: _fit(y=np.where(np.arange(64) == 50, 12, _data()[1]))(tmp),
     ValueError, "does not fit the model's outputs"),
    ("fit: BatchNorm and a last batch of one sample", lambda tmp: _trainer(mdl.Sequential(
        layers.Flatten(), layers.Dense(64, 8, rng=RNG(0)), layers.BatchNorm1D(8), layers.Dense(8, 10, rng=RNG(1)))
    ).fit(_data()[0][:33], _data()[1][:33], epochs=1, batch_size=32, progress=False), ValueError, "drop_last=True"),
    ("fit: drop_last=True with fewer samples than batch_size", lambda tmp: _fit(
        X=_data()[0][:10], y=_data()[1][:10], batch_size=32, drop_last=True)(tmp), ValueError, "leaves no batch"),
    ("RandomRotation(1e308)", lambda tmp: mdl.data.RandomRotation(1e308), ValueError, "degrees"),
    ("AvgPool2D on zero channels", lambda tmp: layers.AvgPool2D(2)(np.ones((1, 0, 4, 4), np.float32)),
     ValueError, "at least one channel"),
    ("load_npz: a .npy file", lambda tmp: (np.save(tmp / "a.npy", np.zeros(3)), mdl.data.load_npz(tmp / "a.npy")),
     ValueError, r"this is a \.npy file"),
    ("load_npz: a bzip2 member", lambda tmp: mdl.data.load_npz(_bzip2(tmp)), ValueError, "compression method"),
    ("load: a loaded model trained by hand without train()", lambda tmp: _backward_once(_loaded(tmp)),
     RuntimeError, "eval mode"),
    ("minidl train --lr abc", _cli("train", "--lr", "abc"), SystemExit, "2"),
    ("minidl train --seed -1", _cli("train", "--seed", "-1"), SystemExit, "2"),
    ("minidl train --lr 1e39", _cli("train", "--lr", "1e39"), SystemExit, "2"),
    ("set_num_threads(0)", lambda tmp: mdl.set_num_threads(0), ValueError, r"set_num_threads: n must be >= 1"),
    ("set_num_threads(1.5)", lambda tmp: mdl.set_num_threads(1.5), TypeError, r"set_num_threads: n must be an int"),
    ("ReLU given a list", lambda tmp: layers.ReLU()([1.0]), TypeError, r"ReLU\(\): input must be a numpy.ndarray"),
    ("Dropout2D given (N, C)", lambda tmp: layers.Dropout2D()(np.zeros((2, 3))), ValueError,
     r"Dropout2D\(p=0.5\): expected input with 4 dimensions \(N, C, H, W\)"),
]


@pytest.mark.parametrize("row, call, exc, pattern", ROWS, ids=[r[0] for r in ROWS])
def test_bad_input_raises_the_documented_exception(tmp_path, row, call, exc, pattern):
    with pytest.raises(exc) as info:
        call(tmp_path)
    assert re.search(pattern, str(info.value.code if exc is SystemExit else info.value)), info.value
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_every_row_is_in_the_documented_table():
    table = DOC.read_text()
    missing = [row for row, *_ in ROWS if f"| {row} |" not in table]
    assert not missing, f"rows missing from docs/reliability.md's bad-input table: {missing}"
