"""The grid of configurations that ``minidl gradcheck`` checks."""

from __future__ import annotations

import numpy as np

from . import layers, losses
from .gradcheck import gradcheck
from .testing import tie_free

__all__ = ["run_grid"]


def away_from_zero(shape, rng) -> np.ndarray:
    """Standard-normal values pushed at least 0.1 away from ReLU's kink."""
    x = rng.standard_normal(shape)
    return x + 0.1 * np.sign(x)


def _cases(rng):
    conv_grid = [
        dict(kernel_size=3), dict(kernel_size=2, padding="same"), dict(kernel_size=4, padding="same"),
        dict(kernel_size=3, stride=2), dict(kernel_size=3, stride=2, padding="same"),
        dict(kernel_size=3, stride=3, padding="same"), dict(kernel_size=3, dilation=2, padding=1),
        dict(kernel_size=(2, 3), stride=(2, 1), padding=(1, 0)), dict(kernel_size=3, bias=False),
        dict(kernel_size=7),  # 1x1 output on a 7x7 input
    ]
    for cfg in conv_grid:
        yield layers.Conv2D(2, 3, rng=rng, **cfg), (rng.standard_normal((2, 2, 7, 7)),)
    yield layers.ReLU(), (away_from_zero((2, 3, 4, 4), rng),)
    for k, s, p in [(2, None, 0), (3, 2, 1), (3, 1, 0), ((2, 3), (1, 2), 0)]:
        yield layers.MaxPool2D(k, s, p), (tie_free((2, 2, 7, 7), rng),)
    yield layers.Flatten(), (rng.standard_normal((2, 3, 4, 4)),)
    yield layers.Dense(5, 4, rng=rng), (rng.standard_normal((3, 5)),)
    yield layers.Dense(5, 4, bias=False, rng=rng), (rng.standard_normal((3, 5)),)
    yield layers.Add(), (rng.standard_normal((2, 3)), rng.standard_normal((2, 3)))
    yield layers.Concat(axis=1), (rng.standard_normal((2, 1, 3)), rng.standard_normal((2, 2, 3)))
    for smoothing in (0.0, 0.1):
        yield (losses.SoftmaxCrossEntropy(label_smoothing=smoothing),
               (rng.standard_normal((4, 5)), rng.integers(0, 5, 4)))
    probs = rng.dirichlet(np.ones(5), size=4)
    yield losses.SoftmaxCrossEntropy(), (rng.standard_normal((4, 5)), probs)


def run_grid(seed=0):
    """Gradcheck every built-in layer on a fixed grid; returns the reports.

    Parameters
    ----------
    seed : int, default 0
        Seeds the layers' weights, the inputs and the upstream gradients.

    Returns
    -------
    list of GradcheckReport
        One per configuration (convolutions with strides, padding and dilation,
        ReLU, max pooling, Flatten, Dense, Add, Concat, cross-entropy).

    Examples
    --------
    >>> reports = run_grid()
    >>> len(reports), all(r.passed for r in reports)
    (23, True)
    """
    rng = np.random.default_rng(seed)
    return [gradcheck(layer, *inputs, seed=seed) for layer, inputs in _cases(rng)]
