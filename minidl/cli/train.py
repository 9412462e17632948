"""``minidl train``: train a CNN, print its test scores, write the model, its history and pictures.

The run folder gets ``run.json`` (the options) and ``checkpoint.npz`` after every epoch
(and on Ctrl-C), then ``model.npz``, ``history.json`` and the PNGs.
``--resume <out>/checkpoint.npz`` continues the run bit for bit up to ``--epochs`` (a total).
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from ._args import DATASETS, MNIST_EPOCHS, load_dataset
from .pictures import PICTURES, write_pictures
from .report import confusion_matrix, format_confusion
from .run_folder import choose_out, merge_resumed, read_run, writable_folder, write_run

#: ``minidl train --model``: what each trains and its default number of epochs.
MODELS = {
    "reference": {"title": "reference CNN", "epochs": 20},
    "best": {"title": "best CNN (BatchNorm, Dropout, augmentation, cosine schedule)", "epochs": 30},
}
#: The defaults of the options a run is defined by (None in the parser: ``--resume`` can tell them apart).
DEFAULTS = {"model": "reference", "dataset": "digits", "batch_size": 32, "lr": 0.05, "momentum": 0.9, "seed": 0}


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


def _plural(n, word) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _fail(message, status=2) -> int:
    print(f"minidl train: error: {' '.join(str(message).split())}", file=sys.stderr)
    return status


def _settle_options(args):
    """Fill the options (from the resumed run, then :data:`DEFAULTS`) and the folder; an error or None."""
    if args.resume is not None:
        run, problem = read_run(args.resume)
        problem = problem or merge_resumed(args, run)
        if problem:
            return problem
        args.out = args.out or os.path.dirname(args.resume) or "."
    for key, value in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.out, problem = choose_out(args)
    return problem or writable_folder(args.out)  # before any training: nothing is lost at the end


def _save_checkpoint(mdl, trainer, args):
    """``run.json`` and ``checkpoint.npz`` in the run folder: what ``--resume`` reads."""
    write_run(args.out, args, mdl.__version__)
    trainer.save_checkpoint(os.path.join(args.out, "checkpoint.npz"))


def _checkpointer(mdl, args):
    """A callback writing the checkpoint after every epoch (put last: it stores what the others left)."""
    class EpochCheckpoint(mdl.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            _save_checkpoint(mdl, self.trainer, args)
    return EpochCheckpoint()


def _train(args) -> int:
    import minidl as mdl

    problem = _settle_options(args)
    if problem:
        return _fail(problem)
    data, problem = load_dataset(mdl, args)
    if problem:
        return _fail(problem)
    (X, y), (X_test, y_test) = data
    digits = args.dataset == "digits"
    args.epochs = args.epochs or (MODELS[args.model]["epochs"] if digits else MNIST_EPOCHS)
    model, trainer, fit_kwargs = _build(mdl, args)
    if args.resume is not None:
        try:
            trainer.load_checkpoint(args.resume)
        except (OSError, ValueError) as exc:
            return _fail(f"--resume {args.resume!r}: {exc}")
        if trainer.epochs_done >= args.epochs:
            return _fail(f"--resume: the run has trained {trainer.epochs_done} epochs already; --epochs is the "
                         f"total to train up to: pass --epochs {trainer.epochs_done + 1} or more")
    done = trainer.epochs_done
    title = MODELS[args.model]["title"] if digits else "MNIST CNN"
    resumed = f", resumed after epoch {done}" if done else ""
    print(f"minidl {mdl.__version__}: {title} on {DATASETS[args.dataset]} "
          f"({len(X)} train / {len(X_test)} test), {_plural(args.epochs, 'epoch')}{resumed}, batch {args.batch_size}, "
          f"lr {args.lr}, momentum {args.momentum}, seed {args.seed} -> {args.out}")
    if not args.quiet:
        print(model.summary(tuple(X.shape[1:])))
    batches = args.epochs * -(-len(X) // args.batch_size)
    norms = mdl.NormHistory(every=max(1, batches // 1000))  # for norms.png: at most ~1000 points per curve
    fit_kwargs["callbacks"] = [*fit_kwargs.get("callbacks", ()), norms, _checkpointer(mdl, args)]
    start = time.perf_counter()
    try:  # the Trainer reports nan/inf itself: no numpy overflow warnings on top
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            history = trainer.fit(X, y, epochs=args.epochs, batch_size=args.batch_size,
                                  validation_data=(X_test, y_test), seed=args.seed,
                                  progress=not args.quiet, **fit_kwargs)
    except FloatingPointError as exc:  # diverged: one line, no traceback, no model written
        return _fail(exc, 1)
    except KeyboardInterrupt:  # Ctrl-C: the Trainer stopped between batches; keep what was trained
        _save_checkpoint(mdl, trainer, args)
        checkpoint = os.path.join(args.out, "checkpoint.npz")
        print(f"\ninterrupted: wrote {checkpoint}; continue with: minidl train --resume {checkpoint}",
              file=sys.stderr)
        return 130
    elapsed = time.perf_counter() - start
    print(f"\ntrained in {elapsed:.1f} s ({elapsed / max(1, args.epochs - done):.3f} s/epoch)")
    return _report(mdl, args, trainer, model, history, (X, X_test, y_test), title, norms)


def _report(mdl, args, trainer, model, history, data, title, norms) -> int:
    """Print the test scores, write the model, history.json and the pictures; the exit status."""
    X, X_test, y_test = data
    scores = trainer.predict(X_test)
    pred = scores.argmax(axis=1)
    result = {"loss": float(mdl.losses.SoftmaxCrossEntropy().forward(scores, y_test)),
              "accuracy": float(np.mean(pred == y_test))}
    smoothing = getattr(trainer.loss, "label_smoothing", 0.0)
    print(f"test loss {result['loss']:.4f}   test accuracy {result['accuracy']:.2%}")
    if smoothing:
        print(f"(test loss: plain cross-entropy; the training loss and val_loss add label smoothing {smoothing})")
    print("confusion matrix (rows: true class, columns: predicted):")
    print(format_confusion(confusion_matrix(y_test, pred, scores.shape[1])))
    model_path = os.path.join(args.out, "model.npz")
    meta = {"minidl": mdl.__version__, "command": "minidl train", "model": args.model, "dataset": args.dataset,
            "seed": args.seed, "epochs": len(history["loss"]), "input_shape": list(X.shape[1:]),
            "classes": int(scores.shape[1]), "test": result}
    mdl.io.write(model, model_path, extra_meta={"minidl train": meta})
    with open(os.path.join(args.out, "history.json"), "w") as f:
        json.dump({"history": history.history, "test": result,
                   "config": {k: v for k, v in vars(args).items() if k != "func"}}, f, indent=2)
    written = [model_path, os.path.join(args.out, "history.json")]
    if args.no_plots:
        pictures = []
    else:
        pictures = write_pictures(mdl, args.out, f"{title.split(' (')[0]} on {DATASETS[args.dataset]}", history,
                                  model, X_test, y_test, pred, scores.shape[1], norms)
    if pictures is None:
        print("(matplotlib not installed: no PNGs; pip install 'minidl[plot]')")
    print("wrote:\n" + "\n".join(f"  {path}" for path in written + (pictures or [])))
    return 0 if pictures is None or args.no_plots or len(pictures) == len(PICTURES) else 1
