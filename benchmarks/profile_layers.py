"""Per-layer forward/backward time of the reference digits CNN for one batch.

Complements bench_digits_epoch.py: it shows where a training step spends its
time (microseconds per call, median of repeats), without PyTorch.

Usage:  python benchmarks/profile_layers.py [--batch-size 32] [--repeat 300]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import minidl as mdl


def _median_us(fn, repeat: int) -> float:
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    model = mdl.models.reference_cnn(rng=rng)
    x = rng.random((args.batch_size, 1, 8, 8), dtype=np.float32)
    y = rng.integers(0, 10, args.batch_size)
    loss = mdl.losses.SoftmaxCrossEntropy()
    opt = mdl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def step():
        out = model.forward(x)
        loss.forward(out, y)
        opt.zero_grad()
        model.backward_params(loss.backward())  # as Trainer.fit does
        opt.step()

    print(f"batch {args.batch_size}: one training step {_median_us(step, args.repeat):8.1f} us")
    act = x
    for name, (layer, _) in model.nodes.items():
        out = layer.forward(act)
        grad = np.ones_like(out)
        fwd = _median_us(lambda: layer.forward(act), args.repeat)
        bwd = _median_us(lambda: layer.backward(grad), args.repeat)
        print(f"  {name:>2} {type(layer).__name__:<10} forward {fwd:8.1f} us   backward {bwd:8.1f} us")
        act = layer.forward(act)
    logits = act
    loss_us = _median_us(lambda: (loss.forward(logits, y), loss.backward()), args.repeat)
    print(f"  loss forward+backward {loss_us:8.1f} us")
    print(f"  SGD zero_grad+step    {_median_us(lambda: (opt.zero_grad(), opt.step()), args.repeat):8.1f} us")


if __name__ == "__main__":
    main()
