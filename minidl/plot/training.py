"""Training curves: the History's metrics per epoch, NormHistory's norms per batch."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ._common import axes_for

__all__ = ["learning_curves", "norms"]


def _series(history, fn):
    """``(dict of str -> list of float, epochs or None)`` from a History or its dict."""
    if not isinstance(history, Mapping):
        raise TypeError(f"minidl.plot.{fn}: history must be a History (what Trainer.fit returns) or its dict "
                        f"of metric -> list. Received: {type(history).__name__}")
    data = dict(getattr(history, "history", history))
    if not data or not all(isinstance(k, str) and np.ndim(v) == 1 and len(v) for k, v in data.items()):
        raise ValueError(f"minidl.plot.{fn}: history must map metric names to non-empty lists of "
                         f"per-epoch values. Received: {history!r:.200}. Train first (history = trainer.fit(...)).")
    return data, getattr(history, "epoch", None)


def learning_curves(history, metrics=None, ax=None):
    """Plot the metrics of a training run per epoch: train and validation curves.

    Parameters
    ----------
    history : History or dict of str -> list of float
        What :meth:`minidl.Trainer.fit` returns (or ``history.history``, or
        the ``"history"`` of ``minidl train``'s ``history.json``).
    metrics : list of str, optional
        The panels, one per metric, e.g. ``["loss", "accuracy"]``; each
        shows ``metric`` (train) and ``val_metric`` (validation) when logged.
        Default: every logged metric without the ``val_`` prefix.
    ax : matplotlib Axes, or a sequence of one Axes per metric, optional
        Where to draw; default: a new figure with the panels side by side.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on (not shown: call ``plt.show()`` or ``fig.savefig``).

    Examples
    --------
    >>> import minidl as mdl
    >>> fig = mdl.plot.learning_curves({"loss": [1.2, 0.7, 0.5], "val_loss": [1.3, 0.9, 0.8],
    ...                                 "accuracy": [0.6, 0.8, 0.9]})
    >>> [a.get_ylabel() for a in fig.axes]
    ['loss', 'accuracy']
    >>> [line.get_label() for line in fig.axes[0].lines]
    ['train', 'validation']
    >>> import matplotlib.pyplot as plt; plt.close(fig)
    """
    fn = "learning_curves"
    data, epoch_index = _series(history, fn)
    if metrics is None:
        metrics = [k for k in data if not k.startswith("val_")] or [k[4:] for k in data]
    elif isinstance(metrics, str):
        metrics = [metrics]
    if not isinstance(metrics, (list, tuple)) or not metrics:
        raise TypeError(f"minidl.plot.{fn}: metrics must be a list of metric names or None. Received: {metrics!r}")
    for m in metrics:
        if m not in data and f"val_{m}" not in data:
            raise ValueError(f"minidl.plot.{fn}: metric {m!r} is not in the history, which logged "
                             f"{sorted(data)}. Pass metrics from that list (without 'val_').")
    fig, axes = axes_for(ax, len(metrics), fn, figsize=(0.6 + 4.6 * len(metrics), 3.8))
    from matplotlib.ticker import MaxNLocator

    for a, m in zip(axes, metrics):
        for key, label in ((m, "train"), (f"val_{m}", "validation")):
            if key in data:
                values = data[key]
                x = (np.asarray(epoch_index) + 1 if epoch_index is not None and len(epoch_index) == len(values)
                     else np.arange(1, len(values) + 1))
                a.plot(x, values, marker="o", markersize=3, label=label)
        a.set_xlabel("epoch")
        a.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # one epoch: the tick 1, not 0.945...1.05
        a.set_ylabel(m)
        a.grid(True, alpha=0.3)
        a.legend()
    return fig


def norms(recorder, ax=None):
    """Plot per-layer gradient and weight norms over training (two panels, log y).

    The picture of why a network does or does not learn: vanishing gradients
    (the first layers' norms orders of magnitude below the last's), exploding
    ones, weights that do not move.

    Parameters
    ----------
    recorder : :class:`minidl.callbacks.NormHistory`
        After a ``fit`` it was passed to (``callbacks=[recorder]``).
    ax : a sequence of two matplotlib Axes, optional
        For the gradient and the weight norms; default: a new figure.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import minidl as mdl
    >>> rec = mdl.NormHistory()
    >>> rec.steps, rec.grad_norms, rec.weight_norms = [0, 1], {"0.weight": [0.5, 0.4]}, {"0.weight": [2.0, 2.1]}
    >>> fig = mdl.plot.norms(rec)
    >>> [a.get_title() for a in fig.axes], fig.axes[0].get_yscale()
    (['gradient norm', 'weight norm'], 'log')
    >>> import matplotlib.pyplot as plt; plt.close(fig)
    """
    fn = "norms"
    if not all(hasattr(recorder, a) for a in ("grad_norms", "weight_norms", "steps")):
        raise TypeError(f"minidl.plot.{fn}: expected a minidl.callbacks.NormHistory (with grad_norms, weight_norms "
                        f"and steps). Received: {type(recorder).__name__}")
    steps = list(recorder.steps)
    if not steps:
        raise RuntimeError(f"minidl.plot.{fn}: the NormHistory has no records yet. Pass it to Trainer.fit "
                           "(callbacks=[recorder]) first, then plot it.")
    fig, axes = axes_for(ax, 2, fn, figsize=(11.5, 4.2))
    for a, title, series in ((axes[0], "gradient norm", recorder.grad_norms),
                             (axes[1], "weight norm", recorder.weight_norms)):
        for name, values in series.items():
            if len(values) != len(steps):
                raise ValueError(f"minidl.plot.{fn}: {name!r} has {len(values)} {title}s for {len(steps)} steps.")
            a.plot(steps, values, label=name, linewidth=1)
        a.set_yscale("log")
        a.set_xlabel("batch")
        a.set_title(title)
        a.grid(True, alpha=0.3)
    axes[1].legend(fontsize="small", ncol=1 + len(recorder.weight_norms) // 8)
    return fig
