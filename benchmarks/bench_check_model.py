"""Seconds of ``mdl.check_model`` on the built-in models, and what that is in training steps.

The bar of issue 20: ``digits_best`` with a batch of 32 under 10 s on 2 cores, ``mnist_cnn`` with a
batch of 16 under 30 s. Each is timed in this process (median of ``--repeat`` runs) together with one
training step of the same model on the same batch (forward, loss, backward, SGD), so the printed
ratio -- check_model / training step -- does not depend on how busy the machine is.

Usage:  python benchmarks/bench_check_model.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import minidl as mdl


def _median_seconds(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _step(model, x, y):
    loss = mdl.losses.SoftmaxCrossEntropy()
    opt = mdl.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def run():
        model.zero_grad()
        loss(model(x), y)
        model.backward(loss.backward())
        opt.step()
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    (X, y), _ = mdl.data.load_digits(test_size=0.2, seed=0)
    cases = [("digits_best", mdl.models.digits_best(0), X[:32], y[:32], 10.0),
             ("mnist_cnn", mdl.models.mnist_cnn(0), rng.random((16, 1, 28, 28), np.float32),
              rng.integers(0, 10, 16), 30.0)]
    print(f"{'model':<12} {'batch':>5} {'check_model s':>14} {'train step s':>13} {'ratio':>8}  bar")
    for name, model, x, labels, bar in cases:
        check = _median_seconds(lambda: mdl.check_model(model, x, labels, mdl.losses.SoftmaxCrossEntropy()),
                                args.repeat)
        step = _median_seconds(_step(model, x, labels), max(5, args.repeat))
        verdict = "ok" if check < bar else "MISS"
        print(f"{name:<12} {len(x):>5} {check:>14.2f} {step:>13.4f} {check / step:>7.0f}x  < {bar:.0f} s: {verdict}")


if __name__ == "__main__":
    main()
