"""The ``minidl`` command line: ``minidl train`` and ``minidl gradcheck``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import minidl as mdl
from minidl import cli


def _parse_confusion(out: str) -> np.ndarray:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("true\\pred"))
    header = lines[start].split()[1:]
    assert header == [str(j) for j in range(10)]
    rows = []
    for i in range(10):
        parts = lines[start + 1 + i].split()
        assert parts[0] == str(i)
        rows.append([int(v) for v in parts[1:]])
    return np.array(rows)


def _accuracy_from(out: str) -> float:
    m = re.search(r"test accuracy\s+([0-9.]+)%", out)
    assert m, out
    return float(m.group(1)) / 100


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One `minidl train --epochs 2 --quiet` run shared by the checks below."""
    out_dir = tmp_path_factory.mktemp("run")
    import io
    from contextlib import redirect_stderr, redirect_stdout

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["train", "--epochs", "2", "--out", str(out_dir), "--quiet"])
    return code, out.getvalue(), err.getvalue(), out_dir


def test_train_returns_zero_and_prints_accuracy_and_confusion_matrix(trained):
    code, out, err, _ = trained
    assert code == 0
    assert err == ""  # --quiet: no progress bars
    assert "Total params" not in out  # --quiet: no summary
    acc = _accuracy_from(out)
    assert 0.0 <= acc <= 1.0
    assert "confusion matrix" in out
    cm = _parse_confusion(out)
    assert cm.sum() == 360 and np.all(cm >= 0)
    # the matrix agrees with the printed accuracy
    assert cm.trace() / 360 == pytest.approx(acc, abs=5e-5)
    (_, _), (_, yt) = mdl.data.load_digits()
    np.testing.assert_array_equal(cm.sum(axis=1), np.bincount(yt, minlength=10))


def test_train_writes_loadable_model(trained):
    _, out, _, out_dir = trained
    model = mdl.load(out_dir / "model.npz")
    assert isinstance(model, mdl.Sequential) and model.num_parameters() == 6090
    (_, _), (Xt, yt) = mdl.data.load_digits()
    pred = model.forward(Xt).argmax(axis=1)
    assert float(np.mean(pred == yt)) == pytest.approx(_accuracy_from(out), abs=5e-5)
    np.testing.assert_array_equal(cli.confusion_matrix(yt, pred), _parse_confusion(out))


def test_train_writes_history_json(trained):
    _, out, _, out_dir = trained
    with open(out_dir / "history.json") as f:
        data = json.load(f)
    hist = data["history"]
    assert set(hist) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 2 for v in hist.values())
    assert data["config"]["epochs"] == 2
    assert data["test"]["accuracy"] == pytest.approx(_accuracy_from(out), abs=5e-5)
    assert data["test"]["accuracy"] == pytest.approx(hist["val_accuracy"][-1])


PNGS = ["learning_curve.png", "filters.png", "feature_maps.png", "confusion.png", "misclassified.png", "norms.png"]


def test_train_writes_learning_curve_and_the_other_pngs(trained):
    """Issue 10: next to the model, the six pictures of minidl.plot (learning_curve.png keeps its name)."""
    pytest.importorskip("matplotlib")
    _, out, _, out_dir = trained
    for name in PNGS:
        png = out_dir / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert png.stat().st_size > 1000, name
    written = out[out.index("wrote:"):].splitlines()[1:]
    assert [line.strip() for line in written] == [str(out_dir / n) for n in ["model.npz", "history.json", *PNGS]]
    assert sorted(os.listdir(out_dir)) == sorted(["history.json", "model.npz", "checkpoint.npz", "run.json", *PNGS])
    assert "matplotlib not installed" not in out
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # every figure closed


def test_train_without_matplotlib_writes_no_png_and_succeeds(tmp_path, monkeypatch, capsys):
    for name in [m for m in list(sys.modules) if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert cli.main(["train", "--epochs", "1", "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.count("(matplotlib not installed: no PNGs; pip install 'minidl[plot]')") == 1
    assert "confusion matrix" in out
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz", "history.json", "model.npz", "run.json"]


def test_train_is_reproducible(trained, tmp_path, capsys):
    _, _, _, out_dir = trained
    assert cli.main(["train", "--epochs", "2", "--out", str(tmp_path), "--quiet"]) == 0
    capsys.readouterr()
    h1 = json.loads((out_dir / "history.json").read_text())["history"]
    h2 = json.loads((tmp_path / "history.json").read_text())["history"]
    assert h1 == h2


def test_train_without_quiet_prints_summary_and_progress(tmp_path, capfd):
    assert cli.main(["train", "--epochs", "1", "--out", str(tmp_path / "x"), "--batch-size", "64"]) == 0
    out, err = capfd.readouterr()
    assert "Total params: 6,090" in out and "(N, 16, 8, 8)" in out
    assert "batch 64" in out
    assert "Epoch 1/1" in err and "loss=" in err
    assert (tmp_path / "x" / "model.npz").exists()  # the folder was created


@pytest.mark.parametrize("argv, message", [
    (["train", "--epochs", "0"], ">= 1"), (["train", "--batch-size", "0"], ">= 1"),
    (["train", "--epochs", "-3"], ">= 1"), (["train", "--lr", "abc"], "expected a number, got 'abc'"),
    (["train", "--lr", "nan"], "> 0"), (["train", "--lr", "-0.1"], "> 0"), (["train", "--lr", "0"], "> 0"),
    (["train", "--seed", "-1"], ">= 0"), (["train", "--seed", "1.5"], "expected an integer"),
    (["train", "--momentum", "1.5"], "< 1"), (["train", "--momentum", "inf"], "finite"),
    (["gradcheck", "--seed", "-1"], ">= 0"),
])
def test_bad_values_are_one_line_usage_errors_before_any_work(argv, message, tmp_path, capsys):
    """Issue 6: argparse errors (exit status 2, one line after the usage), never tracebacks."""
    extra = ["--out", str(tmp_path)] if argv[0] == "train" else []
    with pytest.raises(SystemExit) as info:
        cli.main(argv + extra)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc (unwritable even for root)")
def test_unwritable_out_folder_fails_before_training(capsys):
    assert cli.main(["train", "--epochs", "50", "--out", "/proc/self/minidl-run", "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert "cannot write to --out '/proc/self/minidl-run'" in err and "trained" not in out


def test_out_path_that_is_a_file_fails_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert cli.main(["train", "--epochs", "50", "--out", str(blocker), "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert "cannot write to --out" in err and "Epoch" not in err and "trained" not in out


@pytest.mark.parametrize("argv", [[], ["fly"], ["train", "--epochs", "two"], ["train", "--nope"]])
def test_bad_command_lines_exit_with_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_console_script_subprocess(tmp_path):
    out_dir = tmp_path / "sub"
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, "-m", "minidl.cli", "train", "--epochs", "1", "--out", str(out_dir), "--quiet"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy" in proc.stdout and "confusion matrix" in proc.stdout
    assert json.loads((out_dir / "history.json").read_text())["history"]["loss"].__len__() == 1
    mdl.load(out_dir / "model.npz")


def test_console_script_entry_point_is_declared():
    from importlib.metadata import entry_points

    eps = [ep for ep in entry_points(group="console_scripts") if ep.name == "minidl"]
    assert eps, "the 'minidl' console script is not installed (pip install -e .)"
    assert eps[0].value == "minidl.cli:main"
    assert eps[0].load() is cli.main


def test_gradcheck_command_passes_and_prints_a_table(capsys):
    assert cli.main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    assert "PASSED" in out and "FAILED" not in out
    assert "max_abs_err" in out and "worst_index" in out
    builtins = [name for name, cls in mdl.layers.registry.REGISTRY.items() if cls.__module__.startswith("minidl.")]
    assert len(builtins) >= 22  # issue 18: every built-in layer type (22 with SiLU), not 8 of them
    for name in builtins:
        assert f"gradcheck {name}(" in out, name
    m = re.search(r"(\d+) passed, 0 failed", out)
    assert m and int(m.group(1)) == out.count(": PASSED")


def test_gradcheck_command_fails_on_a_broken_layer(monkeypatch, capsys):
    real = mdl.layers.ReLU.backward
    monkeypatch.setattr(mdl.layers.ReLU, "backward", lambda self, g: 2 * real(self, g))
    assert cli.main(["gradcheck"]) == 1
    out = capsys.readouterr().out
    assert "gradcheck ReLU(): FAILED" in out
    assert re.search(r"\d+ passed, 1 failed", out)


def test_confusion_matrix_helper():
    cm = cli.confusion_matrix([0, 1, 1, 2, 2, 2], [0, 1, 2, 2, 2, 0], num_classes=3)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [0, 1, 1], [1, 0, 2]])
    text = cli.format_confusion(cm)
    assert text.splitlines()[0].split() == ["true\\pred", "0", "1", "2"]


def test_lr_not_finite_in_float32_is_a_usage_error(tmp_path, capsys):
    """Issue 6: 1e39 is a finite Python float but inf in the model's float32: it used to pass
    argparse and end in a ValueError traceback from SGD."""
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--lr", "1e39", "--out", str(tmp_path)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--lr" in err and "3.4028" in err and "Traceback" not in err
    assert os.listdir(tmp_path) == []


def test_diverging_training_is_a_one_line_error_not_a_traceback(tmp_path, capsys):
    """A learning rate that makes the loss nan: exit status 1 and the Trainer's message on one
    line (it was a FloatingPointError traceback); no model is written."""
    code = cli.main(["train", "--lr", "1e30", "--epochs", "2", "--out", str(tmp_path), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minidl train: error: Trainer.fit:")
    assert "epoch 1, batch" in lines[0] and "Traceback" not in err
    assert os.listdir(tmp_path) == []


def test_a_png_that_cannot_be_written_is_a_one_line_error_and_the_rest_is_written(tmp_path, capsys):
    """A picture's path that cannot be written (here a folder named filters.png): exit status 1,
    one line naming it on stderr, the model, the history and the other PNGs written and listed
    (it was an IsADirectoryError traceback, and the PNGs after it were never drawn)."""
    pytest.importorskip("matplotlib")
    (tmp_path / "filters.png").mkdir()
    code = cli.main(["train", "--epochs", "1", "--out", str(tmp_path), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minidl train: error: cannot write ")
    assert str(tmp_path / "filters.png") in lines[0] and "Traceback" not in err
    others = [n for n in PNGS if n != "filters.png"]
    for name in others:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    written = out[out.index("wrote:"):].splitlines()[1:]
    assert [line.strip() for line in written] == [str(tmp_path / n) for n in ["model.npz", "history.json", *others]]
    assert mdl.load(str(tmp_path / "model.npz")) is not None
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # every figure closed
