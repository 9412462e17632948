"""Hostile Trainer checkpoints: every malformed entry of the trainer metadata gives a ValueError naming
the file (found by replacing each entry with wrong types and huge ints), and nothing changes."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import minidl as mdl
from minidl import io


def _trainer():
    model = mdl.Sequential(mdl.layers.Dense(4, 3, rng=0), mdl.layers.Dropout(0.2, rng=0))
    return mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(),
                       mdl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))


def _stop():
    return mdl.EarlyStopping(monitor="loss", patience=3)


X = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
Y = np.arange(20) % 3


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "run.npz"
    trainer = _trainer()
    trainer.fit(X, Y, epochs=2, seed=0, progress=False, callbacks=[_stop()])
    trainer.save_checkpoint(path)
    return io.read(path)


def _pair_path(obj, key, path=()):
    """The path to the value of the ``[key, value]`` pair of a flattened state dict."""
    if isinstance(obj, list) and len(obj) == 2 and obj[0] == key:
        return (*path, 1)
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        found = _pair_path(v, key, (*path, k))
        if found:
            return found
    return None


def _set(meta, path, value):
    for k in path[:-1]:
        meta = meta[k]
    meta[path[-1]] = value


HUGE = 10**400
MUTATIONS = [  # (entry, value, the error before the fix)
    (("history", "history", "loss", 0), HUGE, "OverflowError"),
    (("callbacks", 0), "x", "AttributeError"),
    (("callbacks", 0), [1], "AttributeError"),
    (("optimizer", "state"), {"__dict__": 5}, "TypeError"),
    (("optimizer", "state", "__dict__", 0), 1, "TypeError"),
    (("optimizer", "state", "__dict__", 0, 0), [], "TypeError"),
    (("optimizer", "state"), {"__array__": []}, "TypeError"),
    (("layer_rngs", "1", "state", "state"), -1, "OverflowError"),
    (("layer_rngs", "1", "uinteger"), HUGE, "OverflowError"),
    ("lr", HUGE, "OverflowError"),
]


@pytest.mark.parametrize("entry, value, before", MUTATIONS, ids=[f"{m[0]}={str(m[1])[:8]}" for m in MUTATIONS])
def test_a_malformed_entry_gives_a_value_error_naming_the_file_and_changes_nothing(saved, tmp_path, entry, value,
                                                                                   before, ceiling):
    meta = copy.deepcopy(saved.extra_meta)
    path = _pair_path(meta["trainer"]["optimizer"], entry) if isinstance(entry, str) else entry
    path = ("optimizer", *path) if isinstance(entry, str) else path
    _set(meta["trainer"], path, value)
    bad = tmp_path / "bad.npz"
    io.write(saved.model, bad, extra_meta=meta, extra_arrays=saved.extra_arrays)
    trainer = _trainer()
    weights = trainer.model.state_dict()
    with ceiling(), pytest.raises(ValueError, match=r"Trainer\.load_checkpoint\('.*bad\.npz'\)"):
        trainer.load_checkpoint(bad)
    for k, v in trainer.model.state_dict().items():
        np.testing.assert_array_equal(v, weights[k])
    assert trainer.epochs_done == 0 and trainer.history.epoch == []


def test_a_malformed_callback_state_is_refused_before_the_first_batch(saved, tmp_path):
    """A renamed key in EarlyStopping's saved state gave KeyError 'best_epoch' when fit resumed."""
    meta = copy.deepcopy(saved.extra_meta)
    _set(meta["trainer"], ("callbacks", *_pair_path(meta["trainer"]["callbacks"], "best_epoch")[:-1], 0), "renamed")
    meta["trainer"]["callbacks"] = [meta["trainer"]["callbacks"][0]]
    bad = tmp_path / "bad.npz"
    io.write(saved.model, bad, extra_meta=meta, extra_arrays=saved.extra_arrays)
    trainer = _trainer()
    trainer.load_checkpoint(bad)

    class Count(mdl.callbacks.Callback):
        batches = 0

        def on_batch_begin(self, batch, logs=None):
            Count.batches += 1

    with pytest.raises(ValueError, match="Trainer.fit: the checkpoint's state for EarlyStopping is malformed"):
        trainer.fit(X, Y, epochs=3, progress=False, callbacks=[_stop(), Count()])
    assert Count.batches == 0
    # the message's way out, resuming without that callback, still resumes: epoch 3 only (it trained
    # epochs 1 to 3 again from the loaded weights, in a History restarted at epoch 0)
    trainer.fit(X, Y, epochs=3, progress=False, callbacks=[Count()])
    assert trainer.history.epoch == [0, 1, 2] and Count.batches == 1
    assert trainer.history["loss"][:2] == saved.extra_meta["trainer"]["history"]["history"]["loss"]
