"""``minidl evaluate`` and ``minidl summary``: a saved model's test scores, its layers and file metadata."""

from __future__ import annotations

import json
import os

import numpy as np

from ._args import DATASETS, SAMPLE_SHAPES, CommandError, test_split
from .report import confusion_matrix, format_confusion
from .run_folder import read_run

#: Where ``minidl train`` keeps what it knows about a model (``extra_meta`` of :func:`minidl.io.write`).
TRAIN_META = "minidl train"


def read_model(mdl, path, where):
    """``(model, minidl train's metadata or {}, all extra metadata)``; CommandError if unreadable."""
    try:
        file = mdl.io.read(path)
    except (OSError, ValueError, TypeError) as exc:
        raise CommandError(where, f"cannot read it: {exc}") from None
    meta = file.extra_meta.get(TRAIN_META, {}) if isinstance(file.extra_meta, dict) else {}
    return file.model, meta if isinstance(meta, dict) else {}, file.extra_meta


def outputs(model, X, batch_size):
    """The model's eval-mode outputs for ``X``, in batches; the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        return np.concatenate([model(X[i:i + batch_size]) for i in range(0, len(X), batch_size)])
    finally:
        model.train(was_training)


def _evaluate(args) -> int:
    """``minidl evaluate MODEL.npz``: cross-entropy, accuracy and the confusion matrix on the test split."""
    import minidl as mdl

    where = f"minidl evaluate {args.model_file}"
    model, meta, _ = read_model(mdl, args.model_file, where)
    X_test, y_test = test_split(mdl, args, where, meta)
    try:
        scores = outputs(model, X_test, args.batch_size)
        loss = float(mdl.losses.SoftmaxCrossEntropy().forward(scores, y_test))
    except (TypeError, ValueError) as exc:  # the model does not take this dataset's images
        raise CommandError(where, f"{exc} (is --dataset the model's?)") from None
    pred = scores.argmax(axis=1)
    cm = confusion_matrix(y_test, pred, scores.shape[1])
    result = {"dataset": args.dataset, "split": "test", "samples": len(y_test), "loss": loss,
              "accuracy": float(np.mean(pred == y_test)), "confusion_matrix": cm.tolist()}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.model_file} on the {DATASETS[args.dataset]} test split ({len(y_test)} samples)")
    print(f"test loss {loss:.4f} (cross-entropy)   test accuracy {result['accuracy']:.2%}")
    print("confusion matrix (rows: true class, columns: predicted):")
    print(format_confusion(cm))
    return 0


def _metadata_lines(path, model, meta, extra) -> list:
    """What the file says about itself: size, dtype, and what minidl train or a checkpoint stored."""
    params = model.parameters()
    dtype = np.dtype(params[0].dtype).name if params else "none"
    lines = [f"file: {path} ({os.path.getsize(path) / 1024:.1f} KiB), {type(model).__name__}, {dtype}"]
    if meta:
        test = meta.get("test", {})
        lines.append(f"written by: minidl train (minidl {meta.get('minidl', '?')}): --model {meta.get('model')} "
                     f"--dataset {meta.get('dataset')} --seed {meta.get('seed')}, epochs: {meta.get('epochs')}, "
                     f"test accuracy {test.get('accuracy', float('nan')):.2%}, "
                     f"test loss {test.get('loss', float('nan')):.4f}")
    trainer = extra.get("trainer") if isinstance(extra, dict) else None
    if isinstance(trainer, dict):
        lines.append(f"checkpoint: epochs done: {trainer.get('epochs_done')}, optimizer "
                     f"{(trainer.get('optimizer') or {}).get('class')} (resume with Trainer.load_checkpoint "
                     "or minidl train --resume)")
    return lines


def _run_shape(path):
    """The sample shape of the dataset in ``run.json`` beside ``path`` (a checkpoint of minidl train), or None."""
    run, problem = read_run(path)
    return None if problem else SAMPLE_SHAPES.get(run["dataset"])


def _summary(args) -> int:
    """``minidl summary MODEL.npz``: layers, output shapes, parameter counts and the file's metadata."""
    import minidl as mdl

    where = f"minidl summary {args.model_file}"
    model, meta, extra = read_model(mdl, args.model_file, where)
    shape = args.input_shape or meta.get("input_shape") or _run_shape(args.model_file)
    model = model if hasattr(model, "summary") else mdl.Sequential(model)  # a file holding one layer
    try:
        table = model.summary(tuple(shape)) if shape else model.summary()
    except (TypeError, ValueError) as exc:
        raise CommandError(where, f"{exc} (pass --input-shape, one sample's shape, e.g. 1,8,8)") from None
    print("\n".join(_metadata_lines(args.model_file, model, meta, extra)))
    print(table)
    return 0
