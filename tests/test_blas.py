"""minidl.functional._engine.blas helpers: the bias add and the column sums equal numpy's plain forms."""

import threading
import warnings

import numpy as np
import pytest

from minidl.functional._engine import blas


@pytest.mark.parametrize("shape", [(37, 16), (3, 5, 7), (2, 8, 8, 16), (0, 4, 4, 32), (1, 300), (5, 1),
                                   (300, 16, 16), (4099, 17), (1, 70000)])
def test_add_row_vector_equals_broadcast_add(shape):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape).astype(np.float32)
    v = rng.standard_normal(shape[-1]).astype(np.float32)
    expected = a + v
    assert blas.add_row_vector(a, v) is a
    np.testing.assert_array_equal(a, expected)


@pytest.mark.parametrize("shape", [(2048, 16), (0, 3), (7, 1)])
def test_column_sums_equal_sum_over_rows(shape):
    a = np.random.default_rng(1).standard_normal(shape)
    np.testing.assert_allclose(blas.column_sums(a), a.sum(axis=0), rtol=1e-12, atol=1e-12)


def test_the_blas_libraries_are_looked_for_once_not_on_every_fit(monkeypatch):
    """Finding the BLAS libraries reads the process's memory map (~2 ms): the Trainer's
    blas_threads ("auto" or a number) used to do it on every fit/evaluate/predict."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import minidl as mdl

    scans = []
    real = threadpoolctl.ThreadpoolController

    class Counting(real):
        def __init__(self):
            scans.append(1)
            super().__init__()

    monkeypatch.setattr(threadpoolctl, "ThreadpoolController", Counting)
    monkeypatch.setattr(threadpoolctl, "threadpool_limits", lambda *a, **k: (scans.append(1), real().limit(*a, **k))[1])
    blas.blas_libraries()  # whatever was found before the patch is found once more at most
    scans.clear()
    X = np.random.default_rng(0).random((8, 3), dtype=np.float32)
    y = np.arange(8) % 2
    for threads in ("auto", 1):
        model = mdl.Sequential(mdl.layers.Dense(3, 2, rng=0))
        trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(), mdl.optim.SGD(model.parameters(), lr=0.1),
                              blas_threads=threads)
        for _ in range(3):
            trainer.fit(X, y, epochs=1, batch_size=4, progress=False)
            trainer.evaluate(X, y)
    assert scans == []


def test_limit_threads_sets_and_restores_every_blas_library():
    libs = blas.blas_libraries()
    if not libs:
        pytest.skip("no BLAS library found by threadpoolctl")
    before = [lib.num_threads for lib in libs]
    with blas.limit_threads(1):
        assert [lib.num_threads for lib in libs] == [1] * len(libs)
    assert [lib.num_threads for lib in libs] == before
    with pytest.raises(KeyError), blas.limit_threads(1):
        raise KeyError("restored on an exception too")
    assert [lib.num_threads for lib in libs] == before


def _real_blas_with_threads():
    libs = blas.blas_libraries()
    if not libs or min(lib.num_threads for lib in libs) < 2:
        pytest.skip("needs a BLAS library running on 2 or more threads")
    return libs


def _fit_in_a_thread(blas_threads, seen):
    """A tiny fit in a new thread; ``seen`` gets BLAS's thread counts at its first batch."""
    import minidl as mdl

    class Probe(mdl.callbacks.Callback):
        def on_batch_begin(self, batch, logs=None):
            seen.setdefault("threads", [lib.num_threads for lib in blas.blas_libraries()])

    model = mdl.Sequential(mdl.layers.Dense(4, 2, rng=0))
    trainer = mdl.Trainer(model, mdl.losses.MSE(), mdl.optim.SGD(model.parameters(), lr=0.1),
                          blas_threads=blas_threads)
    X = np.ones((8, 4), np.float32)
    thread = threading.Thread(target=lambda: trainer.fit(X, X[:, :2], epochs=1, progress=False, callbacks=[Probe()]))
    thread.start()
    thread.join(60)


@pytest.mark.parametrize("main_threads", ["auto", 1])
def test_blas_threads_1_takes_effect_in_a_thread_after_a_fit_in_the_main_thread(main_threads):
    """threadpoolctl lets only the thread that set OpenBLAS's count change it until that thread lets
    go; minidl's blocks never did, so after one fit in the main thread, blas_threads=1 in a background
    thread was ignored (BLAS on 2 threads there: 3.3 s against 0.37 s)."""
    import minidl as mdl

    libs = _real_blas_with_threads()
    before = [lib.num_threads for lib in libs]
    model = mdl.Sequential(mdl.layers.Dense(4, 2, rng=0))
    mdl.Trainer(model, mdl.losses.MSE(), mdl.optim.SGD(model.parameters(), lr=0.1),
                blas_threads=main_threads).fit(np.ones((8, 4), np.float32), np.ones((8, 2), np.float32),
                                               epochs=1, progress=False)
    seen = {}
    _fit_in_a_thread(1, seen)
    assert seen["threads"] == [1] * len(libs)
    assert [lib.num_threads for lib in libs] == before


def test_limit_threads_warns_when_another_thread_holds_blas():
    """While the main thread is inside a block, another thread cannot change BLAS's threads: it is told
    so (RuntimeWarning) instead of silently running on more threads, and BLAS is left as the block set it."""
    libs = _real_blas_with_threads()
    before = [lib.num_threads for lib in libs]
    seen = {}

    def other():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with blas.limit_threads(1):
                seen["threads"] = [lib.num_threads for lib in libs]
        seen["warnings"] = [str(w.message) for w in caught if w.category is RuntimeWarning]

    with blas.limit_threads(before[0]):  # the main thread takes control of BLAS's count
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(60)
    if not hasattr(type(libs[0]), "clear_controlling_thread"):
        pytest.skip("this threadpoolctl lets any thread set BLAS's threads")
    assert seen["threads"] == before
    assert len(seen["warnings"]) == 1 and "another thread" in seen["warnings"][0]
    assert [lib.num_threads for lib in libs] == before
