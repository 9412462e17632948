"""``minidl train``: train a CNN, print its test scores, write the model, its history and pictures."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

import numpy as np

from ._args import DATASETS, MNIST_EPOCHS, load_dataset
from .pictures import PICTURES, write_pictures
from .report import confusion_matrix, format_confusion


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

    data, problem = load_dataset(mdl, args)
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
