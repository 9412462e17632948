"""The ``minidl`` command: ``minidl train``, ``minidl gradcheck [MODEL.npz]`` and ``minidl export``.

One module per command family: :mod:`.train`, :mod:`.tools` (gradcheck, export);
argparse value types and the datasets in :mod:`._args`; printed reports in :mod:`.report`.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from ._args import DATASETS, MNIST_EPOCHS, _number, _shape
from .pictures import PICTURES, write_pictures  # noqa: F401 (minidl.cli.PICTURES, as before)
from .report import confusion_matrix, format_confusion  # noqa: F401 (minidl.cli.confusion_matrix, as before)
from .tools import _export, _gradcheck
from .train import MODELS, _train

__all__ = ["main"]


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
