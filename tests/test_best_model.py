"""The best digits model (issue 8): its architecture, its recipe, ``minidl train --model best``,
and (slow) its accuracy on one seed. The three-seed mean is measured for README/CHANGELOG."""

from __future__ import annotations

import json

import numpy as np
import pytest

import minidl as mdl
from minidl import cli, layers, models


def test_architecture_has_batchnorm_dropout_and_torch_names():
    model = models.digits_best(0)
    kinds = [type(layer).__name__ for layer, _ in model.nodes.values()]
    assert kinds.count("BatchNorm2D") == 4 and kinds.count("Conv2D") == 4 and "Dropout" in kinds
    assert model(np.zeros((2, 1, 8, 8), np.float32)).shape == (2, 10)
    names = [name for name, _ in model.named_buffers()]
    assert "1.running_mean" in names and "1.num_batches_tracked" in names


def test_recipe_decays_weights_only_and_schedules_by_cosine():
    model = models.digits_best(0)
    recipe = models.digits_best_recipe(model, epochs=30)
    opt = recipe["optimizer"]
    decayed, free = opt.param_groups
    assert decayed["weight_decay"] == 2e-3 and free["weight_decay"] == 0.0
    assert all(p.data.ndim > 1 for p in decayed["params"]) and all(p.data.ndim == 1 for p in free["params"])
    assert opt.param_groups[0]["nesterov"] and opt.param_groups[0]["momentum"] == 0.9
    assert recipe["loss"].label_smoothing == 0.2
    sched = recipe["callbacks"][0].schedule
    assert isinstance(sched, mdl.optim.CosineAnnealingLR) and sched.T_max == 30
    x = np.random.default_rng(0).random((4, 1, 8, 8)).astype(np.float32)
    assert recipe["transform"](x, np.random.default_rng(0)).shape == x.shape


def test_cli_trains_the_best_model(tmp_path):
    out = tmp_path / "best"
    assert cli.main(["train", "--model", "best", "--epochs", "1", "--quiet", "--out", str(out)]) == 0
    record = json.loads((out / "history.json").read_text())
    assert record["config"]["model"] == "best" and record["config"]["epochs"] == 1
    loaded = mdl.load(out / "model.npz")
    assert isinstance(loaded[1], layers.BatchNorm2D)
    assert not np.allclose(loaded[1].running_var, 1.0)  # the trained running statistics came back


def test_cli_default_is_still_the_reference_model(tmp_path):
    out = tmp_path / "ref"
    assert cli.main(["train", "--epochs", "1", "--quiet", "--out", str(out)]) == 0
    record = json.loads((out / "history.json").read_text())
    assert record["config"]["model"] == "reference" and record["config"]["epochs"] == 1


@pytest.mark.slow
def test_best_model_reaches_99_4_percent_on_seed_0(tmp_path):
    assert cli.main(["train", "--model", "best", "--seed", "0", "--quiet", "--out", str(tmp_path)]) == 0
    accuracy = json.loads((tmp_path / "history.json").read_text())["test"]["accuracy"]
    assert accuracy >= 0.994, accuracy
