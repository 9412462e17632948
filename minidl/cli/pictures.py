"""The PNGs ``minidl train`` writes next to the model (needs matplotlib)."""

from __future__ import annotations

import os
import sys

#: The PNGs ``minidl train`` writes next to the model (with matplotlib), in this order.
PICTURES = ("learning_curve.png", "filters.png", "feature_maps.png", "confusion.png", "misclassified.png",
            "norms.png")


def write_pictures(mdl, out, title, history, model, X_test, y_test, pred, num_classes, norms) -> list | None:
    """Write :data:`PICTURES` to the folder ``out``; the paths written, or None without matplotlib.

    A picture that cannot be written (OSError) is reported on stderr, one line, and skipped.
    """
    try:
        import matplotlib
    except ImportError:
        return None
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # files only: no window, no GUI toolkit (a caller's pyplot is left alone)
    import matplotlib.pyplot as plt

    draw = {
        "learning_curve.png": lambda: mdl.plot.learning_curves(history, metrics=["loss", "accuracy"]),
        "filters.png": lambda: mdl.plot.filters(model),
        "feature_maps.png": lambda: mdl.plot.feature_maps(model, X_test[0]),
        "confusion.png": lambda: mdl.plot.confusion_matrix(y_test, pred, num_classes=num_classes),
        "misclassified.png": lambda: mdl.plot.misclassified(X_test, y_test, pred),
        "norms.png": lambda: mdl.plot.norms(norms),
    }
    written = []
    for name in PICTURES:
        path = os.path.join(out, name)
        fig = draw[name]()
        try:
            if name == "learning_curve.png":
                fig.suptitle(f"minidl {title}")
            fig.savefig(path, dpi=100)
            written.append(path)
        except OSError as exc:  # the model is saved already: say which picture is missing, go on
            print(f"minidl train: error: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        finally:
            plt.close(fig)
    return written
