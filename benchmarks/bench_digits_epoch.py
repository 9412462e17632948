"""Seconds per epoch of the reference digits CNN: minidl vs PyTorch, in one run.

Same architecture (Conv 1->16 k3 same, ReLU, MaxPool 2, Conv 16->32 k3 same,
ReLU, MaxPool 2, Flatten, Dense 128->10), same data (scikit-learn digits,
80/20 split), batch size, optimizer (SGD lr 0.05, momentum 0.9) and
shuffling. Epochs of the two alternate (interleaved), so that both see the
same machine load. Prints the median seconds per training epoch of each, the
median of the per-round ratios, and the machine's numpy float32 GEMM rate
measured in the same run together with the fraction of it minidl achieves, so
that numbers from different machines can be compared.

Usage:  python benchmarks/bench_digits_epoch.py [--epochs 9] [--batch-size 32]
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


def minidl_epoch_fn(X, y, batch_size, seed):
    model = mdl.models.reference_cnn(rng=np.random.default_rng(seed))
    trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(),
                          mdl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))

    def epoch_fn(epoch):
        trainer.fit(X, y, epochs=1, batch_size=batch_size, seed=seed + epoch, progress=False)

    return model, epoch_fn


def torch_epoch_fn(X, y, batch_size, seed):
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

    return f"torch {torch.__version__} ({torch.get_num_threads()} threads)", epoch_fn


def training_flops_per_sample(model, sample_shape) -> int:
    """GEMM FLOPs of one training step per sample: forward, dW and dX of every
    Conv2D/Dense, except dX of the first layer (never computed, as in PyTorch)."""
    x = np.zeros((1, *sample_shape), np.float32)
    macs = 0
    for i, layer in enumerate(model):
        out = layer.forward(x)
        if isinstance(layer, mdl.layers.Conv2D):
            kh, kw = layer.kernel_size
            fwd = out[0].size * layer.in_channels * kh * kw
        elif isinstance(layer, mdl.layers.Dense):
            fwd = layer.in_features * layer.out_features
        else:
            fwd = 0
        macs += fwd * (2 if i == 0 else 3)
        x = out
    return 2 * macs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=9, help="epochs timed per framework (after one warm-up)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    (X, y), _ = mdl.data.load_digits()
    gflops_default = gemm_gflops()
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        gflops_one = gemm_gflops()
    model, ours_fn = minidl_epoch_fn(X, y, args.batch_size, args.seed)
    try:
        label, theirs_fn = torch_epoch_fn(X, y, args.batch_size, args.seed)
    except ImportError:
        label, theirs_fn = None, None
    ours_fn(10**6)  # warm-up (an epoch seed not used below)
    if theirs_fn:
        theirs_fn(10**6)
    # Interleaved, alternating which goes first, so that both see the same
    # machine conditions; the ratio is the median of the per-round ratios.
    ours, theirs = [], []
    for epoch in range(args.epochs):
        first_ours = epoch % 2 == 0
        if first_ours or not theirs_fn:
            ours.append(_timed(lambda: ours_fn(epoch)))
        if theirs_fn:
            theirs.append(_timed(lambda: theirs_fn(epoch)))
        if not first_ours and theirs_fn:
            ours.append(_timed(lambda: ours_fn(epoch)))
    ours_s = statistics.median(ours)
    flops = training_flops_per_sample(model, X.shape[1:]) * len(X)
    rate = flops / ours_s / 1e9
    print(f"numpy {np.__version__} float32 GEMM 1024^3: {gflops_default:.1f} GFLOP/s "
          f"(default threads), {gflops_one:.1f} GFLOP/s (1 thread)")
    print(f"reference CNN, {len(X)} samples, batch {args.batch_size}, "
          f"median of {len(ours)} interleaved epochs")
    print(f"minidl {mdl.__version__}: {ours_s:.4f} s/epoch; {flops / 1e9:.2f} GFLOP of GEMM per epoch "
          f"-> {rate:.1f} GFLOP/s = {rate / gflops_one:.0%} of the 1-thread GEMM rate "
          f"(compared with the 1-thread GEMM rate)")
    if not theirs_fn:
        print("torch not installed: no ratio (pip install torch==2.13.0)")
        return
    theirs_s = statistics.median(theirs)
    ratios = [a / b for a, b in zip(ours, theirs)]
    print(f"{label}: {theirs_s:.4f} s/epoch")
    print(f"ratio minidl / torch: {statistics.median(ratios):.2f}x  "
          f"(per-round range {min(ratios):.2f}-{max(ratios):.2f}; target <= 1.0x)")


if __name__ == "__main__":
    main()
