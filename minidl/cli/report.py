"""What the commands print: a confusion matrix as text."""

from __future__ import annotations

import numpy as np

from .. import metrics


def confusion_matrix(y_true, y_pred, num_classes=10) -> np.ndarray:
    """``cm[i, j]`` = number of samples of true class ``i`` predicted as ``j``
    (:func:`minidl.metrics.confusion_matrix` with 10 classes by default)."""
    return metrics.confusion_matrix(y_true, y_pred, num_classes)


def format_confusion(cm) -> str:
    k = cm.shape[0]
    width = max(4, len(str(cm.max())) + 1)
    lines = ["true\\pred" + "".join(str(j).rjust(width) for j in range(k))]
    lines += [str(i).rjust(9) + "".join(str(v).rjust(width) for v in row) for i, row in enumerate(cm)]
    return "\n".join(lines)
