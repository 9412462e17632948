"""The errors of a :func:`minidl.check_model` report, one bar per layer."""

from __future__ import annotations

import numpy as np

from ._common import axes_for

__all__ = ["gradient_errors"]


def gradient_errors(report, ax=None):
    """Draw each layer's largest relative gradient error as a bar (log scale); failing layers in red.

    Parameters
    ----------
    report : minidl.ModelCheck
        What :func:`minidl.check_model` returned.
    ax : matplotlib Axes, optional
        Default: a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        One bar per checked layer, labelled with its path, in the order the batch reached them;
        the error is the largest ``max_rel_err`` over the layer's input and parameter gradients.

    Raises
    ------
    TypeError
        ``report`` is not a check_model report.

    Examples
    --------
    >>> import minidl as mdl
    >>> x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    >>> fig = mdl.plot.gradient_errors(mdl.check_model(mdl.models.reference_cnn(0), x))
    >>> len(fig.axes[0].patches)
    8
    >>> import matplotlib.pyplot as plt; plt.close(fig)
    """
    if not hasattr(report, "rows") or not hasattr(report, "first_failure"):
        raise TypeError(f"minidl.plot.gradient_errors: report must be what minidl.check_model returns. "
                        f"Received: {type(report).__name__}")
    rows = [row for row in report.rows if row.tensors]
    errors = [max(max(t.max_rel_err for t in row.tensors), 1e-17) for row in rows]
    fig, (a,) = axes_for(ax, 1, "gradient_errors", figsize=(max(4.0, 0.45 * len(rows) + 1.5), 3.2))
    colors = ["tab:blue" if row.passed else "tab:red" for row in rows]
    a.bar(np.arange(len(rows)), errors, color=colors)
    a.set_yscale("log")
    a.set_xticks(np.arange(len(rows)))
    a.set_xticklabels([f"{row.path} {row.layer.split('(')[0]}" for row in rows], rotation=60, ha="right",
                      fontsize="small")
    a.set_ylabel("largest relative error")
    verdict = "all layers pass" if report.passed else f"first failure: {report.first_failure}"
    a.set_title(f"check_model: {verdict}")
    fig.subplots_adjust(bottom=0.45)
    return fig
