"""``minidl gradcheck`` and ``minidl export``: check a model's gradients, write it as ONNX."""

from __future__ import annotations

import sys

import numpy as np

from ._args import CommandError, test_split
from .model_commands import read_model


def _gradcheck_model(args) -> int:
    """``minidl gradcheck MODEL.npz``: check_model on a real batch of --dataset; 1 if a layer fails."""
    import minidl as mdl

    where = f"minidl gradcheck {args.model_file}"
    model, meta, _ = read_model(mdl, args.model_file, where)
    model.train()  # training mode: the backward training uses
    X, y = test_split(mdl, args, where, meta)
    X, y = X[:args.batch_size], y[:args.batch_size]
    try:
        loss = mdl.losses.SoftmaxCrossEntropy() if np.ndim(model(X)) == 2 else None
        report = mdl.check_model(model, X, y if loss else None, loss, against=args.against, seed=args.seed)
    except ImportError as exc:
        raise CommandError(where, exc) from None
    except (TypeError, ValueError) as exc:  # the model does not take this dataset's images
        raise CommandError(where, f"{exc} (is --dataset the model's?)") from None
    print(report)
    return 0 if report.passed else 1


def _gradcheck(args) -> int:
    if args.model_file is not None:
        return _gradcheck_model(args)
    from ..gradcheck_grid import run_grid

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
