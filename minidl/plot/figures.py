"""Saving the figures a script drew: what ``python examples/plot_x.py`` does at its end."""

from __future__ import annotations

import os
from pathlib import Path

from ..io.archive import write_atomic
from ._common import pyplot

__all__ = ["save_figures"]


def save_figures(script, dpi=100) -> list:
    """Save every open pyplot figure as a PNG next to ``script``, print the paths and return them.

    Figure ``n`` (pyplot's number) of ``folder/plot_x.py`` becomes ``folder/plot_x_<n>.png``,
    written atomically (a failed save leaves an older PNG intact). The examples call it at their
    end when run as scripts: ``if "__file__" in globals(): mdl.plot.save_figures(__file__)``
    (sphinx-gallery, which shows the figures in the gallery itself, sets no ``__file__``).

    Parameters
    ----------
    script : str or os.PathLike
        The script's path, usually ``__file__``.
    dpi : int, default 100

    Returns
    -------
    list of pathlib.Path
        The files written, in figure order (empty when no figure is open).

    Raises
    ------
    TypeError
        ``script`` is not a path.

    Examples
    --------
    >>> import os, tempfile
    >>> import matplotlib.pyplot as plt
    >>> plt.close("all")
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     fig = plt.figure(num=1)
    ...     paths = save_figures(os.path.join(tmp, "plot_demo.py"))  # doctest: +ELLIPSIS
    ...     print([p.name for p in paths], paths[0].stat().st_size > 0)
    ...     plt.close(fig)
    wrote .../plot_demo_1.png
    ['plot_demo_1.png'] True
    """
    if not isinstance(script, (str, os.PathLike)):
        raise TypeError(f"minidl.plot.save_figures: script must be the script's path, e.g. __file__. "
                        f"Received: {type(script).__name__} {script!r:.100}")
    plt = pyplot("save_figures")
    script = Path(script)
    paths = []
    for number in plt.get_fignums():
        path = script.with_name(f"{script.stem}_{number}.png")
        fig = plt.figure(number)
        write_atomic(path, lambda f, fig=fig: fig.savefig(f, format="png", dpi=dpi), "minidl.plot.save_figures")
        print(f"wrote {path}")
        paths.append(path)
    return paths
