"""Batches split over threads (minidl.functional._engine.blas.map_batch) give the serial results.

Inside ``blas.auto_threads`` (the Trainer's default), convolutions with enough work split
their batch into one run of samples per thread. These tests force the split (threshold 0,
up to 3 threads) and compare every output and gradient with the unsplit computation.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import minidl as mdl
from minidl.functional import conv as fconv
from minidl.functional._engine import blas

pytest.importorskip("threadpoolctl")


@pytest.fixture
def split_everything(monkeypatch):
    """Every batch of at least 2 samples is split (into up to MAX_RUNS runs) over up to 3 threads."""
    monkeypatch.setattr(blas, "PARALLEL_MIN_FLOPS", 1e-3)
    monkeypatch.setattr(blas, "MAX_RUNS", 8)  # whatever the machine's cores

    def enter(threads=3):
        return blas.auto_threads(max_threads=threads)

    return enter


CONFIGS = [
    dict(c=3, o=4, k=3, stride=1, padding="same"),
    dict(c=2, o=6, k=3, stride=2, padding=1, dilation=2),
    dict(c=4, o=4, k=3, stride=1, padding=1, groups=2),
    dict(c=4, o=8, k=3, stride=1, padding=1, groups=4),  # depthwise, 2 outputs per channel
    dict(c=3, o=3, k=3, stride=1, padding=2, padding_mode="reflect"),
    dict(c=2, o=40, k=3, stride=1, padding="same"),  # dX by col2im (C_out >= 16 C_in)
    dict(c=2, o=3, k=2, stride=3, padding=0),  # the stride skips input rows
]


@pytest.mark.parametrize("n", [1, 2, 5, 7])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_split_conv_equals_serial(cfg, n, split_everything):
    rng = np.random.default_rng(n)
    cfg = dict(cfg)
    c, o, k = cfg.pop("c"), cfg.pop("o"), cfg.pop("k")
    groups = cfg.get("groups", 1)
    x = rng.standard_normal((n, c, 9, 10))
    w = rng.standard_normal((o, c // groups, k, k))
    b = rng.standard_normal(o)
    y = fconv.conv2d(x, w, b, **cfg)
    g = rng.standard_normal(y.shape)
    expected = [y, *fconv.conv2d_backward(x, w, g, **cfg)]
    with split_everything():
        got = [fconv.conv2d(x, w, b, **cfg), *fconv.conv2d_backward(x, w, g, **cfg)]
        dx_none = fconv.conv2d_backward(x, w, g, input_grad=False, **cfg)
    for name, e, a in zip(("y", "dx", "dw", "db"), expected, got):
        assert a.shape == e.shape and a.dtype == e.dtype, name
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12, err_msg=name)
    assert dx_none[0] is None
    np.testing.assert_allclose(dx_none[1], expected[2], rtol=1e-12, atol=1e-12)


def test_map_batch_splits_into_contiguous_runs_on_worker_threads(split_everything):
    def run(n0, n1):
        return n0, n1, threading.current_thread().name

    with split_everything(3):
        runs = blas.map_batch(run, 10, 1e12)  # MAX_RUNS (8) runs, in blocks of 2, 3, 3 over 3 threads
        assert [r[:2] for r in runs] == [(0, 1), (1, 2), (2, 3), (3, 5), (5, 6), (6, 7), (7, 8), (8, 10)]
        me = threading.current_thread().name
        assert [r[2] == me for r in runs] == [True] * 2 + [False] * 6  # the caller takes the first block
        assert len({r[2] for r in runs[2:5]}) == 1 and len({r[2] for r in runs[5:]}) == 1
        assert all(r[2].startswith("minidl") for r in runs[2:])
        assert [r[:2] for r in blas.map_batch(run, 2, 1e12)] == [(0, 1), (1, 2)]  # never more runs than samples
        # one run per PARALLEL_MIN_FLOPS of work
        assert blas.batch_runs(10, 3 * blas.PARALLEL_MIN_FLOPS) == 3
    # outside auto_threads: one run, on the calling thread
    assert blas.map_batch(run, 10, 1e12) == [(0, 10, threading.current_thread().name)]


def test_map_batch_below_threshold_is_one_run(monkeypatch):
    monkeypatch.setattr(blas, "MAX_RUNS", 8)
    with blas.auto_threads(max_threads=2):
        assert blas.map_batch(lambda a, b: (a, b), 8, 2 * blas.PARALLEL_MIN_FLOPS - 1) == [(0, 8)]
        assert blas.batch_runs(8, 2 * blas.PARALLEL_MIN_FLOPS) == 2


def test_runs_do_not_depend_on_the_number_of_threads(monkeypatch):
    """The runs are set by the work, not the threads: on 1, 2 or 3 threads, the weight
    gradient (a sum over the runs) is the same bit for bit."""
    monkeypatch.setattr(blas, "MAX_RUNS", 4)  # as on a 4-core machine
    monkeypatch.setattr(blas, "PARALLEL_MIN_FLOPS", 16e6)  # a smaller batch than a real one suffices
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 16, 16, 16)).astype(np.float32)
    w = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    g = rng.standard_normal((32, 32, 16, 16)).astype(np.float32)
    results = []
    for threads in (1, 2, 3):
        with blas.auto_threads(max_threads=threads):
            assert blas.batch_runs(32, 2.0 * g.size * 144) == 4  # dW alone: 75 MFLOP, 4 runs
            results.append(fconv.conv2d_backward(x, w, g, padding=1))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_an_error_in_a_run_propagates_and_closes_the_region(split_everything):
    def run(n0, n1):
        if n0 > 0:
            raise ValueError(f"run {n0}:{n1} failed")
        return n0

    with split_everything(2):
        with pytest.raises(ValueError, match="run 2:4 failed"):
            blas.map_batch(run, 4, 2 * blas.PARALLEL_MIN_FLOPS)
        assert blas.batch_runs(4, 1e12) == 4  # the region closed: later batches split again


def test_no_nested_split(split_everything):
    with split_everything(2):
        inner = blas.map_batch(lambda a, b: blas.map_batch(lambda c, d: (c, d), 6, 1e12), 2, 1e12)
    assert inner == [[(0, 6)], [(0, 6)]]


def test_training_with_split_batches_matches_one_thread(split_everything):
    """A float64 model trained two epochs by the Trainer with its default blas_threads='auto'
    (batches split over threads) ends with the weights of blas_threads=1 (no split)."""
    (X, y), _ = mdl.data.load_digits()
    X, y = X[:200].astype(np.float64), y[:200]
    weights = []
    for threads in ("auto", 1):
        model = mdl.models.reference_cnn(np.random.default_rng(0), dtype=np.float64)
        trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(),
                              mdl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), blas_threads=threads)
        if threads == "auto":  # inside an outer block, whose 2 threads rule: every batch splits
            with split_everything(2):
                trainer.fit(X, y, epochs=2, batch_size=32, seed=0, progress=False)
        else:
            assert blas.batch_runs(64, 1e12) == 1
            trainer.fit(X, y, epochs=2, batch_size=32, seed=0, progress=False)
        weights.append(model.state_dict())
    for key in weights[0]:
        np.testing.assert_allclose(weights[0][key], weights[1][key], rtol=1e-10, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("n", [1, 2, 7])
def test_split_dense_equals_serial(n, split_everything):
    from minidl.functional import dense as fdense

    rng = np.random.default_rng(n)
    x, w, b = rng.standard_normal((n, 6)), rng.standard_normal((4, 6)), rng.standard_normal(4)
    g = rng.standard_normal((n, 4))
    expected = [fdense.linear(x, w, b), fdense.linear_input(g, w), fdense.linear_weight(x, g)]
    with split_everything():
        got = [fdense.linear(x, w, b), fdense.linear_input(g, w), fdense.linear_weight(x, g)]
    for name, e, a in zip(("y", "dx", "dw"), expected, got):
        assert a.shape == e.shape and a.dtype == e.dtype, name
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("pool", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                  dict(kernel_size=2, stride=1, dilation=2, ceil_mode=True)],
                         ids=["k2", "k3s2p1", "overlap-dilated"])
def test_split_max_pool_and_relu_equal_serial(pool, channels_last, split_everything):
    from minidl.functional import activation
    from minidl.functional import pool as fpool

    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3, 9, 8))
    x[0, 0, 0, :2] = np.nan  # the NaN rule holds in every run
    if channels_last:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    y, idx = fpool.max_pool2d(x, return_indices=True, **pool)
    g = rng.standard_normal(y.shape)
    gx = rng.standard_normal(x.shape)
    expected = [y, idx, fpool.max_pool2d_backward(x.shape, g, idx, **pool), activation.relu(x),
                activation.relu_backward(gx, x)]
    with split_everything():
        y2, idx2 = fpool.max_pool2d(x, return_indices=True, **pool)
        got = [y2, idx2, fpool.max_pool2d_backward(x.shape, g, idx2, **pool), activation.relu(x),
               activation.relu_backward(gx, x)]
    for name, e, a in zip(("y", "idx", "dx", "relu", "relu_backward"), expected, got):
        assert a.shape == e.shape and a.dtype == e.dtype and a.strides == e.strides, name
        np.testing.assert_array_equal(a, e, err_msg=name)


def _split_conv_sum(queue):
    x, w = np.ones((8, 4, 16, 16)), np.ones((8, 4, 3, 3))
    with blas.auto_threads(max_threads=2):
        queue.put(float(fconv.conv2d(x, w, padding=1).sum()))


def test_a_forked_process_splits_batches_too(split_everything):
    """A child forked after the worker threads exist inherits the executor but not its
    threads: it must start its own (before the fix, the child waited forever)."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs the fork start method")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    _split_conv_sum(queue)  # the parent's worker threads exist from here on
    expected = queue.get(timeout=10)
    child = ctx.Process(target=_split_conv_sum, args=(queue,))
    child.start()
    child.join(20)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive, "the forked child hung in map_batch"
    assert queue.get(timeout=5) == expected


def test_no_nested_split_on_one_thread_either(split_everything):
    """Runs computed one after another (one thread) must not split further either: the split,
    and every sum over it, must not depend on the number of threads."""
    with split_everything(1):
        inner = blas.map_batch(lambda a, b: blas.map_batch(lambda c, d: (c, d), 6, 1e12), 2, 1e12)
    assert inner == [[(0, 6)], [(0, 6)]]


def test_concurrent_auto_threads_blocks_do_not_end_each_others_split(split_everything):
    """Two threads training at once: the first to leave its block used to end the split for
    both (and restore BLAS's threads under the other), so the second's sums changed order
    mid-run."""
    libs = blas.blas_libraries()
    before = [lib.num_threads for lib in libs]
    a_inside, b_left = threading.Event(), threading.Event()
    seen = {}

    def a():
        with split_everything(2):
            a_inside.set()
            b_left.wait(5)
            seen["a_runs"] = blas.batch_runs(8, 1e12)
            seen["depth"] = blas._BLAS["depth"]

    def b():
        a_inside.wait(5)
        with split_everything(2):
            pass
        b_left.set()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen["a_runs"] == 8  # still split after b left its block
    assert seen["depth"] == 1  # a's block still holds BLAS's setting (OpenBLAS reports its thread
    # count per calling thread once its pool runs, so the count itself is not read here)
    assert [lib.num_threads for lib in libs] == before  # restored once both left


def test_a_parallel_region_in_one_thread_does_not_change_another_threads_split(split_everything):
    """While one thread computes split runs, another thread's batches split as they would alone
    (the "inside a run" flag was process-wide)."""
    in_region, checked = threading.Event(), threading.Event()
    seen = {}

    def run(n0, n1):
        if n0 == 0:
            in_region.set()
            checked.wait(5)
        return n0

    def other():
        with split_everything(2):
            in_region.wait(5)
            seen["runs"] = blas.batch_runs(8, 1e12)
            checked.set()

    t = threading.Thread(target=other)
    t.start()
    with split_everything(2):
        blas.map_batch(run, 8, 1e12)
    t.join(10)
    assert seen["runs"] == 8


def test_a_thread_outside_auto_threads_is_not_split(split_everything):
    """Only the code inside the block (and its worker threads) splits batches."""
    inside, checked = threading.Event(), threading.Event()
    seen = {}

    def other():
        inside.wait(5)
        seen["runs"] = blas.batch_runs(8, 1e12)
        checked.set()

    t = threading.Thread(target=other)
    t.start()
    with split_everything(2):
        inside.set()
        checked.wait(5)
    t.join(10)
    assert seen["runs"] == 1


class _FakeBlas:
    """A BLAS library controller whose thread count is one number, whichever thread sets it
    (threadpoolctl ignores a set from another thread than the one that controls BLAS)."""

    def __init__(self, n):
        self.num_threads = n

    def set_num_threads(self, n):
        self.num_threads = n


def test_a_block_left_in_another_context_restores_blas_and_ends_the_split(split_everything, monkeypatch):
    """A generator that yields inside the block, started in one thread and finished in
    another: leaving the block raised ValueError (its context-variable token belonged to the
    first thread), BLAS stayed on one thread for good, and the first thread kept splitting."""
    libs = [_FakeBlas(4)]
    monkeypatch.setattr(blas, "blas_libraries", lambda: libs)
    before = [lib.num_threads for lib in libs]

    def steps():
        with split_everything(2):
            for _ in range(3):
                yield blas.batch_runs(8, 1e12)

    gen = steps()
    assert next(gen) == 8
    seen = {}

    def finish():
        try:
            seen["runs"] = list(gen)
        except Exception as exc:  # noqa: BLE001 - reported below
            seen["error"] = exc

    t = threading.Thread(target=finish)
    t.start()
    t.join(10)
    assert "error" not in seen, seen
    assert seen["runs"] == [1, 1]  # resumed in a thread outside the block: not split there
    assert blas._BLAS["depth"] == 0
    assert [lib.num_threads for lib in libs] == before
    assert blas.batch_runs(8, 1e12) == 1  # this thread left the block too


@pytest.mark.parametrize("bad,error", [("two", TypeError), (True, TypeError), (1.5, TypeError),
                                       (0, ValueError), (-2, ValueError)])
def test_a_bad_max_threads_changes_nothing(split_everything, monkeypatch, bad, error):
    libs = [_FakeBlas(4)]
    monkeypatch.setattr(blas, "blas_libraries", lambda: libs)
    before = [lib.num_threads for lib in libs]
    with pytest.raises(error, match="auto_threads.*max_threads"), blas.auto_threads(max_threads=bad):
        pass
    assert blas._BLAS["depth"] == 0  # was left at 1: BLAS on one thread for the process's life
    assert [lib.num_threads for lib in libs] == before
    with split_everything(2):
        assert blas.batch_runs(8, 1e12) == 8


def _enter_auto_threads(queue):
    with blas.auto_threads(max_threads=2):
        queue.put(blas.batch_runs(8, 1e12) >= 1)


def _start_workers(queue):
    queue.put(blas._executor(1) is not None)


@pytest.mark.parametrize("lock", ["blas", "pool"])
def test_a_child_forked_while_another_thread_holds_a_lock_does_not_hang(lock):
    """fork copies a lock held by another thread as held, and that thread does not exist in
    the child: the child's first auto_threads / map_batch waited forever."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs the fork start method")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    held = blas._BLAS["lock"] if lock == "blas" else blas._POOL["lock"]
    locked, release = threading.Event(), threading.Event()

    def hold():
        with held:
            locked.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    locked.wait(5)
    try:
        child = ctx.Process(target=_enter_auto_threads if lock == "blas" else _start_workers, args=(queue,))
        child.start()
        child.join(20)
        alive = child.is_alive()
        if alive:
            child.kill()
    finally:
        release.set()
        holder.join(10)
    assert not alive, f"the forked child hung on the {lock} lock"
    assert queue.get(timeout=5) is not None


@pytest.mark.parametrize("bad,error", [("2", TypeError), (0, ValueError)])
def test_limit_threads_refuses_a_bad_count_before_touching_blas(monkeypatch, bad, error):
    libs = [_FakeBlas(4)]
    monkeypatch.setattr(blas, "blas_libraries", lambda: libs)
    with pytest.raises(error, match="limit_threads.*n"), blas.limit_threads(bad):
        pass
    assert libs[0].num_threads == 4


class _DeafBlas(_FakeBlas):
    """A BLAS that ignores set_num_threads, as threadpoolctl (3.8) does when a thread other than the
    one controlling it asks while that thread is inside a block (measured: 2 threads kept)."""

    def set_num_threads(self, n):
        pass


def test_when_blas_keeps_its_threads_the_runs_stay_on_the_calling_thread(split_everything, monkeypatch):
    """Split batches on worker threads while BLAS still runs its own threads was the slowest
    combination measured (52 against 31 ms per MNIST-shaped step): the same runs are then
    computed one after another on the calling thread, so the results do not change."""
    monkeypatch.setattr(blas, "blas_libraries", lambda: [_DeafBlas(2)])
    where = []

    def run(n0, n1):
        where.append(threading.get_ident())
        return n0

    with split_everything(2):
        assert blas.batch_runs(8, 1e12) == 8  # the same runs
        assert blas.map_batch(run, 8, 1e12) == [0, 1, 2, 3, 4, 5, 6, 7]
    assert set(where) == {threading.get_ident()}
