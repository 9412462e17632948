"""The ``minidl`` command: ``minidl train``, ``minidl gradcheck [MODEL.npz]`` and ``minidl export``."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time

import numpy as np

from . import metrics

__all__ = ["main"]


def confusion_matrix(y_true, y_pred, num_classes=10) -> np.ndarray:
    """``cm[i, j]`` = number of samples of true class ``i`` predicted as ``j``
    (:func:`minidl.metrics.confusion_matrix` with 10 classes by default)."""
    return metrics.confusion_matrix(y_true, y_pred, num_classes)


def format_confusion(cm) -> str:
    k = cm.shape[0]
    width = max(4, len(str(cm.max())) + 1)
    lines = ["true\\pred" + "".join(str(j).rjust(width) for j in range(k))]
    lines += [str(i).rjust(9) + "".join(str(v).rjust(width) for v in row) for i, row in enumerate(cm)]
    return "\n".join(lines)


#: The PNGs ``minidl train`` writes next to the model (with matplotlib), in this order.
PICTURES = ("learning_curve.png", "filters.png", "feature_maps.png", "confusion.png", "misclassified.png",
            "norms.png")


def write_pictures(mdl, out, title, history, model, X_test, y_test, pred, num_classes, norms) -> list | None:
    """Write :data:`PICTURES` to the folder ``out``; the paths written, or None without matplotlib.

    A picture that cannot be written (OSError) is reported on stderr, one line, and skipped.
    """
    try:
        import matplotlib
    except ImportError:
        return None
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # files only: no window, no GUI toolkit (a caller's pyplot is left alone)
    import matplotlib.pyplot as plt

    draw = {
        "learning_curve.png": lambda: mdl.plot.learning_curves(history, metrics=["loss", "accuracy"]),
        "filters.png": lambda: mdl.plot.filters(model),
        "feature_maps.png": lambda: mdl.plot.feature_maps(model, X_test[0]),
        "confusion.png": lambda: mdl.plot.confusion_matrix(y_test, pred, num_classes=num_classes),
        "misclassified.png": lambda: mdl.plot.misclassified(X_test, y_test, pred),
        "norms.png": lambda: mdl.plot.norms(norms),
    }
    written = []
    for name in PICTURES:
        path = os.path.join(out, name)
        fig = draw[name]()
        try:
            if name == "learning_curve.png":
                fig.suptitle(f"minidl {title}")
            fig.savefig(path, dpi=100)
            written.append(path)
        except OSError as exc:  # the model is saved already: say which picture is missing, go on
            print(f"minidl train: error: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        finally:
            plt.close(fig)
    return written


def _writable_folder(path: str) -> str | None:
    """Create ``path`` if needed and prove it writable; return an error message or None."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        return f"cannot write to --out {path!r}: {exc.strerror or exc}"
    return None


#: ``minidl train --model``: what each trains and its default number of epochs.
MODELS = {
    "reference": {"title": "reference CNN", "epochs": 20},
    "best": {"title": "best CNN (BatchNorm, Dropout, augmentation, cosine schedule)", "epochs": 30},
}


#: ``minidl train --dataset``: the MNIST family is read from ``--data-dir`` (mdl.data.load_mnist).
DATASETS = {"digits": "scikit-learn digits", "mnist": "MNIST", "fashion": "Fashion-MNIST", "kmnist": "KMNIST"}

#: Default epochs of the MNIST model (``models.mnist_cnn``) on the MNIST family.
MNIST_EPOCHS = 3


def _load(mdl, args):
    """``(X, y), (X_test, y_test)`` of ``args.dataset``, or an error message."""
    if args.dataset == "digits":
        return mdl.data.load_digits(test_size=0.2, seed=args.seed), None
    if args.model != "reference":
        return None, (f"--model {args.model} is for the digits; on {DATASETS[args.dataset]} the model is "
                      "the MNIST CNN (--model reference)")
    if args.data_dir is None:
        return None, (f"--dataset {args.dataset} needs --data-dir DIR, the folder with the four IDX files "
                      "(see mdl.data.load_mnist)")
    try:
        return mdl.data.load_mnist(args.data_dir, kind=args.dataset), None
    except (OSError, ValueError) as exc:
        return None, " ".join(str(exc).split())


def _build(mdl, args):
    """The model, its Trainer and the extra ``fit`` arguments for ``args.model``."""
    rng = np.random.default_rng(args.seed)
    if args.model == "reference":
        model = (mdl.models.reference_cnn if args.dataset == "digits" else mdl.models.mnist_cnn)(rng=rng)
        optimizer = mdl.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
        return model, mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(), optimizer), {}
    model = mdl.models.digits_best(rng=rng)
    recipe = mdl.models.digits_best_recipe(model, epochs=args.epochs, lr=args.lr, momentum=args.momentum)
    trainer = mdl.Trainer(model, recipe["loss"], recipe["optimizer"])
    return model, trainer, {"callbacks": recipe["callbacks"], "transform": recipe["transform"]}


def _train(args) -> int:
    import minidl as mdl

    problem = _writable_folder(args.out)  # before any training: nothing is lost at the end
    if problem:
        print(f"minidl train: error: {problem}", file=sys.stderr)
        return 2

    data, problem = _load(mdl, args)
    if problem:
        print(f"minidl train: error: {problem}", file=sys.stderr)
        return 2
    (X, y), (X_test, y_test) = data
    digits = args.dataset == "digits"
    args.epochs = args.epochs or (MODELS[args.model]["epochs"] if digits else MNIST_EPOCHS)
    model, trainer, fit_kwargs = _build(mdl, args)
    title = MODELS[args.model]["title"] if digits else "MNIST CNN"
    print(f"minidl {mdl.__version__}: {title} on {DATASETS[args.dataset]} "
          f"({len(X)} train / {len(X_test)} test), {args.epochs} epochs, batch {args.batch_size}, "
          f"lr {args.lr}, momentum {args.momentum}, seed {args.seed}")
    if not args.quiet:
        print(model.summary(tuple(X.shape[1:])))
    batches = args.epochs * -(-len(X) // args.batch_size)
    norms = mdl.NormHistory(every=max(1, batches // 1000))  # for norms.png: at most ~1000 points per curve
    fit_kwargs["callbacks"] = [*fit_kwargs.get("callbacks", ()), norms]
    start = time.perf_counter()
    try:  # the Trainer reports nan/inf itself: no numpy overflow warnings on top
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            history = trainer.fit(X, y, epochs=args.epochs, batch_size=args.batch_size,
                                  validation_data=(X_test, y_test), seed=args.seed,
                                  progress=not args.quiet, **fit_kwargs)
    except FloatingPointError as exc:  # diverged: one line, no traceback, no model written
        print(f"minidl train: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - start
    result = trainer.evaluate(X_test, y_test)
    scores = trainer.predict(X_test)
    pred = scores.argmax(axis=1)
    print(f"\ntrained in {elapsed:.1f} s ({elapsed / len(history['loss']):.3f} s/epoch)")
    print(f"test loss {result['loss']:.4f}   test accuracy {result['accuracy']:.2%}")
    print("confusion matrix (rows: true class, columns: predicted):")
    print(format_confusion(confusion_matrix(y_test, pred, scores.shape[1])))
    model_path = os.path.join(args.out, "model.npz")
    model.save(model_path)
    with open(os.path.join(args.out, "history.json"), "w") as f:
        json.dump({"history": history.history, "test": result,
                   "config": {k: v for k, v in vars(args).items() if k != "func"}}, f, indent=2)
    written = [model_path, os.path.join(args.out, "history.json")]
    pictures = write_pictures(mdl, args.out, f"{title.split(' (')[0]} on {DATASETS[args.dataset]}", history,
                              model, X_test, y_test, pred, scores.shape[1], norms)
    if pictures is None:
        print("(matplotlib not installed: no PNGs; pip install 'minidl[plot]')")
    print("wrote:\n" + "\n".join(f"  {path}" for path in written + (pictures or [])))
    return 0 if pictures is None or len(pictures) == len(PICTURES) else 1


def _gradcheck_model(args) -> int:
    """``minidl gradcheck MODEL.npz``: check_model on a real batch of --dataset; 1 if a layer fails."""
    import minidl as mdl

    where = f"minidl gradcheck {args.model_file}"
    try:
        model = mdl.load(args.model_file).train()  # training mode: the backward training uses
    except (OSError, ValueError) as exc:
        print(f"{where}: error: cannot read it: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    args.model = "reference"
    data, problem = _load(mdl, args)
    if problem:
        print(f"{where}: error: {problem}", file=sys.stderr)
        return 2
    X, y = data[1][0][:args.batch_size], data[1][1][:args.batch_size]
    try:
        loss = mdl.losses.SoftmaxCrossEntropy() if np.ndim(model(X)) == 2 else None
        report = mdl.check_model(model, X, y if loss else None, loss, against=args.against, seed=args.seed)
    except ImportError as exc:
        print(f"{where}: error: {exc}", file=sys.stderr)
        return 2
    except (TypeError, ValueError) as exc:  # the model does not take this dataset's images
        print(f"{where}: error: {' '.join(str(exc).split())} (is --dataset the model's?)", file=sys.stderr)
        return 2
    print(report)
    return 0 if report.passed else 1


def _gradcheck(args) -> int:
    if args.model_file is not None:
        return _gradcheck_model(args)
    from .gradcheck_grid import run_grid

    reports, unchecked = run_grid(seed=args.seed)
    failed = 0
    for report in reports:
        print(report)
        print()
        failed += not report.passed
    for name in unchecked:  # registered, but no examples to check: said, never skipped silently
        print(f"gradcheck {name}: not checked: no examples (give the class an examples(rng) classmethod)")
    tail = f", {len(unchecked)} not checked" if unchecked else ""
    print(f"{len(reports) - failed} passed, {failed} failed{tail}")
    return 1 if failed else 0


def _export(args) -> int:
    import minidl as mdl

    try:
        model = mdl.load(args.model)
    except (OSError, ValueError) as exc:
        print(f"minidl export: error: cannot read {args.model!r}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    try:
        proto = mdl.export.to_onnx(model, args.output, args.input_shape)
    except ImportError as exc:
        print(f"minidl export: error: {exc}", file=sys.stderr)
        return 2
    except (TypeError, ValueError, OSError) as exc:  # a layer with no ONNX form, a shape that does not fit
        print(f"minidl export: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    dims = [d.dim_param or str(d.dim_value) for d in proto.graph.output[0].type.tensor_type.shape.dim]
    print(f"wrote {args.output} (ONNX opset {mdl.export.OPSET}): input (N, "
          f"{', '.join(map(str, args.input_shape))}) -> output ({', '.join(dims)})")
    return 0


def _shape(text):
    """An argparse ``type=``: ``1,8,8`` -> ``(1, 8, 8)`` (positive integers)."""
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas (one sample's "
                                         f"shape, e.g. 1,8,8), got {text!r}")
    return shape


def _number(kind, minimum, strict=False, maximum=None):
    """An argparse ``type=``: a finite ``kind`` >= ``minimum`` (> when ``strict``), < ``maximum``."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            expected = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        bad = not math.isfinite(value) or value < minimum or (strict and value == minimum) \
            or (maximum is not None and value >= maximum)
        if bad:
            bound = f"> {minimum}" if strict else f">= {minimum}"
            bound += f" and < {maximum}" if maximum is not None else ""
            raise argparse.ArgumentTypeError(f"expected a finite value {bound}, got {text!r}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minidl", description="minidl: train and check small CNNs on numpy.")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a CNN on scikit-learn's digits (--model reference or best)")
    t.add_argument("--model", choices=sorted(MODELS), default="reference",
                   help="reference: the small CNN (default, 20 epochs); best: BatchNorm, Dropout, "
                        "augmentation, Nesterov SGD with weight decay, label smoothing, cosine schedule "
                        "(30 epochs)")
    t.add_argument("--dataset", choices=list(DATASETS), default="digits",
                   help="digits (default, bundled with scikit-learn) or the MNIST family read from --data-dir")
    t.add_argument("--data-dir", default=None,
                   help="folder with the four IDX files of --dataset mnist/fashion/kmnist (gzipped or not)")
    t.add_argument("--epochs", type=_number(int, 1), default=None,
                   help=f"default: the model's (20 or 30 on digits, {MNIST_EPOCHS} on the MNIST family)")
    t.add_argument("--batch-size", type=_number(int, 1), default=32)
    # < float32's largest value: a larger lr is inf in the model's float32 weights
    t.add_argument("--lr", type=_number(float, 0, strict=True, maximum=float(np.finfo(np.float32).max)),
                   default=0.05)
    t.add_argument("--momentum", type=_number(float, 0, maximum=1), default=0.9)
    t.add_argument("--seed", type=_number(int, 0, maximum=2**32), default=0)
    t.add_argument("--out", default=os.path.join("runs", "digits"), help="output folder (default: runs/digits)")
    t.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    t.set_defaults(func=_train)
    g = sub.add_parser("gradcheck", help="check every registered layer's gradients on the configurations it "
                                         "declares, or those of a saved model, layer by layer, on a real batch")
    g.add_argument("model_file", nargs="?", default=None, metavar="MODEL.npz",
                   help="a saved model: check_model on --batch-size samples of --dataset (exit 1 on a failure)")
    g.add_argument("--dataset", choices=list(DATASETS), default="digits", help="the batch's dataset (default digits)")
    g.add_argument("--data-dir", default=None, help="folder with the IDX files of --dataset mnist/fashion/kmnist")
    g.add_argument("--batch-size", type=_number(int, 1), default=16, help="samples checked (default 16)")
    g.add_argument("--against", choices=["torch"], default=None,
                   help="compare each layer with its PyTorch twin instead of finite differences")
    g.add_argument("--seed", type=_number(int, 0, maximum=2**32), default=0, help="default 0")
    g.set_defaults(func=_gradcheck)
    e = sub.add_parser("export", help="write a saved model (minidl train's model.npz) as an ONNX file "
                                      "(needs pip install -e \".[onnx]\")")
    e.add_argument("model", help="a model saved by minidl (model.save / minidl train)")
    e.add_argument("output", help="the ONNX file to write, e.g. model.onnx")
    e.add_argument("--input-shape", type=_shape, required=True,
                   help="one sample's shape without the batch axis, e.g. 1,8,8 (the batch axis stays dynamic)")
    e.set_defaults(func=_export)
    return parser


def main(argv=None) -> int:
    """The ``minidl`` command: ``train``, ``gradcheck`` and ``export``.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after ``minidl`` (default: ``sys.argv[1:]``). ``minidl
        --help`` and ``minidl <command> --help`` list the options; a bad value
        is a one-line usage error (SystemExit with status 2).

    Returns
    -------
    int
        The exit status: 0 on success.

    Examples
    --------
    >>> import contextlib, io
    >>> out = io.StringIO()
    >>> with contextlib.redirect_stdout(out):
    ...     status = main(["gradcheck"])
    >>> status, out.getvalue().splitlines()[-1].split(", ")[1]  # e.g. '54 passed, 0 failed'
    (0, '0 failed')
    """
    args = build_parser().parse_args(argv)  # bad values: one-line usage error, exit status 2
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
