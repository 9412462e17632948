"""Ready-made architectures."""

from __future__ import annotations

import numpy as np

from . import layers
from .graph import Graph, Sequential
from .layers._init import as_generator

__all__ = ["reference_cnn", "residual_cnn", "digits_best", "digits_best_recipe", "mnist_cnn"]


def reference_cnn(rng=None, dtype=np.float32) -> Sequential:
    """The reference digits CNN (for 1x8x8 inputs, 10 classes).

    Conv 1->16 k3 same, ReLU, MaxPool 2, Conv 16->32 k3 same, ReLU, MaxPool 2,
    Flatten, Dense 128->10. Parameter names match ``torch.nn.Sequential`` of the
    same layers (``"0.weight"``, ``"3.weight"``, ``"7.weight"``).

    Parameters
    ----------
    rng : int, numpy.random.Generator or None
        Source of every layer's initialisation (in layer order).
    dtype : floating dtype, default float32

    Returns
    -------
    Sequential
        Input (N, 1, 8, 8), output (N, 10) logits.

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


def mnist_cnn(rng=None, dtype=np.float32) -> Sequential:
    """The MNIST CNN (1x28x28 inputs, 10 classes): ``minidl train --dataset mnist``'s model.

    Conv 1->32 k5 same, ReLU, MaxPool 2, Conv 32->64 k5 same, ReLU, MaxPool 2,
    Flatten, Dense 3136->128, ReLU, Dense 128->10 -- the MNIST-shaped CNN of
    ``benchmarks/run.py``.

    Parameters
    ----------
    rng : int, numpy.random.Generator or None
        Source of every layer's initialisation (in layer order).
    dtype : floating dtype, default float32

    Returns
    -------
    Sequential
        Input (N, 1, 28, 28), output (N, 10) logits.

    Examples
    --------
    >>> mnist_cnn(0).num_parameters()
    454922
    """
    rng = as_generator(rng, "mnist_cnn")
    return Sequential(
        layers.Conv2D(1, 32, 5, padding="same", dtype=dtype, rng=rng), layers.ReLU(), layers.MaxPool2D(2),
        layers.Conv2D(32, 64, 5, padding="same", dtype=dtype, rng=rng), layers.ReLU(), layers.MaxPool2D(2),
        layers.Flatten(), layers.Dense(3136, 128, dtype=dtype, rng=rng), layers.ReLU(),
        layers.Dense(128, 10, dtype=dtype, rng=rng),
    )


def residual_cnn(rng=None, channels=16, dtype=np.float32) -> Graph:
    """A small residual network for digits, built with :class:`~minidl.Graph`.

    stem conv -> ReLU -> [conv -> ReLU -> conv] + skip -> ReLU -> pool -> Dense.

    Parameters
    ----------
    rng : int, numpy.random.Generator or None
        Source of every layer's initialisation.
    channels : int, default 16
        Width of every convolution.
    dtype : floating dtype, default float32

    Returns
    -------
    Graph
        Input (N, 1, 8, 8), output (N, 10) logits.

    Examples
    --------
    >>> model = residual_cnn(0, channels=4)
    >>> model(np.zeros((2, 1, 8, 8), np.float32)).shape
    (2, 10)
    >>> model.nodes["skip"][1]  # the Add node's inputs: the fan-out of stem_relu
    ('stem_relu', 'conv2')
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


def digits_best(rng=None, dtype=np.float32, width=32, dropout=0.3) -> Sequential:
    """The best digits CNN (1x8x8 inputs, 10 classes): two VGG-style blocks with BatchNorm.

    [Conv w k3 same, BatchNorm, ReLU] x 2, MaxPool 2 (-> 4x4), [Conv 2w k3 same,
    BatchNorm, ReLU] x 2, MaxPool 2 (-> 2x2), Flatten, Dropout, Dense 8w -> 10;
    ``w = width``. Trained with :func:`digits_best_recipe` (``minidl train
    --model best``).

    Parameters
    ----------
    rng : int, numpy.random.Generator or None
        Source of every layer's initialisation (in layer order).
    dtype : floating dtype, default float32
    width : int, default 32
        Channels of the first block (the second has twice as many).
    dropout : float, default 0.3
        Dropout probability before the classifier.

    Returns
    -------
    Sequential
        Input (N, 1, 8, 8), output (N, 10) logits.

    Examples
    --------
    >>> digits_best(0).num_parameters()
    67946
    """
    rng = as_generator(rng, "digits_best")

    def block(c_in, c_out):
        return [layers.Conv2D(c_in, c_out, 3, padding="same", dtype=dtype, rng=rng),
                layers.BatchNorm2D(c_out, dtype=dtype), layers.ReLU()]

    w = width
    return Sequential(
        *block(1, w), *block(w, w), layers.MaxPool2D(2),
        *block(w, 2 * w), *block(2 * w, 2 * w), layers.MaxPool2D(2),
        layers.Flatten(), layers.Dropout(dropout, rng=rng), layers.Dense(8 * w, 10, dtype=dtype, rng=rng),
    )


def digits_best_recipe(model, epochs=30, lr=0.05, momentum=0.9, weight_decay=2e-3, label_smoothing=0.2,
                       max_shift=1, degrees=10.0) -> dict:
    """How :func:`digits_best` is trained: the keyword arguments for
    :class:`~minidl.Trainer` and :meth:`~minidl.Trainer.fit`.

    Nesterov SGD with weight decay on the weights only (biases and BatchNorm's
    affine parameters, the 1-D parameters, get none), cross-entropy with label
    smoothing, a cosine learning-rate schedule over ``epochs`` and random
    shifts and rotations of every training batch.

    Parameters
    ----------
    model : Layer
        The model to train (its parameters go to the optimizer).
    epochs : int, default 30
        The cosine schedule's length.
    lr, momentum, weight_decay : float
        SGD's (Nesterov).
    label_smoothing : float, default 0.2
    max_shift : int, default 1
        :class:`~minidl.data.transforms.RandomShift`'s, in pixels.
    degrees : float, default 10.0
        :class:`~minidl.data.transforms.RandomRotation`'s.

    Returns
    -------
    dict with ``optimizer``, ``loss`` (for the Trainer), ``callbacks`` and
    ``transform`` (for ``fit``)

    Examples
    --------
    >>> recipe = digits_best_recipe(digits_best(0), epochs=30)
    >>> sorted(recipe)
    ['callbacks', 'loss', 'optimizer', 'transform']
    """
    from . import data, losses, optim
    from .callbacks import LearningRateScheduler

    params = list(model.parameters())
    groups = [{"params": [p for p in params if p.data.ndim > 1], "weight_decay": weight_decay},
              {"params": [p for p in params if p.data.ndim <= 1], "weight_decay": 0.0}]
    optimizer = optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True)
    return {
        "optimizer": optimizer,
        "loss": losses.SoftmaxCrossEntropy(label_smoothing=label_smoothing),
        "callbacks": [LearningRateScheduler(optim.CosineAnnealingLR(optimizer, T_max=epochs))],
        "transform": data.Compose([data.RandomShift(max_shift), data.RandomRotation(degrees)]),
    }
