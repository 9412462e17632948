"""IDX (MNIST family), ``.npz`` and your own arrays: the code lives in :mod:`minidl.data.datasets`."""

from .data.datasets import MNIST_FILES, from_arrays, load_idx, load_mnist, load_npz

__all__ = ["load_idx", "load_mnist", "load_npz", "from_arrays", "MNIST_FILES"]
