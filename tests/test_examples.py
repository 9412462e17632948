"""The scripts in examples/ run end to end (as a user would run them) with tiny settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minidl as mdl

EXAMPLES = Path(__file__).parents[1] / "examples"


def run_example(name, *args, cwd):
    """Run ``examples/<name>`` in a fresh interpreter from ``cwd``; returns the CompletedProcess."""
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def check_ok(proc):
    assert proc.returncode == 0, (
        f"exit code {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc.stdout


def test_train_digits_is_short():
    n_lines = len((EXAMPLES / "train_digits.py").read_text().splitlines())
    assert n_lines < 40, f"examples/train_digits.py has {n_lines} lines; keep it under 40"


def test_train_digits_trains_saves_and_reloads(tmp_path):
    out = tmp_path / "model.npz"
    stdout = check_ok(run_example("train_digits.py", "--epochs", "1", "--out", str(out), cwd=tmp_path))
    assert "test accuracy" in stdout
    assert "identical predictions: True" in stdout
    assert out.is_file()
    model = mdl.load(out)
    assert model.num_parameters() == 6090  # the reference CNN
    (_, _), (X_test, y_test) = mdl.data.load_digits(test_size=0.2, seed=0)
    accuracy = float(np.mean(model.eval()(X_test).argmax(axis=1) == y_test))
    assert accuracy > 0.3  # one epoch from seed 0 gives about 0.5; chance is 0.1
    printed = float(stdout.split("test accuracy:", 1)[1].split("%")[0]) / 100
    assert abs(printed - accuracy) <= 1 / len(y_test) + 1e-9  # the printed number is the saved model's


def test_train_digits_default_output_in_working_folder(tmp_path):
    stdout = check_ok(run_example("train_digits.py", "--epochs", "1", cwd=tmp_path))
    assert "test accuracy" in stdout
    saved = list(tmp_path.glob("*.npz"))
    assert len(saved) == 1, saved
    mdl.load(saved[0])


def test_residual_digits(tmp_path):
    stdout = check_ok(run_example("residual_digits.py", "--epochs", "1", cwd=tmp_path))
    assert "Total params" in stdout  # model.summary
    assert "stem_relu, conv2" in stdout  # the Add node reads the skip and the branch
    assert "test accuracy" in stdout
    accuracy = float(stdout.rsplit("test accuracy:", 1)[1].split("%")[0]) / 100
    assert accuracy > 0.3


def test_custom_layer_gradcheck(tmp_path):
    stdout = check_ok(run_example("custom_layer_gradcheck.py", cwd=tmp_path))
    assert "gradcheck Swish(channels=3): PASSED" in stdout
    assert "gradcheck BrokenSwish(channels=3): FAILED" in stdout
    assert "FAIL" in stdout.split("BrokenSwish(channels=3): FAILED", 1)[1]  # a failing row in the table


@pytest.mark.parametrize("name", ["train_digits.py", "residual_digits.py", "custom_layer_gradcheck.py"])
def test_example_has_docstring_and_main_guard(name):
    source = (EXAMPLES / name).read_text()
    assert source.startswith('"""') and "Run from any folder" in source
    assert 'if __name__ == "__main__":' in source


@pytest.mark.parametrize("name", ["train_digits.py", "residual_digits.py"])
def test_example_help_lists_epochs(name, tmp_path):
    assert "--epochs" in check_ok(run_example(name, "--help", cwd=tmp_path))


def run_copy(name, tmp_path, *args):
    """Run a copy of ``examples/<name>`` placed in ``tmp_path`` (it writes its figures next to itself), from
    another folder; returns its stdout."""
    import shutil

    shutil.copy(EXAMPLES / name, tmp_path / name)
    env = {**os.environ, "MPLBACKEND": "Agg"}
    (tmp_path / "elsewhere").mkdir()
    return check_ok(subprocess.run([sys.executable, str(tmp_path / name), *args], cwd=tmp_path / "elsewhere", env=env,
                                   capture_output=True, text=True, timeout=120))


def test_find_a_wrong_layer_names_the_broken_activation(tmp_path):
    pytest.importorskip("matplotlib")
    stdout = run_copy("plot_find_a_wrong_layer.py", tmp_path)
    assert "first failing layer: 4" in stdout
    assert (tmp_path / "plot_find_a_wrong_layer_1.png").stat().st_size > 0


def test_a_plot_example_run_as_a_script_saves_its_figures_next_to_it(tmp_path):
    """Before: only plot_find_a_wrong_layer saved its figure (into the working folder); the others printed
    text and dropped their figures."""
    pytest.importorskip("matplotlib")
    stdout = run_copy("plot_check_a_gradient.py", tmp_path)
    written = sorted(p.name for p in tmp_path.glob("*.png"))
    assert written == ["plot_check_a_gradient_1.png"]
    assert f"wrote {tmp_path / written[0]}" in stdout
    assert (tmp_path / written[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "elsewhere").iterdir())  # nothing in the working folder



def test_autoencoder_learns_and_matches_torch(tmp_path):
    """The autoencoder's test MSE beats painting the mean digit by far, and the same recipe in torch
    (same initial weights, same batches) ends within a few percent of it."""
    pytest.importorskip("matplotlib")
    stdout = run_copy("plot_autoencoder.py", tmp_path)
    baseline = float(stdout.split("mean training image:", 1)[1].split()[0])
    ours = float(stdout.split("test MSE minidl:", 1)[1].split()[0])
    assert ours < 0.6 * baseline, (ours, baseline)
    theirs = stdout.split("torch:", 1)[1].split()[0]
    if theirs != "skipped":
        assert abs(float(theirs) - ours) <= 0.05 * ours, (ours, theirs)
    for n in (1, 2, 3):  # reconstructions, filters, learning curve: next to the script
        assert (tmp_path / f"plot_autoencoder_{n}.png").stat().st_size > 0



def test_vae_digits_trains_with_a_plain_loop_and_draws_its_figure(tmp_path):
    pytest.importorskip("matplotlib")
    source = (EXAMPLES / "plot_vae_digits.py").read_text()
    code = source.split('"""', 2)[2]  # after the module docstring: a plain loop, no Trainer
    assert source.startswith('"""') and "Run from any folder" in source and "Trainer" not in code
    stdout = run_copy("plot_vae_digits.py", tmp_path, "--epochs", "3")
    losses = [float(line.split("reconstruction")[1].split("+")[0]) + float(line.split("KL")[1].split("nats")[0])
              for line in stdout.splitlines() if line.startswith("epoch")]
    assert len(losses) == 2 and losses[1] < losses[0] - 1.0, stdout  # epochs 1 and 3: the loss per image falls
    assert f"wrote {tmp_path / 'plot_vae_digits_1.png'}" in stdout
    assert (tmp_path / "plot_vae_digits_1.png").stat().st_size > 0


def test_vae_digits_hand_written_gradient_matches_central_differences(monkeypatch, tmp_path):
    """The example's reparameterisation and KL gradients, run on float64 copies of its untrained models."""
    import runpy
    import shutil

    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from minidl.gradcheck import float64_copy

    monkeypatch.setattr(sys, "argv", ["plot_vae_digits.py", "--epochs", "0"])
    shutil.copy(EXAMPLES / "plot_vae_digits.py", tmp_path)  # a copy: run as a script it saves its PNG beside itself
    step = runpy.run_path(str(tmp_path / "plot_vae_digits.py"))["step"]
    assert (tmp_path / "plot_vae_digits_1.png").exists()  # there, not in examples/
    names = step.__globals__  # the function's own globals: swap its models for float64 copies
    names["encoder"], names["decoder"] = (float64_copy(names[m]).train() for m in ("encoder", "decoder"))
    rng = np.random.default_rng(1)
    x, eps = names["X_test"][:5].astype(np.float64), rng.standard_normal((5, names["LATENT"]))
    params = names["encoder"].parameters() + names["decoder"].parameters()
    for p in params:
        p.zero_grad()
    step(x, eps)
    worst = 0.0
    for p in params:
        for i in rng.choice(p.data.size, 6, replace=False):
            flat, old = p.data.reshape(-1), p.data.reshape(-1)[i]
            flat[i] = old + 1e-6
            up = sum(step(x, eps, train=False))
            flat[i] = old - 1e-6
            down = sum(step(x, eps, train=False))
            flat[i] = old
            worst = max(worst, abs((up - down) / 2e-6 - p.grad.reshape(-1)[i]))
    assert worst < 1e-6, worst
