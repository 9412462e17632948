"""sphinx-gallery hooks, referred to by name in ``conf.py`` (so the configuration pickles)."""

from __future__ import annotations

import tempfile
from pathlib import Path

# the gallery's order: the tutorial first, then the short examples, then the longer scripts
ORDER = [
    "plot_digits_tutorial.py",
    "plot_learning_curves.py",
    "plot_check_a_gradient.py",
    "custom_layer_gradcheck.py",
    "train_digits.py",
    "residual_digits.py",
]

_OUT = Path(tempfile.mkdtemp(prefix="minidl-gallery-"))


def reset_argv(gallery_conf, script_vars):
    """Command-line arguments for an example run by the gallery: the examples' defaults, except
    that ``train_digits.py`` saves its model outside the source tree."""
    if Path(script_vars["src_file"]).name == "train_digits.py":
        return ["--out", str(_OUT / "digits_cnn.npz")]
    return []


class ExampleOrder:
    """``within_subsection_order``: :data:`ORDER` first, anything else after, by name."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        name = Path(filename).name
        return (ORDER.index(name), name) if name in ORDER else (len(ORDER), name)
