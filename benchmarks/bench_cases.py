"""The cases of ``benchmarks/run.py`` and the worker process that times them.

One worker process per framework (``python benchmarks/run.py --worker minidl``
or ``--worker torch``) reads one JSON command a line on stdin and answers one
JSON line on stdout, so that ``run.py`` can interleave the two frameworks
round by round while each keeps its own thread pools in its own process. The
``predict`` case runs in a fresh process per framework instead (``--predict``),
so that its peak resident memory (``ru_maxrss``) belongs to it alone.

Every case is described once, framework-independently (``CASES``), and built
by ``build_minidl`` / ``build_torch``; ``gemm_triples`` lists the GEMMs that
the same work would need at minimum (forward, dW and dX of every Conv2D and
Dense, as (M, K, N) products), which the minidl worker times with plain
``numpy.matmul`` in the same run to give the machine's GEMM rate at matching
sizes.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import time

import numpy as np

# Layer specs: ("conv", cin, cout, k, stride, padding[, groups]), ("relu",), ("pool", k), ("flatten",),
# ("dense", fin, fout), ("bn", channels), ("dropout", p)
DIGITS = [("conv", 1, 16, 3, 1, "same"), ("relu",), ("pool", 2), ("conv", 16, 32, 3, 1, "same"), ("relu",),
          ("pool", 2), ("flatten",), ("dense", 128, 10)]
MNIST = [("conv", 1, 32, 5, 1, "same"), ("relu",), ("pool", 2), ("conv", 32, 64, 5, 1, "same"), ("relu",),
         ("pool", 2), ("flatten",), ("dense", 3136, 128), ("relu",), ("dense", 128, 10)]
# CIFAR-shaped: 'same' padding throughout (32 -> 32 -> 32 -> pool 16 -> 16 -> pool 8), Dense 64*8*8 -> 10.
CIFAR = [("conv", 3, 32, 3, 1, "same"), ("relu",), ("conv", 32, 32, 3, 1, "same"), ("relu",), ("pool", 2),
         ("conv", 32, 64, 3, 1, "same"), ("relu",), ("pool", 2), ("flatten",), ("dense", 64 * 8 * 8, 10)]


# the best digits model (minidl.models.digits_best, width 32)
BEST = [("conv", 1, 32, 3, 1, "same"), ("bn", 32), ("relu",), ("conv", 32, 32, 3, 1, "same"), ("bn", 32),
        ("relu",), ("pool", 2), ("conv", 32, 64, 3, 1, "same"), ("bn", 64), ("relu",),
        ("conv", 64, 64, 3, 1, "same"), ("bn", 64), ("relu",), ("pool", 2), ("flatten",), ("dropout", 0.3),
        ("dense", 256, 10)]


def _conv(cin, cout, k, hw, stride=1, batch=64, groups=1):
    spec = ("conv", cin, cout, k, stride, "same") + ((groups,) if groups != 1 else ())
    return dict(kind="conv", spec=[spec], input=(cin, hw, hw), batch=batch)


def _groups(layer):
    return layer[6] if len(layer) > 6 else 1


# name -> description. kind: conv/dense/pool (one layer, forward + backward with dX, dW, db),
# epoch (one epoch through Trainer.fit / a plain torch loop), predict (fresh process, peak RSS).
CASES = {
    "conv_28x28_32_k5": dict(_conv(1, 32, 5, 28), title="conv 1x28x28 -> 32, k5 same, batch 64"),
    "conv_14x14_64_k5": dict(_conv(32, 64, 5, 14), title="conv 32x14x14 -> 64, k5 same, batch 64"),
    "conv_32x32_32_k3": dict(_conv(3, 32, 3, 32), title="conv 3x32x32 -> 32, k3 same, batch 64"),
    "conv_16x16_64_k3s2": dict(_conv(32, 64, 3, 16, stride=2),
                               title="conv 32x16x16 -> 64, k3 stride 2 same ((0,1),(0,1)), batch 64"),
    "conv_8x8_16": dict(_conv(1, 16, 3, 8), title="conv 1x8x8 -> 16, k3 same, batch 64"),
    "conv_8x8_32": dict(_conv(16, 32, 3, 8), title="conv 16x8x8 -> 32, k3 same, batch 64"),
    "conv_32x32_64_b128": dict(_conv(64, 64, 3, 32, batch=128), title="conv 64x32x32 -> 64, k3 same, batch 128"),
    "conv_16x16_64_g4": dict(_conv(32, 64, 3, 16, groups=4), title="conv 32x16x16 -> 64, k3 same, groups 4, batch 64"),
    "conv_16x16_64_depthwise": dict(_conv(64, 64, 3, 16, groups=64),
                                    title="depthwise conv 64x16x16, k3 same (groups 64), batch 64"),
    "maxpool_64x32x28x28": dict(kind="pool", spec=[("pool", 2)], input=(32, 28, 28), batch=64,
                                title="MaxPool 2 over (64, 32, 28, 28)"),
    "batchnorm_64x32x28x28": dict(kind="norm", spec=[("bn", 32)], input=(32, 28, 28), batch=64,
                                  title="BatchNorm2D over (64, 32, 28, 28), training mode"),
    "dense_3136_128": dict(kind="dense", spec=[("dense", 3136, 128)], input=(3136,), batch=64,
                           title="Dense 3136 -> 128, batch 64"),
    "digits_epoch": dict(kind="epoch", spec=DIGITS, input=(1, 8, 8), batch=32, lr=0.05, n=None, quick_n=None,
                         title="reference digits CNN, one epoch (1,437 images, batch 32)"),
    "digits_best_epoch": dict(kind="epoch", spec=BEST, input=(1, 8, 8), batch=32, lr=0.05, n=None, quick_n=None,
                              best=True, title="best digits CNN with its recipe (BatchNorm, Dropout, Nesterov "
                              "SGD, weight decay, label smoothing, shifts and rotations), one epoch"),
    "mnist_epoch": dict(kind="epoch", spec=MNIST, input=(1, 28, 28), batch=64, lr=0.01, n=6000, quick_n=320,
                        title="MNIST-shaped CNN, one epoch (6,000 synthetic 1x28x28, batch 64)"),
    "cifar_epoch": dict(kind="epoch", spec=CIFAR, input=(3, 32, 32), batch=128, lr=0.01, n=5000, quick_n=256,
                        title="CIFAR-shaped CNN ('same' padding), one epoch (5,000 synthetic 3x32x32, batch 128)"),
    "mnist_predict": dict(kind="predict", spec=MNIST, input=(1, 28, 28), batch=256, n=60000, quick_n=2000,
                          title="MNIST-shaped CNN, predict 60,000 synthetic 1x28x28 (batch 256)"),
}


def case_size(name, quick):
    """(number of samples, batch size) of an epoch/predict case."""
    c = CASES[name]
    n = c["quick_n"] if quick else c["n"]
    return n, c["batch"]


def gemm_triples(spec, input_shape, batch, training=True, first_dx=True):
    """The (M, K, N) GEMMs that ``spec`` needs for one batch.

    Forward ``(M, K) @ (K, N)``; for training also dW ``(N, M) @ (M, K)`` and
    dX ``(M, N) @ (N, K)`` (dX skipped for the first layer when ``first_dx`` is
    False, as in a training step, where nobody needs the gradient of the data).
    """
    shape, out, first = tuple(input_shape), [], True
    for layer in spec:
        if layer[0] == "conv":
            _, cin, cout, k, stride, _pad = layer[:6]
            h, w = (-(-s // stride) for s in shape[1:])  # 'same' (the only padding used here)
            groups = _groups(layer)  # one (M, K/g) @ (K/g, N/g) product per group, counted as one
            m, kk = batch * h * w * groups, cin // groups * k * k
            shape = (cout, h, w)
            cout //= groups
            out.append(("fwd", m, kk, cout))
        elif layer[0] == "dense":
            m, kk, cout = batch, layer[1], layer[2]
            shape = (cout,)
            out.append(("fwd", m, kk, cout))
        elif layer[0] == "pool":
            shape = (shape[0], shape[1] // layer[1], shape[2] // layer[1])
            continue
        elif layer[0] == "flatten":
            shape = (int(np.prod(shape)),)
            continue
        else:
            continue
        if training:
            out.append(("dw", m, kk, cout))
            if first_dx or not first:
                out.append(("dx", m, kk, cout))
        first = False
    return out


def triple_flops(triples):
    return sum(2 * m * k * n for _, m, k, n in triples)


def case_gemms(name, quick):
    """(triples, scale): the GEMMs of one timed unit of the case are ``triples`` run ``scale`` times."""
    c = CASES[name]
    if c["kind"] in ("conv", "dense", "pool", "norm"):
        return gemm_triples(c["spec"], c["input"], c["batch"]), 1.0
    n, batch = case_size(name, quick)
    if n is None:  # digits: its training split
        n = 1437
    if c["kind"] == "epoch":
        return gemm_triples(c["spec"], c["input"], batch, first_dx=False), n / batch
    return gemm_triples(c["spec"], c["input"], batch, training=False), n / batch


# ----------------------------------------------------------------------------- minidl
def _minidl_model(spec, rng):
    from minidl import Sequential
    from minidl import layers as L

    out = []
    for layer in spec:
        if layer[0] == "conv":
            _, cin, cout, k, stride, pad = layer[:6]
            out.append(L.Conv2D(cin, cout, k, stride=stride, padding=pad, groups=_groups(layer), rng=rng))
        elif layer[0] == "dense":
            out.append(L.Dense(layer[1], layer[2], rng=rng))
        elif layer[0] == "relu":
            out.append(L.ReLU())
        elif layer[0] == "pool":
            out.append(L.MaxPool2D(layer[1]))
        elif layer[0] == "flatten":
            out.append(L.Flatten())
        elif layer[0] == "bn":
            out.append(L.BatchNorm2D(layer[1]))
        elif layer[0] == "dropout":
            out.append(L.Dropout(layer[1], rng=rng))
    return Sequential(*out)


def _data(name, quick, rng):
    c = CASES[name]
    if name in ("digits_epoch", "digits_best_epoch"):
        import minidl as mdl

        (X, y), _ = mdl.data.load_digits()
        return X, y
    n, _ = case_size(name, quick)
    X = rng.random((n, *c["input"]), dtype=np.float32)
    return X, rng.integers(0, 10, n).astype(np.int64)


def build_minidl(name, quick, variant):
    """A function ``run(round_index)`` doing one timed unit of the case in minidl."""
    import minidl as mdl

    c, rng = CASES[name], np.random.default_rng(0)
    if c["kind"] in ("conv", "dense", "pool", "norm"):
        layer = _minidl_model(c["spec"], rng)[0]
        x = rng.standard_normal((c["batch"], *c["input"]), dtype=np.float32)
        g = rng.standard_normal(layer.forward(x).shape, dtype=np.float32)

        def run(_):
            layer.forward(x)
            layer.backward(g)

        if variant == "default":  # as the Trainer runs them: one-thread BLAS, large batches split over the threads
            run.context = lambda: mdl.functional._engine.blas.auto_threads(max_threads=mdl.get_num_threads())
        return run
    X, y = _data(name, quick, rng)
    model = _minidl_model(c["spec"], rng)
    # "default": the Trainer's default (blas_threads="auto"; under the 1-thread worker's
    # threadpoolctl limit it stays at 1 thread); "blas_none": BLAS left alone
    extra = {} if variant == "default" else {"blas_threads": None}
    fit_extra = {}
    if c.get("best"):  # the recipe of minidl train --model best (its cosine schedule steps per epoch)
        recipe = mdl.models.digits_best_recipe(model, epochs=30)
        trainer = mdl.Trainer(model, recipe["loss"], recipe["optimizer"], **extra)
        fit_extra = {"transform": recipe["transform"]}
    else:
        trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(),
                              mdl.optim.SGD(model.parameters(), lr=c["lr"], momentum=0.9), **extra)

    def run(r):
        if r < 0:  # warm-up: a few batches
            trainer.fit(X[: 3 * c["batch"]], y[: 3 * c["batch"]], epochs=1, batch_size=c["batch"],
                        seed=10**6, progress=False, **fit_extra)
        else:
            trainer.fit(X, y, epochs=1, batch_size=c["batch"], seed=r, progress=False, **fit_extra)

    return run


def build_gemm(name, quick):
    """``run()`` doing the case's GEMMs (``case_gemms``) once with numpy.matmul into preallocated outputs."""
    triples, _ = case_gemms(name, quick)
    rng, work = np.random.default_rng(1), []
    for kind, m, k, n in triples:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        g = rng.standard_normal((m, n), dtype=np.float32)
        if kind == "fwd":
            work.append((a, b, np.empty((m, n), np.float32)))
        elif kind == "dw":
            work.append((g.T, a, np.empty((n, k), np.float32)))
        else:
            work.append((g, b.T, np.empty((m, k), np.float32)))

    def run(_):
        for a, b, o in work:
            np.matmul(a, b, out=o)

    return run


# ----------------------------------------------------------------------------- torch
def _torch_model(spec):
    from torch import nn

    out = []
    for layer in spec:
        if layer[0] == "conv":
            _, cin, cout, k, stride, pad = layer[:6]
            out.append(nn.Conv2d(cin, cout, k, stride=stride, padding=pad if stride == 1 else 0,
                                 groups=_groups(layer)))
        elif layer[0] == "dense":
            out.append(nn.Linear(layer[1], layer[2]))
        elif layer[0] == "relu":
            out.append(nn.ReLU())
        elif layer[0] == "pool":
            out.append(nn.MaxPool2d(layer[1]))
        elif layer[0] == "flatten":
            out.append(nn.Flatten())
        elif layer[0] == "bn":
            out.append(nn.BatchNorm2d(layer[1]))
        elif layer[0] == "dropout":
            out.append(nn.Dropout(layer[1]))
    return nn.Sequential(*out)


def build_torch(name, quick, variant):
    import torch
    import torch.nn.functional as TF

    torch.manual_seed(0)
    c, rng = CASES[name], np.random.default_rng(0)
    if c["kind"] in ("conv", "dense", "pool", "norm"):
        layer = _torch_model(c["spec"])[0]
        x = torch.from_numpy(rng.standard_normal((c["batch"], *c["input"]), dtype=np.float32)).requires_grad_()
        pad = None
        if c["kind"] == "conv" and c["spec"][0][4] != 1:  # stride 2 'same': minidl's Keras rule, explicitly
            from minidl.functional import resolve_padding

            _, _, _, k, stride, _ = c["spec"][0][:6]
            (t, b), (left, right) = resolve_padding("same", c["input"][1:], k, stride=stride)
            pad = (left, right, t, b)

        def fwd():
            return layer(TF.pad(x, pad) if pad else x)

        g = torch.from_numpy(rng.standard_normal(tuple(fwd().shape), dtype=np.float32))

        def run(_):
            x.grad = None
            for p in layer.parameters():
                p.grad = None
            fwd().backward(g)

        return run
    X, y = _data(name, quick, rng)
    model = _torch_model(c["spec"])
    opt = torch.optim.SGD(model.parameters(), lr=c["lr"], momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    transform = None
    if c.get("best"):  # the same recipe in torch; the same numpy augmentation, timed with it
        import minidl as mdl

        params = list(model.parameters())
        opt = torch.optim.SGD([{"params": [p for p in params if p.ndim > 1], "weight_decay": 2e-3},
                               {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}],
                              lr=c["lr"], momentum=0.9, nesterov=True)
        loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.2)
        transform = mdl.data.Compose([mdl.data.RandomShift(1), mdl.data.RandomRotation(10)])
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    bs = c["batch"]

    def run(r):
        n = min(3 * bs, len(X)) if r < 0 else len(X)
        perm = np.random.default_rng(abs(r)).permutation(n)
        order = torch.from_numpy(perm)
        aug = np.random.default_rng([abs(r), 1])
        for start in range(0, n, bs):
            idx = order[start: start + bs]
            xb = Xt[idx] if transform is None else torch.from_numpy(transform(X[perm[start: start + bs]], aug))
            opt.zero_grad()
            loss = loss_fn(model(xb), yt[idx])
            loss.backward()
            opt.step()

    return run


# ----------------------------------------------------------------------------- processes
def _set_threads(framework, threads):
    """Fix this process's threads once, at start (``threads`` None = all, the library defaults).

    Never changed afterwards: on this machine, torch.set_num_threads(1) then (2) in one
    process made a digits epoch 100x slower, so each thread setting gets its own process.
    """
    if threads is None:
        return None
    if framework == "torch":
        import torch

        torch.set_num_threads(threads)
        return None
    from threadpoolctl import threadpool_limits

    import minidl

    minidl.set_num_threads(threads)  # the threads a split batch is computed on (BLAS's count anyway)
    return threadpool_limits(threads, user_api="blas")  # kept alive by the caller


def worker(framework, threads):
    """Answer JSON commands on stdin: {"case", "variant", "reps", "round", "quick"}; ``threads`` None = all."""
    reply, sys.stdout = sys.stdout, sys.stderr  # nothing but replies on the pipe
    try:
        if framework == "torch":
            import torch

            default_threads = torch.get_num_threads()
            limit = _set_threads(framework, threads)  # noqa: F841 (kept alive)
            info = dict(torch=torch.__version__, torch_threads=default_threads,
                        torch_interop_threads=torch.get_num_interop_threads(), threads_now=torch.get_num_threads())
        else:
            from threadpoolctl import threadpool_info

            import minidl

            info = dict(minidl=minidl.__version__, numpy=np.__version__, blas=threadpool_info())
            limit = _set_threads(framework, threads)  # noqa: F841 (kept alive)
    except ImportError as exc:
        info = dict(error=f"{type(exc).__name__}: {exc}")
    print(json.dumps(info), file=reply, flush=True)
    built = {}
    for line in sys.stdin:
        cmd = json.loads(line)
        key = (cmd["case"], cmd["variant"])
        if key not in built:
            if cmd["variant"] == "gemm":
                built[key] = build_gemm(cmd["case"], cmd["quick"])
            else:
                build = build_torch if framework == "torch" else build_minidl
                built[key] = build(cmd["case"], cmd["quick"], cmd["variant"])
        run = built[key]
        with getattr(run, "context", contextlib.nullcontext)():  # entered once per round of reps
            ru0, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            for _ in range(cmd["reps"]):
                run(cmd["round"])
            seconds = (time.perf_counter() - start) / cmd["reps"]
        ru1 = resource.getrusage(resource.RUSAGE_SELF)  # all threads of this process
        print(json.dumps(dict(seconds=seconds, sys=(ru1.ru_stime - ru0.ru_stime) / cmd["reps"],
                              user=(ru1.ru_utime - ru0.ru_utime) / cmd["reps"],
                              faults=(ru1.ru_minflt - ru0.ru_minflt) / cmd["reps"])), file=reply, flush=True)


def predict_child(framework, threads, quick, rounds):
    """Time ``rounds`` predictions over the MNIST-shaped set in this fresh process; print JSON with ru_maxrss."""
    reply, sys.stdout = sys.stdout, sys.stderr
    name = "mnist_predict"
    n, bs = case_size(name, quick)
    rng = np.random.default_rng(0)
    X = rng.random((n, 1, 28, 28), dtype=np.float32)
    limit = _set_threads(framework, threads)  # noqa: F841 (kept alive)
    if framework == "torch":
        import torch

        model = _torch_model(CASES[name]["spec"]).eval()
        Xt = torch.from_numpy(X)

        def predict():
            out = torch.empty((n, 10))
            with torch.no_grad():
                for s in range(0, n, bs):
                    out[s: s + bs] = model(Xt[s: s + bs])
            return out.numpy()
    else:
        import minidl as mdl

        model = _minidl_model(CASES[name]["spec"], rng)
        trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(), mdl.optim.SGD(model.parameters(), lr=0.01))

        def predict():
            return trainer.predict(X, batch_size=bs)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        predict()
        times.append(time.perf_counter() - start)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps(dict(seconds=times, maxrss_mib=rss, input_mib=X.nbytes / 2**20, pid=os.getpid())),
          file=reply, flush=True)
