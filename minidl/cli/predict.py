"""``minidl predict MODEL.npz INPUT...``: classes and probabilities for arrays or PNG images, as CSV or JSON.

Probabilities are the softmax of the model's outputs (its logits). ``.npy`` holds a batch
(N, *sample) or one sample; ``.npz`` one array (or several, each a batch); a PNG is one
drawn digit, prepared as :func:`minidl.cli.images.as_digit` says.
"""

from __future__ import annotations

import csv
import json
import os
import sys

import numpy as np

from ._args import CommandError
from .images import as_digit, read_png
from .model_commands import outputs, read_model


def _arrays(path, shape):
    """``[(label, batch)]`` read from ``path``; ``shape`` is one sample's (or None: the array is a batch)."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".png":
        if shape is None or len(shape) != 3:
            raise ValueError("a PNG needs the model's input shape (C, H, W): pass --input-shape, e.g. 1,8,8")
        digit = as_digit(read_png(path), shape[1:])
        return [(path, np.broadcast_to(digit, shape)[None])]
    if ext not in (".npy", ".npz"):
        raise ValueError(f"expected a .npy or .npz array or a .png image, got a {ext or 'file without extension'}")
    if ext == ".npy":
        items = [(path, np.load(path, allow_pickle=False))]  # no pickles: a file cannot run code
    else:
        with np.load(path, allow_pickle=False) as data:
            items = [(f"{path}:{k}", data[k]) for k in data.files]
    out = []
    for label, a in items:
        if a.dtype.kind not in "biuf":
            raise ValueError(f"{label}: expected numbers, got an array of dtype {a.dtype}")
        if shape is not None and tuple(a.shape) == tuple(shape):
            a = a[None]  # one sample
        elif shape is not None and tuple(a.shape[1:]) != tuple(shape):
            raise ValueError(f"{label}: expected samples of shape {tuple(shape)} (one sample, or a batch "
                             f"(N, {', '.join(map(str, shape))})), got an array of shape {a.shape}")
        out.append((label, a))
    return out


def _rows(labels, probs, top):
    """One dict per sample: input, index, class, probability and the probabilities (or the top k)."""
    rows = []
    for (label, index), p in zip(labels, probs):
        best = int(np.argmax(p))
        row = {"input": label, "index": index, "class": best, "probability": float(p[best])}
        if top is None:
            row["probabilities"] = [float(v) for v in p]
        else:
            order = np.argsort(-p, kind="stable")[:top]
            row["top"] = [[int(c), float(p[c])] for c in order]
        rows.append(row)
    return rows


def _write(rows, fmt, k):
    if fmt == "json":
        print(json.dumps(rows))
        return
    writer = csv.writer(sys.stdout, lineterminator="\n")
    extra = [f"p{c}" for c in range(k)] if "probabilities" in rows[0] else \
        [name for i in range(1, len(rows[0]["top"]) + 1) for name in (f"top{i}", f"p_top{i}")]
    writer.writerow(["input", "index", "class", "probability", *extra])
    for row in rows:
        tail = row["probabilities"] if "probabilities" in row else [v for pair in row["top"] for v in pair]
        writer.writerow([row["input"], row["index"], row["class"], f"{row['probability']:.6f}",
                         *(f"{v:.6f}" if isinstance(v, float) else v for v in tail)])


def _predict(args) -> int:
    import minidl as mdl

    where = f"minidl predict {args.model_file}"
    model, meta, _ = read_model(mdl, args.model_file, where)
    shape = args.input_shape or (tuple(meta["input_shape"]) if "input_shape" in meta else None)
    params = model.parameters()
    dtype = params[0].dtype if params else np.float32
    labels, batches = [], []
    for path in args.inputs:
        try:
            for label, batch in _arrays(path, shape):
                labels += [(label, i) for i in range(len(batch))]
                batches.append(np.asarray(batch, dtype=dtype))
        except OSError as exc:
            raise CommandError(where, f"{path}: {exc.strerror or exc}") from None
        except (ValueError, EOFError) as exc:  # the messages name the file
            text = str(exc)
            raise CommandError(where, text if text.startswith(path) else f"{path}: {text}") from None
    try:
        logits = outputs(model, np.concatenate(batches), 256)
    except (TypeError, ValueError) as exc:
        raise CommandError(where, f"{exc} (do the inputs have the model's sample shape?)") from None
    if logits.ndim != 2:
        raise CommandError(where, f"the model's outputs have shape {logits.shape}; predict needs (N, classes)")
    probs = mdl.functional.softmax(logits.astype(np.float64), axis=1)
    top = None if args.top is None else min(args.top, logits.shape[1])
    _write(_rows(labels, probs, top), args.format, logits.shape[1])
    return 0
