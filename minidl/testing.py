"""Helpers for tests of layers, built-in or user-written."""

from __future__ import annotations

import numpy as np

from .gradcheck import GradcheckReport, gradcheck

__all__ = ["assert_gradients", "tie_free", "away_from_zero"]


def tie_free(shape, rng) -> np.ndarray:
    """Float64 array of ``shape`` whose values are all distinct, of order 1, and away from 0.

    Inputs for gradient checks of layers with kinks: with them, no max-pool
    window has a tie and no ReLU input sits on its kink, so central differences
    see a smooth function. A jittered permutation with random signs: magnitudes
    are ``(perm + 1 + u) / size * 2`` with ``u ~ U(-0.25, 0.25)``, so any two
    values differ by at least ``1 / size`` and every value is at least
    ``1.5 / size`` away from 0 -- far more than a gradcheck step of 1e-6 -- and
    all lie in (-2.5, 2.5).

    Parameters
    ----------
    shape : tuple of int
    rng : np.random.Generator

    Returns
    -------
    ndarray of float64, shape ``shape``

    Examples
    --------
    >>> x = tie_free((2, 3, 4, 4), np.random.default_rng(0))
    >>> bool(len(np.unique(x)) == x.size and np.abs(x).min() > 0)
    True
    """
    shape = tuple(shape)
    size = int(np.prod(shape))
    perm = rng.permutation(size).astype(np.float64)
    magnitude = (perm + 1.0 + rng.uniform(-0.25, 0.25, size)) / size * 2.0
    sign = np.where(rng.random(size) < 0.5, -1.0, 1.0)
    return (sign * magnitude).reshape(shape)


def away_from_zero(shape, rng) -> np.ndarray:
    """Standard-normal float64 values pushed at least 0.1 away from 0 (ReLU's kink).

    Parameters
    ----------
    shape : tuple of int
    rng : np.random.Generator

    Returns
    -------
    ndarray of float64, shape ``shape``

    Examples
    --------
    >>> x = away_from_zero((3, 4), np.random.default_rng(0))
    >>> bool(np.abs(x).min() >= 0.1)
    True
    """
    x = rng.standard_normal(shape)
    return x + 0.1 * np.sign(x)


def assert_gradients(layer, *inputs, eps=1e-6, rtol=1e-5, atol=1e-7, seed=0) -> GradcheckReport:
    """Run :func:`minidl.gradcheck` and raise ``AssertionError`` with its table on failure.

    Parameters
    ----------
    layer : Layer
    *inputs
        Passed to ``forward``, as for :func:`minidl.gradcheck`.
    eps, rtol, atol : float
        As for :func:`minidl.gradcheck`.
    seed : int, default 0

    Returns
    -------
    GradcheckReport
        The passing report.

    Raises
    ------
    AssertionError
        Any tensor fails; the message is the report's table.

    Shape
    -----
    ``inputs``: whatever ``layer.forward`` takes.

    Examples
    --------
    >>> import numpy as np, minidl as mdl
    >>> _ = assert_gradients(mdl.layers.ReLU(), np.array([-1.5, 0.5, 2.0]))
    """
    report = gradcheck(layer, *inputs, eps=eps, rtol=rtol, atol=atol, seed=seed)
    if not report.passed:
        raise AssertionError("gradient check failed\n" + str(report))
    return report
