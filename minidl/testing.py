"""Helpers for tests of layers, built-in or user-written."""

from __future__ import annotations

from .gradcheck import GradcheckReport, gradcheck

__all__ = ["assert_gradients"]


def assert_gradients(layer, *inputs, eps=1e-6, rtol=1e-5, atol=1e-7, seed=0) -> GradcheckReport:
    """Run :func:`minidl.gradcheck` and raise ``AssertionError`` with its table on failure.

    Examples
    --------
    >>> import numpy as np, minidl as mdl
    >>> _ = assert_gradients(mdl.layers.ReLU(), np.array([-1.5, 0.5, 2.0]))
    """
    report = gradcheck(layer, *inputs, eps=eps, rtol=rtol, atol=atol, seed=seed)
    if not report.passed:
        raise AssertionError("gradient check failed\n" + str(report))
    return report
