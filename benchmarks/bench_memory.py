"""Peak memory of minidl's large-tensor paths, against the sizes of the tensors involved.

Four cases, each run in a fresh Python process so that its peak RSS
(``resource.getrusage(...).ru_maxrss``) belongs to that case alone:

1. ``conv``: ONE sample ``(1, 128, 1024, 1024)`` float32 (512 MiB) through
   ``Conv2D(128, 16, 3, padding=1)``, forward in eval mode. Its unfolded input
   (im2col columns) would be 4.5 GiB; ``MAX_COLUMN_BYTES`` (4 MiB) must hold,
   so the sample is split over output rows.
2. ``maxpool``: ``MaxPool2D(5, 1, 2)`` on a 256 MiB float32 input, forward in
   training mode (output + uint8 argmax), then backward. A copy of the input
   per kernel offset would be 25 x 256 MiB.
3. ``predict20``: a model of 20 ``Conv2D(16, 16, 3, padding=1)`` + ReLU layers;
   what stays allocated after ``Trainer.predict`` (eval mode keeps no caches).
4. ``mnist``: ``Trainer.predict`` over 60,000 synthetic MNIST-shaped images
   (1x28x28 float32) through the MNIST CNN (Conv 1->32 k5 same, ReLU,
   MaxPool 2, Conv 32->64 k5 same, ReLU, MaxPool 2, Flatten, Dense 3136->128,
   ReLU, Dense 128->10); peak RSS of the whole process, target < 1 GiB.

For 1-3 the tracemalloc peak is measured around the call (numpy reports its
allocations to tracemalloc), i.e. what the call allocated on top of its inputs.

Usage:  python benchmarks/bench_memory.py [case ...]   (default: all four; 40-60 s, most of it mnist)
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np

MIB = 2**20


def _rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _traced(fn):
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, (peak - base) / MIB, (current - base) / MIB, seconds


def case_conv() -> dict:
    import minidl as mdl

    x = np.random.default_rng(0).standard_normal((1, 128, 1024, 1024), dtype=np.float32)
    conv = mdl.layers.Conv2D(128, 16, 3, padding=1, rng=0).eval()
    rss_before = _rss_mib()
    y, peak, _, seconds = _traced(lambda: conv(x))
    columns = 1024 * 1024 * 128 * 9 * 4 / MIB
    cap = mdl.functional.MAX_COLUMN_BYTES / MIB
    return dict(case="conv", what="Conv2D(128, 16, 3, padding=1), one (1, 128, 1024, 1024) sample",
                input_mib=x.nbytes / MIB, output_mib=y.nbytes / MIB, columns_if_unsplit_mib=columns,
                cap_mib=cap, tracemalloc_peak_mib=peak,
                peak_over_output_plus_cap=peak / (y.nbytes / MIB + cap),
                rss_before_mib=rss_before, peak_rss_mib=_rss_mib(), seconds=seconds)


def case_maxpool() -> dict:
    import minidl as mdl

    x = np.random.default_rng(0).standard_normal((8, 32, 512, 512), dtype=np.float32)
    F = mdl.functional
    rss_before = _rss_mib()
    (y, idx), fwd_peak, held, fwd_s = _traced(lambda: F.max_pool2d(x, 5, 1, 2, return_indices=True))
    _, bwd_peak, _, bwd_s = _traced(lambda: F.max_pool2d_backward(x.shape, y, idx, 5, 1, 2))
    return dict(case="maxpool", what="MaxPool2D(5, 1, 2) on (8, 32, 512, 512) float32 "
                "(max_pool2d with indices, then max_pool2d_backward)",
                input_mib=x.nbytes / MIB, output_mib=y.nbytes / MIB, argmax_mib=idx.nbytes / MIB,
                argmax_dtype=str(idx.dtype),
                forward_tracemalloc_peak_mib=fwd_peak, forward_peak_over_input=fwd_peak * MIB / x.nbytes,
                held_after_forward_mib=held,
                backward_tracemalloc_peak_mib=bwd_peak, backward_peak_over_input=bwd_peak * MIB / x.nbytes,
                copy_per_offset_would_be_mib=25 * x.nbytes / MIB,
                rss_before_mib=rss_before, peak_rss_mib=_rss_mib(), seconds=fwd_s + bwd_s)


def case_predict20() -> dict:
    import minidl as mdl
    from minidl import layers as L

    rng = np.random.default_rng(0)
    stack = []
    for _ in range(20):
        stack += [L.Conv2D(16, 16, 3, padding=1, rng=rng), L.ReLU()]
    model = mdl.Sequential(*stack, L.Flatten(), L.Dense(16 * 32 * 32, 10, rng=rng))
    trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(),
                          mdl.optim.SGD(model.parameters(), lr=0.01))
    X = rng.standard_normal((1024, 16, 32, 32), dtype=np.float32)
    batch = 256
    activation = batch * 16 * 32 * 32 * 4 / MIB
    out, peak, held, seconds = _traced(lambda: trainer.predict(X, batch_size=batch))
    held -= out.nbytes / MIB  # the returned predictions are the caller's
    return dict(case="predict20", what="20 x (Conv2D(16, 16, 3, padding=1), ReLU), predict 1024 "
                "samples (1, 16, 32, 32) in batches of 256",
                input_mib=X.nbytes / MIB, one_activation_mib=activation,
                held_after_predict_mib=held, predict_tracemalloc_peak_mib=peak,
                peak_over_one_activation=peak / activation,
                peak_rss_mib=_rss_mib(), seconds=seconds)


def case_mnist() -> dict:
    import minidl as mdl
    from minidl import layers as L

    rng = np.random.default_rng(0)
    model = mdl.Sequential(
        L.Conv2D(1, 32, 5, padding="same", rng=rng), L.ReLU(), L.MaxPool2D(2),
        L.Conv2D(32, 64, 5, padding="same", rng=rng), L.ReLU(), L.MaxPool2D(2),
        L.Flatten(), L.Dense(3136, 128, rng=rng), L.ReLU(), L.Dense(128, 10, rng=rng))
    trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(),
                          mdl.optim.SGD(model.parameters(), lr=0.01))
    X = rng.random((60000, 1, 28, 28), dtype=np.float32)
    rss_before = _rss_mib()
    start = time.perf_counter()
    out = trainer.predict(X)
    seconds = time.perf_counter() - start
    peak = _rss_mib()
    return dict(case="mnist", what="Trainer.predict, 60,000 x (1, 28, 28) float32, MNIST CNN, "
                "default batch_size=256", input_mib=X.nbytes / MIB, output_shape=list(out.shape),
                rss_before_predict_mib=rss_before, peak_rss_mib=peak,
                under_1_gib=peak < 1024, seconds=seconds)


CASES = {"conv": case_conv, "maxpool": case_maxpool, "predict20": case_predict20, "mnist": case_mnist}


def main(argv) -> int:
    if len(argv) == 2 and argv[0] == "--child":
        print(json.dumps(CASES[argv[1]]()))
        return 0
    names = argv or list(CASES)
    for name in names:
        proc = subprocess.run([sys.executable, __file__, "--child", name],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(f"{name}: FAILED\n{proc.stderr}")
            return 1
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"== {result.pop('case')}: {result.pop('what')}")
        for key, value in result.items():
            shown = f"{value:.2f}" if isinstance(value, float) else value
            print(f"   {key:32s} {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
