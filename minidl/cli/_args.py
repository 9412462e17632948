"""Shared by the commands: argparse value types and the datasets the commands read."""

from __future__ import annotations

import argparse
import math


class CommandError(Exception):
    """A command's one-line error: :func:`minidl.cli.main` prints ``<where>: error: <message>`` on
    stderr (whitespace folded to one line) and returns ``status``."""

    def __init__(self, where: str, message, status: int = 2):
        super().__init__(message)
        self.where, self.status = where, status

    def line(self) -> str:
        return f"{self.where}: error: {' '.join(str(self).split())}"


#: ``minidl train --dataset``: the MNIST family is read from ``--data-dir`` (mdl.data.load_mnist).
DATASETS = {"digits": "scikit-learn digits", "mnist": "MNIST", "fashion": "Fashion-MNIST", "kmnist": "KMNIST"}

#: One sample's shape in each of :data:`DATASETS`.
SAMPLE_SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "fashion": (1, 28, 28), "kmnist": (1, 28, 28)}

#: Default epochs of the MNIST model (``models.mnist_cnn``) on the MNIST family.
MNIST_EPOCHS = 3


def test_split(mdl, args, where, meta):
    """``(X_test, y_test)`` of ``--dataset`` for a saved model: the file's dataset and split seed
    (``meta``, what minidl train stored) unless given; CommandError if it cannot be read."""
    args.dataset = args.dataset or meta.get("dataset", "digits")
    args.seed = meta.get("seed", 0) if args.seed is None else args.seed
    args.model = "reference"  # load_dataset: the MNIST family is read for the MNIST CNN
    data, problem = load_dataset(mdl, args)
    if problem:
        raise CommandError(where, problem)
    return data[1]


def load_dataset(mdl, args):
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
