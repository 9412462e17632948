"""minidl.set_num_threads / get_num_threads: the one thread setting, read by Trainer(blas_threads="auto").

The Trainer's split is observed through the engine: ``blas.map_batch`` is wrapped so that every run
of samples notes the thread it was computed on (no timing).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import minidl as mdl
from minidl.functional._engine import blas

threadpoolctl = pytest.importorskip("threadpoolctl")


@pytest.fixture(autouse=True)
def default_setting():
    """Every test starts and ends with the default (BLAS's own thread count)."""
    mdl.set_num_threads(None)
    yield
    mdl.set_num_threads(None)


def test_set_get_round_trip_and_default():
    default = mdl.get_num_threads()
    assert default == max([lib.num_threads for lib in blas.blas_libraries()], default=1)
    for n in (1, 2, 5, np.int64(3)):
        mdl.set_num_threads(n)
        assert mdl.get_num_threads() == n and type(mdl.get_num_threads()) is int
    mdl.set_num_threads(None)
    assert mdl.get_num_threads() == default


def test_restoring_a_value_read_before():
    old = mdl.get_num_threads()
    mdl.set_num_threads(1)
    mdl.set_num_threads(old)
    assert mdl.get_num_threads() == old


def test_the_default_follows_blas_and_is_not_blas_one_thread_inside_a_block():
    """Unset, the setting is BLAS's own count: an outer threadpool_limits lowers it; inside the
    Trainer's block (BLAS on one thread) it is still the count BLAS had before."""
    if not blas.blas_libraries():
        pytest.skip("no BLAS library visible to threadpoolctl")
    default = mdl.get_num_threads()
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        assert mdl.get_num_threads() == 1
    with blas.auto_threads():
        assert [lib.num_threads for lib in blas.blas_libraries()] == [1] * len(blas.blas_libraries())
        assert mdl.get_num_threads() == default


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-2, ValueError), (1.5, TypeError), (2.0, TypeError),
                                        (True, TypeError), ("2", TypeError)])
def test_bad_values_are_refused_and_change_nothing(bad, error):
    mdl.set_num_threads(3)
    with pytest.raises(error, match=r"^minidl\.set_num_threads: n must be .*None for the default.*Received: n="):
        mdl.set_num_threads(bad)
    assert mdl.get_num_threads() == 3


def _large_dense_task():
    """A model whose first Dense has 51 MFLOP per batch of 64 (3 runs of 16 MFLOP), and its data."""
    rng = np.random.default_rng(0)
    model = mdl.Sequential(mdl.layers.Dense(3136, 128, rng=rng), mdl.layers.ReLU(), mdl.layers.Dense(128, 10, rng=rng))
    X = rng.standard_normal((128, 3136), dtype=np.float32)
    return model, X, rng.integers(0, 10, 128)


@pytest.fixture
def runs_seen(monkeypatch):
    """Wrap blas.map_batch: a list of (run count of the call, thread idents of its runs), one per call."""
    monkeypatch.setattr(blas, "MAX_RUNS", 8)  # whatever the machine's cores: the batch has 3 runs
    seen, real = [], blas.map_batch

    def spy(fn, n, flops):
        idents = []

        def run(n0, n1):
            idents.append(threading.get_ident())
            return fn(n0, n1)

        result = real(run, n, flops)
        seen.append((len(idents), set(idents)))
        return result

    monkeypatch.setattr(blas, "map_batch", spy)
    return seen


def _fit(blas_threads="auto"):
    model, X, y = _large_dense_task()
    trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(), mdl.optim.SGD(model.parameters(), lr=0.01),
                          blas_threads=blas_threads)
    trainer.fit(X, y, epochs=1, batch_size=64, seed=0, progress=False)
    trainer.predict(X, batch_size=64)
    return model


def test_one_thread_keeps_every_run_of_fit_on_the_calling_thread(runs_seen):
    mdl.set_num_threads(1)
    _fit()
    split = [idents for count, idents in runs_seen if count > 1]
    assert split  # the batches are still cut into the same runs...
    assert all(idents == {threading.get_ident()} for idents in split)  # ...computed here only


def test_two_threads_split_a_large_batch_of_fit_over_two_threads(runs_seen):
    mdl.set_num_threads(2)
    _fit()
    split = [idents for count, idents in runs_seen if count > 1]
    assert split and all(len(idents) == 2 and threading.get_ident() in idents for idents in split)


def test_an_int_blas_threads_does_not_read_the_setting(runs_seen):
    """Trainer(blas_threads=1) fixes BLAS's threads and splits nothing, whatever the setting."""
    mdl.set_num_threads(2)
    _fit(blas_threads=1)
    assert runs_seen and all(count == 1 for count, _ in runs_seen)


def test_results_with_one_and_two_threads_are_equal_bit_for_bit(runs_seen):
    weights = []
    for n in (1, 2, None):  # None: the default
        mdl.set_num_threads(n)
        weights.append(_fit().state_dict())
    for key in weights[0]:
        np.testing.assert_array_equal(weights[0][key], weights[1][key], err_msg=key)
        np.testing.assert_array_equal(weights[0][key], weights[2][key], err_msg=key)
