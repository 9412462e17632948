"""Shared helpers of :mod:`minidl.plot`: the lazy matplotlib import, figures and image grids."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..validation import check_int


def pyplot(fn: str):
    """``matplotlib.pyplot``, imported on first use; ImportError naming ``fn`` and the fix."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(f"minidl.plot.{fn} needs matplotlib: pip install 'minidl[plot]'") from None
    return plt


def axes_for(ax, count: int, fn: str, figsize):
    """``(figure, [count Axes])``: the given Axes (one, or a sequence of ``count``), or new ones in a row."""
    plt = pyplot(fn)
    if ax is None:
        fig, axes = plt.subplots(1, count, figsize=figsize, squeeze=False)
        # fixed margins, no layout engine: constrained layout would triple the time of savefig
        fig.subplots_adjust(left=0.95 / figsize[0], right=1 - 0.45 / figsize[0], bottom=0.6 / figsize[1],
                            top=1 - 0.55 / figsize[1], wspace=0.35)
        return fig, list(axes[0])
    axes = list(ax) if isinstance(ax, (Sequence, np.ndarray)) else [ax]
    if len(axes) != count or not all(hasattr(a, "plot") and hasattr(a, "figure") for a in axes):
        raise ValueError(f"minidl.plot.{fn}: ax must be None, or {count} matplotlib Axes (one per panel). "
                         f"Received: ax={ax!r:.100}. Pass ax=None to get a new figure.")
    return axes[0].figure, axes


def grid(fig, count: int, fn: str, cell: float = 1.2, ncols: int | None = None):
    """``(figure, [count Axes])`` in a near-square grid (no Axes in unused cells) on ``fig`` or a new figure."""
    plt = pyplot(fn)
    ncols = ncols or max(1, math.ceil(math.sqrt(count)))
    nrows = max(1, math.ceil(count / ncols))
    if fig is None:
        width, height = cell * ncols + 1.0, cell * nrows + 0.8
        fig = plt.figure(figsize=(width, height))
        fig.subplots_adjust(left=0.2 / width, right=1 - 0.2 / width, bottom=0.15 / height, top=1 - 0.7 / height,
                            wspace=0.15, hspace=0.45)
    elif not hasattr(fig, "subplots"):
        raise TypeError(f"minidl.plot.{fn}: fig must be None or a matplotlib Figure (or SubFigure) to draw "
                        f"the grid into. Received: {type(fig).__name__}")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for a in axes:
        a.set_xticks([])
        a.set_yticks([])
    for a in axes[count:]:
        a.remove()
    return fig, list(axes[:count])


def positive_count(value, name: str, fn: str) -> int:
    return check_int(value, name, f"minidl.plot.{fn}", 1)


def first_conv(model, fn: str):
    """``(path, Conv2D)``: ``model`` itself or the first Conv2D inside it (in named order)."""
    from ..graph import walk_layers
    from ..layers import Conv2D, Layer

    if not isinstance(model, Layer):
        raise TypeError(f"minidl.plot.{fn}: expected a minidl model or layer. Received: {type(model).__name__}")
    for path, layer in walk_layers(model, ""):
        if isinstance(layer, Conv2D):
            return path, layer
    raise ValueError(f"minidl.plot.{fn}: the model has no Conv2D layer. Received: {type(model).__name__} "
                     f"with layers {layer_names(model)[:12]}. Pass a model with a convolution, or the Conv2D itself.")


def layer_names(model) -> list[str]:
    """The dotted names of the layers inside ``model`` (``"0"``, ``"block.conv"``), model excluded."""
    from ..graph import walk_layers

    return [path for path, _ in walk_layers(model, "")][1:]
