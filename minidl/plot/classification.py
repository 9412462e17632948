"""The confusion matrix as an annotated image."""

from __future__ import annotations

import numpy as np

from .. import metrics
from ._common import axes_for

__all__ = ["confusion_matrix"]


def confusion_matrix(y_true, y_pred, num_classes=None, normalize=None, ax=None):
    """Draw the confusion matrix as an image with each cell's value written in it.

    Parameters
    ----------
    y_true, y_pred : array-like
        Integer labels (N,), or class scores (N, K) such as ``trainer.predict(X)``
        (their arg-max is the label).
    num_classes : int >= 1, optional
        Default: the largest label + 1.
    normalize : {None, 'true', 'pred', 'all'}
        Show fractions of each true class (row), each predicted class
        (column) or of all samples instead of counts
        (:func:`minidl.metrics.confusion_matrix`).
    ax : matplotlib Axes, optional
        Default: a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        Rows are the true classes, columns the predicted ones.

    Shape
    -----
    ``y_true``, ``y_pred``: (N,) labels or (N, K) scores; the image: (num_classes, num_classes).

    Examples
    --------
    >>> import minidl as mdl
    >>> fig = mdl.plot.confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2])
    >>> fig.axes[0].images[0].get_array().tolist()
    [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    >>> [t.get_text() for t in fig.axes[0].texts][:3]
    ['1', '0', '0']
    >>> import matplotlib.pyplot as plt; plt.close(fig)
    """
    cm = metrics.confusion_matrix(y_true, y_pred, num_classes, normalize)
    k = cm.shape[0]
    fig, (a,) = axes_for(ax, 1, "confusion_matrix", figsize=(2.4 + 0.45 * k, 1.3 + 0.45 * k))
    image = a.imshow(cm, cmap="Blues", vmin=0, vmax=max(cm.max(initial=0), 1e-12) if normalize else None)
    threshold = (cm.max(initial=0) + cm.min(initial=0)) / 2
    for (i, j), value in np.ndenumerate(cm):
        a.text(j, i, f"{value:.2f}" if normalize else str(value), ha="center", va="center",
               fontsize="small" if k <= 12 else "xx-small", color="white" if value > threshold else "black")
    a.set_xticks(range(k))
    a.set_yticks(range(k))
    a.set_xlabel("predicted")
    a.set_ylabel("true")
    a.set_title("confusion matrix" + (f" (normalized over {normalize})" if normalize else ""))
    fig.colorbar(image, ax=a, fraction=0.046, pad=0.04)
    return fig
