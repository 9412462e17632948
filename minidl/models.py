"""Ready-made architectures."""

from __future__ import annotations

import numpy as np

from . import layers
from .graph import Graph, Sequential
from .layers._init import as_generator

__all__ = ["reference_cnn", "residual_cnn"]


def reference_cnn(rng=None, dtype=np.float32) -> Sequential:
    """The reference digits CNN (for 1x8x8 inputs, 10 classes).

    Conv 1->16 k3 same, ReLU, MaxPool 2, Conv 16->32 k3 same, ReLU, MaxPool 2,
    Flatten, Dense 128->10. Parameter names match ``torch.nn.Sequential`` of the
    same layers (``"0.weight"``, ``"3.weight"``, ``"7.weight"``).

    Examples
    --------
    >>> reference_cnn(np.random.default_rng(0)).num_parameters()
    6090
    """
    rng = as_generator(rng, "reference_cnn")
    return Sequential(
        layers.Conv2D(1, 16, 3, padding="same", dtype=dtype, rng=rng),
        layers.ReLU(),
        layers.MaxPool2D(2),
        layers.Conv2D(16, 32, 3, padding="same", dtype=dtype, rng=rng),
        layers.ReLU(),
        layers.MaxPool2D(2),
        layers.Flatten(),
        layers.Dense(128, 10, dtype=dtype, rng=rng),
    )


def residual_cnn(rng=None, channels=16, dtype=np.float32) -> Graph:
    """A small residual network for digits, built with :class:`~minidl.Graph`.

    stem conv -> ReLU -> [conv -> ReLU -> conv] + skip -> ReLU -> pool -> Dense.
    """
    rng = as_generator(rng, "residual_cnn")
    g = Graph()
    g.add("stem", layers.Conv2D(1, channels, 3, padding="same", dtype=dtype, rng=rng), "input")
    g.add("stem_relu", layers.ReLU(), "stem")
    g.add("conv1", layers.Conv2D(channels, channels, 3, padding="same", dtype=dtype, rng=rng), "stem_relu")
    g.add("relu1", layers.ReLU(), "conv1")
    g.add("conv2", layers.Conv2D(channels, channels, 3, padding="same", dtype=dtype, rng=rng), "relu1")
    g.add("skip", layers.Add(), ["stem_relu", "conv2"])
    g.add("relu2", layers.ReLU(), "skip")
    g.add("pool", layers.MaxPool2D(2), "relu2")
    g.add("flatten", layers.Flatten(), "pool")
    g.add("fc", layers.Dense(channels * 16, 10, dtype=dtype, rng=rng), "flatten")
    return g
