"""Seconds per epoch of the reference digits CNN: minidl vs PyTorch, in one run.

Same architecture (Conv 1->16 k3 same, ReLU, MaxPool 2, Conv 16->32 k3 same,
ReLU, MaxPool 2, Flatten, Dense 128->10), same data (scikit-learn digits,
80/20 split), batch size, optimizer (SGD lr 0.05, momentum 0.9) and
shuffling. Prints the median seconds per training epoch of each, their ratio,
and the machine's numpy float32 GEMM rate measured in the same run, so that
numbers from different machines can be compared.

Usage:  python benchmarks/bench_digits_epoch.py [--epochs 7] [--batch-size 32]
Requires: pip install -e ".[torch]" (torch==2.13.0 on these machines).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import minidl as mdl


def gemm_gflops(n=1024, repeat=5) -> float:
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(repeat))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def minidl_epochs(X, y, epochs, batch_size, seed):
    model = mdl.models.reference_cnn(rng=np.random.default_rng(seed))
    trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(),
                          mdl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
    times = []
    for epoch in range(epochs):
        times.append(_timed(lambda: trainer.fit(X, y, epochs=1, batch_size=batch_size,
                                                seed=seed + epoch, progress=False)))
    return times


def torch_epochs(X, y, epochs, batch_size, seed):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding="same"), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding="same"), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    def epoch_fn(epoch):
        order = torch.from_numpy(np.random.default_rng(seed + epoch).permutation(len(X)))
        for start in range(0, len(X), batch_size):
            idx = order[start : start + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()

    times = []
    for epoch in range(epochs):
        times.append(_timed(lambda: epoch_fn(epoch)))
    return times, torch.__version__, torch.get_num_threads()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=7, help="epochs timed (the first is a warm-up)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    (X, y), _ = mdl.data.load_digits()
    gflops = gemm_gflops()
    ours = minidl_epochs(X, y, args.epochs, args.batch_size, args.seed)[1:]
    try:
        theirs, version, threads = torch_epochs(X, y, args.epochs, args.batch_size, args.seed)
        theirs = theirs[1:]
    except ImportError:
        theirs = None
    ours_s = statistics.median(ours)
    print(f"numpy {np.__version__} float32 GEMM 1024^3: {gflops:.1f} GFLOP/s")
    print(f"reference CNN, {len(X)} samples, batch {args.batch_size}, median of {len(ours)} epochs")
    print(f"minidl {mdl.__version__}: {ours_s:.4f} s/epoch")
    if theirs is None:
        print("torch not installed: no ratio (pip install torch==2.13.0)")
        return
    theirs_s = statistics.median(theirs)
    print(f"torch {version} ({threads} threads): {theirs_s:.4f} s/epoch")
    print(f"ratio minidl / torch: {ours_s / theirs_s:.2f}x  (target <= 1.0x)")


if __name__ == "__main__":
    main()
