"""Pictures of a CNN: its first filters, its feature maps, the images it gets wrong."""

from __future__ import annotations

import numpy as np

from ..validation import check_int
from ._common import first_conv, grid, layer_names, positive_count, pyplot

__all__ = ["filters", "feature_maps", "misclassified"]


def filters(model_or_layer, channel=None, fig=None):
    """Show the first Conv2D's kernels: one image per output channel.

    Parameters
    ----------
    model_or_layer : a model (Sequential, Graph, any layer) or a Conv2D
        The first Conv2D found (in ``named_parameters`` order) is shown.
    channel : int, optional
        For an input with several channels: the input channel to show;
        default: the mean over the input channels.
    fig : matplotlib Figure or SubFigure, optional
        An empty figure to draw the grid into; default: a new one.

    Returns
    -------
    matplotlib.figure.Figure
        One Axes per output channel (titled with its index) showing
        ``weight[o, channel]`` (kh, kw), all on one colour scale symmetric
        around 0 (red positive, blue negative).

    Examples
    --------
    >>> import minidl as mdl
    >>> model = mdl.models.reference_cnn(rng=0)
    >>> fig = mdl.plot.filters(model)
    >>> len(fig.axes) - 1, fig.axes[0].images[0].get_array().shape   # 16 kernels and a colour bar
    (16, (3, 3))
    >>> import matplotlib.pyplot as plt; plt.close(fig)
    """
    fn = "filters"
    path, conv = first_conv(model_or_layer, fn)
    w = np.asarray(conv.weight.data)
    if channel is None:
        kernels = w.mean(axis=1)
    else:
        c = check_int(channel, "channel", f"minidl.plot.{fn}", 0)
        if c >= w.shape[1]:
            raise ValueError(f"minidl.plot.{fn}: channel must be < {w.shape[1]}, the input channels of the Conv2D "
                             f"{path or '(the layer)'!r}. Received: channel={channel!r}")
        kernels = w[:, c]
    limit = float(np.abs(kernels).max()) or 1.0
    fig, axes = grid(fig, len(kernels), fn)
    for o, (a, k) in enumerate(zip(axes, kernels)):
        image = a.imshow(k, cmap="RdBu_r", vmin=-limit, vmax=limit)
        a.set_title(str(o), fontsize="small")
    fig.colorbar(image, ax=axes, shrink=0.8)
    what = "mean over input channels" if channel is None or w.shape[1] == 1 else f"input channel {channel}"
    fig.suptitle(f"Conv2D {path or ''} filters {tuple(w.shape)} ({what})".replace("  ", " "))
    return fig


def _default_layer(model, fn):
    """The ReLU after the first Conv2D (reading it alone, possibly through BatchNorm2D / Dropout
    layers that do), else that Conv2D."""
    from ..graph import Graph, walk_layers
    from ..layers import BatchNorm2D, Dropout, Dropout2D, Identity, ReLU

    path, conv = first_conv(model, fn)
    for gpath, g in walk_layers(model, ""):
        nodes = g.nodes if isinstance(g, Graph) else {}
        node = next((n for n, (layer, _) in nodes.items() if layer is conv), None)
        while node is not None:
            reader = next((n for n, (_, inputs) in nodes.items() if inputs == (node,)), None)
            if reader is None or not isinstance(nodes[reader][0], (ReLU, BatchNorm2D, Dropout, Dropout2D, Identity)):
                break
            if isinstance(nodes[reader][0], ReLU):
                return f"{gpath}.{reader}" if gpath else reader
            node = reader
    return path


def _check_input(x, fn):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"minidl.plot.{fn}: x must be a numpy.ndarray of one input (C, H, W) or (1, C, H, W). "
                        f"Received: {type(x).__name__}")
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"minidl.plot.{fn}: x must be ONE input of shape (C, H, W) or (1, C, H, W). "
                         f"Received: x of shape {x.shape}. Pick a sample, e.g. X_test[0].")
    return x


class _Reached(Exception):
    """Raised by feature_maps' probe once the layer has run."""


def feature_maps(model, x, layer=None, max_maps=16, fig=None):
    """Show what one layer computes for one input: its output channels as images.

    The model runs in eval mode (Dropout off, BatchNorm's running statistics);
    its mode and every layer's backward cache are as they were afterwards.

    Parameters
    ----------
    model : a model (Sequential, Graph or any layer)
    x : ndarray, shape (C, H, W) or (1, C, H, W)
        One input, of the model's dtype.
    layer : str, optional
        The layer whose output is shown, by its dotted name inside the model:
        a Graph's node name (``"stem_relu"``), a Sequential's index (``"1"``),
        ``"block.conv"`` for a node of a nested graph. Default: the ReLU that
        follows the first Conv2D (directly, or after a BatchNorm2D or Dropout),
        else that Conv2D.
    max_maps : int >= 1, default 16
        Show the first ``max_maps`` channels.
    fig : matplotlib Figure or SubFigure, optional
        An empty figure to draw the grid into; default: a new one.

    Returns
    -------
    matplotlib.figure.Figure
        One Axes per channel shown, titled with its index, all on one colour scale.

    Shape
    -----
    ``x``: (C, H, W) or (1, C, H, W); one panel per channel of the layer's output, at most
    ``max_maps``.

    Examples
    --------
    >>> import minidl as mdl
    >>> model = mdl.models.reference_cnn(rng=0)
    >>> (_, _), (X_test, _) = mdl.data.load_digits()
    >>> fig = mdl.plot.feature_maps(model, X_test[0], max_maps=4)   # after layer "1", the ReLU
    >>> len(fig.axes) - 1, fig.axes[0].images[0].get_array().shape
    (4, (8, 8))
    >>> import matplotlib.pyplot as plt; plt.close(fig)
    """
    from ..graph import layer_state_restored, walk_layers

    fn = "feature_maps"
    x = _check_input(x, fn)
    max_maps = positive_count(max_maps, "max_maps", fn)
    name = _default_layer(model, fn) if layer is None else layer
    layers = dict(walk_layers(model, ""))
    if not isinstance(name, str) or name not in layers or name == "":
        raise ValueError(f"minidl.plot.{fn}: unknown layer {name!r}. The model's layers are "
                         f"{layer_names(model)[:40]}; pass one of them (a Graph node name or a Sequential index).")
    target, captured = layers[name], []

    def capture(*inputs):
        captured.append(type(target).forward(target, *inputs))
        raise _Reached  # the rest of the model is not needed

    with layer_state_restored(model):  # mode flags, caches: as they were on exit
        model.eval()
        vars(target)["forward"] = capture  # removed again on exit with the other attributes
        try:
            model.forward(x)
        except _Reached:
            pass
    if not captured:
        raise ValueError(f"minidl.plot.{fn}: layer {name!r} did not run in the model's forward pass (the output "
                         "does not depend on it). Pick a layer on the path to the output.")
    out = np.asarray(captured[0])
    if out.ndim != 4:
        raise ValueError(f"minidl.plot.{fn}: layer {name!r} ({type(target).__name__}) outputs shape {out.shape}; "
                         "feature maps are (1, C, H, W). Pick a convolution, activation or pooling layer.")
    maps = out[0, :max_maps]
    fig, axes = grid(fig, len(maps), fn)
    lo, hi = float(maps.min()), float(maps.max())
    for c, (a, m) in enumerate(zip(axes, maps)):
        image = a.imshow(m, cmap="viridis", vmin=lo, vmax=hi if hi > lo else lo + 1)
        a.set_title(str(c), fontsize="small")
    fig.colorbar(image, ax=axes, shrink=0.8)
    fig.suptitle(f"layer {name} ({type(target).__name__}): {len(maps)} of {out.shape[1]} channels")
    return fig


def _image(x):
    """One sample as imshow wants it: (H, W) gray or (H, W, 3) in [0, 1]."""
    if x.ndim == 2:
        return x, "gray"
    if x.shape[0] == 1:
        return x[0], "gray"
    rgb = np.moveaxis(x, 0, -1).astype(np.float64)
    span = rgb.max() - rgb.min()
    return (rgb - rgb.min()) / (span if span > 0 else 1.0), None


def misclassified(x, y_true, y_pred, max_images=25, fig=None):
    """Show the samples the model got wrong, titled "true→predicted".

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W) with C = 1 or 3, or (N, H, W)
        The inputs, e.g. the test images.
    y_true, y_pred : array-like
        Integer labels (N,), or class scores (N, K) such as ``trainer.predict(x)``.
    max_images : int >= 1, default 25
        Show the first ``max_images`` misclassified samples (in data order).
    fig : matplotlib Figure or SubFigure, optional
        An empty figure to draw the grid into; default: a new one.

    Returns
    -------
    matplotlib.figure.Figure
        One Axes per sample shown; with nothing misclassified, one Axes
        saying "no misclassified samples".

    Shape
    -----
    ``x``: (N, C, H, W) or (N, H, W) images; ``y_true``: (N,); ``y_pred``: (N,) labels or
    (N, K) scores.

    Examples
    --------
    >>> images = np.zeros((4, 1, 8, 8), np.float32)
    >>> fig = misclassified(images, [0, 1, 2, 3], [0, 7, 2, 1])
    >>> [a.get_title() for a in fig.axes]
    ['1→7', '3→1']
    >>> import matplotlib.pyplot as plt; plt.close(fig)
    """
    from ..metrics import class_labels

    fn = "misclassified"
    if not isinstance(x, np.ndarray) or x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[1] not in (1, 3)):
        raise ValueError(f"minidl.plot.{fn}: x must be images of shape (N, C, H, W) with C = 1 or 3, or (N, H, W). "
                         f"Received: {type(x).__name__} of shape {getattr(x, 'shape', None)}")
    y_true, y_pred = class_labels(y_true, "y_true", fn), class_labels(y_pred, "y_pred", fn)
    if not len(x) == len(y_true) == len(y_pred):
        raise ValueError(f"minidl.plot.{fn}: x, y_true and y_pred must have one entry per sample. "
                         f"Received: {len(x)} images, {len(y_true)} and {len(y_pred)} labels")
    max_images = positive_count(max_images, "max_images", fn)
    wrong = np.flatnonzero(y_true != y_pred)
    if len(wrong) == 0:
        fig = pyplot(fn).figure(figsize=(4, 1.5)) if fig is None else fig
        a = fig.subplots()
        a.axis("off")
        a.text(0.5, 0.5, f"no misclassified samples (of {len(x)})", ha="center", va="center")
        return fig
    shown = wrong[:max_images]
    fig, axes = grid(fig, len(shown), fn, cell=1.1)
    for a, i in zip(axes, shown):
        image, cmap = _image(x[i])
        a.imshow(image, cmap=cmap)
        a.set_title(f"{y_true[i]}→{y_pred[i]}", fontsize="small")
    fig.suptitle(f"misclassified: {len(wrong)} of {len(x)}" + (f" (first {len(shown)})" if len(shown) < len(wrong)
                                                                 else ""))
    return fig
