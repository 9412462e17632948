"""Issue 21: the command line covers the whole job: --version, evaluate, predict, summary,
train --resume (--epochs as a total), runs/<dataset> without overwriting, help with defaults.

Every test here runs the installed ``minidl`` entry point in a subprocess, as a user does.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

import minidl as mdl
from minidl.cli import build_parser
from minidl.cli.images import as_digit, read_png
from minidl.cli.run_folder import choose_out

_SCRIPT = os.path.join(os.path.dirname(sys.executable), "minidl")
MINIDL = _SCRIPT if os.path.exists(_SCRIPT) else shutil.which("minidl")
pytestmark = pytest.mark.skipif(MINIDL is None, reason="the minidl entry point is not installed (pip install -e .)")


def run(*argv, cwd, ok=True):
    if argv and argv[0] == "train":  # the PNGs are test_cli.py's; here they would only cost time
        argv = (*argv, "--no-plots")
    proc = subprocess.run([MINIDL, *map(str, argv)], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={**os.environ, "MPLBACKEND": "Agg"})
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A folder where `minidl train --epochs 1` ran once with the default --out."""
    cwd = tmp_path_factory.mktemp("cli")
    run("train", "--epochs", "1", "--quiet", cwd=cwd)
    return cwd


def test_no_plots_writes_no_pictures(home):
    assert not list((home / "runs" / "digits").glob("*.png"))
    assert "learning_curve.png" not in run("train", "--epochs", "1", "--quiet", "--out", home / "np", cwd=home).stdout


def test_version():
    proc = run("--version", cwd=".")
    assert proc.stdout.strip() == f"minidl {mdl.__version__}"


def test_default_out_is_runs_dataset_and_a_second_run_gets_a_new_folder(home):
    """It was runs/digits for every dataset, and a second run overwrote the first silently."""
    first = home / "runs" / "digits"
    assert (first / "model.npz").exists() and (first / "run.json").exists() and (first / "checkpoint.npz").exists()
    before = (first / "model.npz").read_bytes()
    proc = run("train", "--epochs", "1", "--quiet", "--seed", "1", cwd=home)
    assert "-> runs/digits-2" in proc.stdout.splitlines()[0]
    assert (home / "runs" / "digits-2" / "model.npz").exists()
    assert (first / "model.npz").read_bytes() == before  # the first run is untouched
    assert choose_out(build_parser().parse_args(["train", "--dataset", "mnist"]))[0] == os.path.join("runs", "mnist")


def test_explicit_out_holding_a_run_is_refused_without_force(home):
    first = home / "runs" / "digits"
    before = (first / "model.npz").read_bytes()
    proc = run("train", "--epochs", "1", "--quiet", "--out", first, cwd=home, ok=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "holds a previous run (model.npz); pass --force" in proc.stderr
    assert (first / "model.npz").read_bytes() == before
    forced = home / "forced"
    shutil.copytree(first, forced)
    run("train", "--epochs", "1", "--quiet", "--seed", "2", "--out", forced, "--force", cwd=home)
    assert json.loads((forced / "run.json").read_text())["seed"] == 2


def test_resume_continues_bit_for_bit_and_epochs_is_a_total(home, tmp_path):
    """`--resume` did not exist; a run of 1 epoch resumed up to 2 equals a run of 2 epochs."""
    fast = ("--batch-size", "256", "--quiet")  # 6 steps an epoch: the check is the same, the runs shorter
    run("train", "--epochs", "2", *fast, "--out", tmp_path / "full", cwd=home)
    part = tmp_path / "part"
    run("train", "--epochs", "1", *fast, "--out", part, cwd=home)
    proc = run("train", "--resume", part / "checkpoint.npz", "--epochs", "2", "--quiet", cwd=home)
    assert "resumed after epoch 1" in proc.stdout
    full = json.loads((tmp_path / "full" / "history.json").read_text())["history"]
    assert json.loads((part / "history.json").read_text())["history"] == full
    a, b = mdl.load(tmp_path / "full" / "model.npz"), mdl.load(part / "model.npz")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and np.array_equal(va, vb), ka
    again = run("train", "--resume", part / "checkpoint.npz", "--epochs", "2", cwd=home, ok=False)
    assert again.returncode == 2 and "trained 2 epochs already" in again.stderr and "--epochs 3" in again.stderr
    other = run("train", "--resume", part / "checkpoint.npz", "--epochs", "3", "--lr", "0.2", cwd=home, ok=False)
    assert other.returncode == 2 and "--lr 0.2 differs from the run's 0.05" in other.stderr


def test_evaluate_prints_the_training_runs_test_scores(home):
    hist = json.loads((home / "runs" / "digits" / "history.json").read_text())
    proc = run("evaluate", "runs/digits/model.npz", cwd=home)
    assert f"test accuracy {hist['test']['accuracy']:.2%}" in proc.stdout
    assert f"test loss {hist['test']['loss']:.4f} (cross-entropy)" in proc.stdout
    result = json.loads(run("evaluate", "runs/digits/model.npz", "--json", cwd=home).stdout)
    cm = np.array(result["confusion_matrix"])
    assert cm.sum() == result["samples"] == 360 and cm.trace() / 360 == pytest.approx(result["accuracy"])
    bad = run("evaluate", "runs/digits/nope.npz", cwd=home, ok=False)
    assert bad.returncode == 2 and "cannot read it" in bad.stderr and "Traceback" not in bad.stderr


def test_summary_shows_layers_counts_and_metadata(home):
    out = run("summary", "runs/digits/model.npz", cwd=home).stdout
    assert "written by: minidl train" in out and "--dataset digits" in out
    assert "Total params: 6,090" in out and "(N, 16, 8, 8)" in out
    assert "checkpoint: epochs done: 1" in run("summary", "runs/digits/checkpoint.npz", cwd=home).stdout


def _digits_model(home):
    return mdl.load(home / "runs" / "digits" / "model.npz").eval()


def test_predict_arrays_csv_and_json(home):
    (_, _), (Xt, _) = mdl.data.load_digits()
    np.save(home / "batch.npy", Xt[:5])
    np.save(home / "one.npy", Xt[7])
    proc = run("predict", "runs/digits/model.npz", "batch.npy", "one.npy", cwd=home)
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    logits = _digits_model(home)(np.concatenate([Xt[:5], Xt[7:8]]))
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    assert [r["input"] for r in rows] == ["batch.npy"] * 5 + ["one.npy"]
    assert [int(r["class"]) for r in rows] == list(logits.argmax(1))
    got = np.array([[float(r[f"p{c}"]) for c in range(10)] for r in rows])
    np.testing.assert_allclose(got, probs, atol=2e-6)
    js = json.loads(run("predict", "runs/digits/model.npz", "batch.npy", "--format", "json", "--top", "3",
                        cwd=home).stdout)
    assert len(js) == 5 and [len(r["top"]) for r in js] == [3] * 5 and js[0]["top"][0][0] == js[0]["class"]
    np.save(home / "wrong.npy", np.zeros((2, 1, 28, 28), np.float32))
    bad = run("predict", "runs/digits/model.npz", "wrong.npy", cwd=home, ok=False)
    assert bad.returncode == 2 and "expected samples of shape (1, 8, 8)" in bad.stderr


def _png(path, pixels, depth=8, colour=0):
    """A PNG written here: each row with filter (row % 5), so the reader meets all five."""
    h, w = pixels.shape[:2]
    data = pixels.astype(">u2" if depth == 16 else np.uint8).reshape(h, -1).view(np.uint8).astype(np.int64)
    bpp = data.shape[1] // w
    raw = bytearray()
    prev = np.zeros(data.shape[1], np.int64)
    for r, row in enumerate(data):
        kind = r % 5
        left = np.concatenate([np.zeros(bpp, np.int64), row[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int64), prev[:-bpp]])
        p = left + prev - upleft
        paeth = np.where((abs(p - left) <= abs(p - prev)) & (abs(p - left) <= abs(p - upleft)), left,
                         np.where(abs(p - prev) <= abs(p - upleft), prev, upleft))
        pred = [0, left, prev, (left + prev) // 2, paeth][kind]
        raw += bytes([kind]) + bytes(((row - pred) % 256).astype(np.uint8))
        prev = row

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(raw)))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("depth, colour, channels", [(8, 0, 1), (16, 0, 1), (8, 2, 3), (8, 6, 4), (16, 2, 3)])
def test_png_reader_undoes_every_filter(tmp_path, depth, colour, channels):
    rng = np.random.default_rng(depth + colour)
    pixels = rng.integers(0, 2 ** depth, size=(11, 9, channels) if channels > 1 else (11, 9))
    pixels[..., -1] = 2 ** depth - 1 if colour == 6 else pixels[..., -1]  # opaque: the grey is the mean
    _png(tmp_path / "x.png", pixels, depth, colour)
    grey = pixels[..., :3].mean(-1) if channels > 1 else pixels
    np.testing.assert_allclose(read_png(tmp_path / "x.png"), grey / (2 ** depth - 1), atol=1e-12)


def test_png_reader_refuses_damaged_and_unsupported_files(tmp_path):
    _png(tmp_path / "ok.png", np.zeros((4, 4), np.uint8))
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:-20])
    (tmp_path / "text.png").write_text("not a png")
    for name, message in [("cut.png", "damaged PNG"), ("text.png", "not a PNG")]:
        with pytest.raises(ValueError, match=message):
            read_png(tmp_path / name)


def test_predict_png_digits_dark_on_light(home, tmp_path):
    """A drawn digit (dark ink on white, 4x larger) comes out as the dataset's digits look, and
    the model's prediction for the PNG is the one for that prepared array."""
    (_, _), (Xt, _) = mdl.data.load_digits()
    img = np.kron(Xt[3, 0], np.ones((4, 4)))  # 32 x 32, ink high
    _png(tmp_path / "d.png", np.round(255 * (1 - img)).astype(np.uint8))  # dark on light
    prepared = as_digit(read_png(tmp_path / "d.png"), (8, 8))
    assert prepared.min() == 0 and prepared.max() == 1
    assert np.corrcoef(prepared.ravel(), Xt[3, 0].ravel())[0, 1] > 0.8  # inverted, centred, same digit
    proc = run("predict", home / "runs" / "digits" / "model.npz", tmp_path / "d.png", "--format", "json", cwd=home)
    expected = _digits_model(home)(prepared[None, None].astype(np.float32)).argmax()
    assert json.loads(proc.stdout)[0]["class"] == expected


def test_every_option_has_help_that_states_its_default():
    """--batch-size, --lr, --momentum and --seed had no help; none said its default."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    for name, sub in subparsers.items():
        for action in sub._actions:
            if not action.option_strings or action.dest == "help" or action.required:
                continue
            assert action.help and "default" in action.help, f"minidl {name} {action.option_strings[0]}"
