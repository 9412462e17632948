"""What ``minidl gradcheck`` checks: every registered layer, on the configurations it declares.

Each layer class declares its own small configurations in
:meth:`Layer.examples <minidl.layers.Layer.examples>`, and :func:`run_grid` reads the
one registry (:mod:`minidl.layers.registry`), so a new layer is checked as soon as it
is registered with examples, and listed as not checked when it has none.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import losses  # noqa: F401 - the losses register themselves on import
from .gradcheck import GradcheckReport, gradcheck
from .layers.base import Layer
from .layers.registry import REGISTRY
from .testing import away_from_zero  # noqa: F401 - its import path before it moved to minidl.testing

__all__ = ["run_grid", "GridResult"]


class GridResult(NamedTuple):
    """What :func:`run_grid` found: the reports, and the registered classes it could not check.

    Parameters
    ----------
    reports : list of GradcheckReport
        One per configuration, class by class in the registry's order.
    unchecked : list of str
        The names of the registered classes whose ``examples`` yield nothing.

    Examples
    --------
    >>> GridResult([], ["MyLayer"]).unchecked
    ['MyLayer']
    """

    reports: list[GradcheckReport]
    unchecked: list[str]


def _checked_examples(name, cls, rng):
    cases = list(cls.examples(rng))
    for case in cases:
        if not (isinstance(case, tuple) and len(case) == 2 and isinstance(case[0], Layer)
                and isinstance(case[1], tuple)):
            raise TypeError(f"run_grid: {name}.examples(rng) must yield (layer, inputs) pairs, inputs a "
                            f"tuple of forward's arguments. Received: {case!r:.200}")
    return cases


def run_grid(seed=0) -> GridResult:
    """Gradcheck every registered layer on the configurations its ``examples`` yields.

    Parameters
    ----------
    seed : int, default 0
        Each class's ``examples`` draws from its own ``numpy.random.default_rng(seed)``
        (so adding a class changes no other's configurations); also seeds the
        upstream gradients.

    Returns
    -------
    GridResult
        ``reports``: one :class:`~minidl.GradcheckReport` per configuration;
        ``unchecked``: the registered classes without examples.

    Raises
    ------
    TypeError
        A class's ``examples`` yields something else than ``(layer, inputs)`` pairs.

    Examples
    --------
    >>> reports, unchecked = run_grid()
    >>> len(reports) >= 54, all(r.passed for r in reports)
    (True, True)
    """
    reports, unchecked = [], []
    for name, cls in list(REGISTRY.items()):
        cases = _checked_examples(name, cls, np.random.default_rng(seed))
        if not cases:
            unchecked.append(name)
        reports += [gradcheck(layer, *inputs, seed=seed) for layer, inputs in cases]
    return GridResult(reports, unchecked)
