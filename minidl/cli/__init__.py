"""The ``minidl`` command: ``train``, ``evaluate``, ``predict``, ``summary``, ``gradcheck`` and ``export``.

One module per command family: :mod:`.train` (with :mod:`.run_folder`), :mod:`.model_commands`
(evaluate, summary), :mod:`.predict`, :mod:`.tools` (gradcheck, export);
argparse value types and the datasets in :mod:`._args`; printed reports in :mod:`.report`.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from .. import __version__
from ._args import DATASETS, MNIST_EPOCHS, CommandError, _number, _shape
from .model_commands import _evaluate, _summary
from .pictures import PICTURES, write_pictures  # noqa: F401 (minidl.cli.PICTURES, as before)
from .predict import _predict
from .report import confusion_matrix, format_confusion  # noqa: F401 (minidl.cli.confusion_matrix, as before)
from .tools import _export, _gradcheck
from .train import MODELS, _train

__all__ = ["main"]


def _train_parser(sub) -> None:
    t = sub.add_parser("train", help="train a CNN on scikit-learn's digits or the MNIST family; resume a run")
    t.add_argument("--model", choices=sorted(MODELS), default=None,
                   help="reference: the small CNN (20 epochs on digits); best: BatchNorm, Dropout, "
                        "augmentation, Nesterov SGD with weight decay, label smoothing, cosine schedule "
                        "(30 epochs) (default: reference)")
    t.add_argument("--dataset", choices=list(DATASETS), default=None,
                   help="digits (bundled with scikit-learn) or the MNIST family read from --data-dir "
                        "(default: digits)")
    t.add_argument("--data-dir", default=None,
                   help="folder with the four IDX files of --dataset mnist/fashion/kmnist, gzipped or not "
                        "(default: none)")
    t.add_argument("--epochs", type=_number(int, 1), default=None,
                   help="the total number of epochs, as Trainer.fit's epochs: a resumed run trains up to it "
                        f"(default: the model's, 20 or 30 on digits, {MNIST_EPOCHS} on the MNIST family)")
    t.add_argument("--batch-size", type=_number(int, 1), default=None, help="samples per step (default: 32)")
    # < float32's largest value: a larger lr is inf in the model's float32 weights
    t.add_argument("--lr", type=_number(float, 0, strict=True, maximum=float(np.finfo(np.float32).max)),
                   default=None, help="SGD learning rate, the schedule's peak with --model best (default: 0.05)")
    t.add_argument("--momentum", type=_number(float, 0, maximum=1), default=None,
                   help="SGD momentum, in [0, 1) (default: 0.9)")
    t.add_argument("--seed", type=_number(int, 0, maximum=2**32), default=None,
                   help="seeds the weights, the digits' train/test split, the shuffling and the augmentation: "
                        "the same seed gives the same run (default: 0)")
    t.add_argument("--out", default=None,
                   help="output folder (default: runs/<dataset>, or runs/<dataset>-2, -3, ... when that holds a "
                        "previous run)")
    t.add_argument("--force", action="store_true", help="overwrite the run in --out (default: refuse)")
    t.add_argument("--resume", default=None, metavar="CHECKPOINT",
                   help="continue the run of <out>/checkpoint.npz bit for bit, with the options in its run.json, "
                        "up to --epochs in total (default: a new run)")
    t.add_argument("--quiet", action="store_true", help="no progress bars or summary (default: show them)")
    t.add_argument("--no-plots", action="store_true",
                   help="write no PNGs, for quick or headless runs (default: write them when matplotlib is installed)")
    t.set_defaults(func=_train)


def _data_options(p, batch_size, what) -> None:
    """The options of a command that reads a dataset: --dataset, --data-dir, --seed, --batch-size."""
    p.add_argument("--dataset", choices=list(DATASETS), default=None,
                   help="the dataset (default: the one the model was trained on when minidl train wrote it, "
                        "else digits)")
    p.add_argument("--data-dir", default=None, help="folder with the IDX files of --dataset mnist/fashion/kmnist "
                                                    "(default: none)")
    p.add_argument("--seed", type=_number(int, 0, maximum=2**32), default=None,
                   help="the digits' train/test split seed (default: the training run's, else 0)")
    p.add_argument("--batch-size", type=_number(int, 1), default=batch_size, help=f"{what} (default: {batch_size})")


def _model_parsers(sub) -> None:
    v = sub.add_parser("evaluate", help="a saved model's test loss, accuracy and confusion matrix")
    v.add_argument("model_file", metavar="MODEL.npz", help="a model saved by minidl (minidl train's model.npz)")
    _data_options(v, 256, "samples per forward pass")
    v.add_argument("--json", action="store_true", help="print the results as JSON (default: a table)")
    v.set_defaults(func=_evaluate)
    p = sub.add_parser("predict", help="classes and probabilities of a saved model for .npy/.npz arrays or "
                                       "PNG images, as CSV or JSON")
    p.add_argument("model_file", metavar="MODEL.npz", help="a model saved by minidl (minidl train's model.npz)")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="a .npy or .npz array of samples (N, C, H, W) or one sample, or PNG files (a digit, "
                        "dark on light or light on dark: scaled to the model's input)")
    p.add_argument("--format", choices=["csv", "json"], default="csv", help="output format (default: csv)")
    p.add_argument("--top", type=_number(int, 1), default=None,
                   help="print only the k most probable classes per input (default: every class)")
    p.add_argument("--input-shape", type=_shape, default=None,
                   help="one sample's shape, e.g. 1,8,8 (default: the shape minidl train stored in the file)")
    p.set_defaults(func=_predict)
    s = sub.add_parser("summary", help="a saved model's layers, output shapes, parameter counts and metadata")
    s.add_argument("model_file", metavar="MODEL.npz", help="a model saved by minidl")
    s.add_argument("--input-shape", type=_shape, default=None,
                   help="one sample's shape, e.g. 1,8,8 (default: the shape minidl train stored in the file, "
                        "else what the first layer fixes)")
    s.set_defaults(func=_summary)


def _tool_parsers(sub) -> None:
    g = sub.add_parser("gradcheck", help="check every registered layer's gradients on the configurations it "
                                         "declares, or those of a saved model, layer by layer, on a real batch")
    g.add_argument("model_file", nargs="?", default=None, metavar="MODEL.npz",
                   help="a saved model: check_model on --batch-size samples of --dataset, exit 1 on a failure "
                        "(default: the registered layers)")
    g.add_argument("--dataset", choices=list(DATASETS), default=None,
                   help="the batch's dataset (default: the one the model was trained on when minidl train wrote it, "
                        "else digits)")
    g.add_argument("--data-dir", default=None, help="folder with the IDX files of --dataset mnist/fashion/kmnist "
                                                    "(default: none)")
    g.add_argument("--batch-size", type=_number(int, 1), default=16, help="samples checked (default: 16)")
    g.add_argument("--against", choices=["torch"], default=None,
                   help="compare each layer with its PyTorch twin (default: finite differences)")
    g.add_argument("--seed", type=_number(int, 0, maximum=2**32), default=0,
                   help="the check's random directions and the digits' split (default: 0)")
    g.set_defaults(func=_gradcheck)
    e = sub.add_parser("export", help="write a saved model (minidl train's model.npz) as an ONNX file "
                                      "(needs pip install -e \".[onnx]\")")
    e.add_argument("model", help="a model saved by minidl (model.save / minidl train)")
    e.add_argument("output", help="the ONNX file to write, e.g. model.onnx")
    e.add_argument("--input-shape", type=_shape, required=True,
                   help="one sample's shape without the batch axis, e.g. 1,8,8 (the batch axis stays dynamic)")
    e.set_defaults(func=_export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minidl", description="minidl: train, check and use small CNNs on numpy.")
    parser.add_argument("--version", action="version", version=f"minidl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _model_parsers(sub)
    _tool_parsers(sub)
    return parser


def main(argv=None) -> int:
    """The ``minidl`` command: ``train``, ``evaluate``, ``predict``, ``summary``, ``gradcheck``, ``export``.

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
    try:
        return args.func(args)
    except CommandError as exc:  # one line, no traceback
        print(exc.line(), file=sys.stderr)
        return exc.status
    except BrokenPipeError:  # stdout closed early (minidl predict ... | head): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's advice: no second error at exit
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
