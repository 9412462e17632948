"""GELU, exact (erf) and tanh-approximated, as :func:`torch.nn.functional.gelu`.

numpy has no ``erf``; :func:`scipy.special.erf` (scipy comes with scikit-learn, a
runtime dependency of minidl) is imported on first use. float16 is computed in float32
and rounded back, as torch does on the CPU (scipy's ``erf`` has no float16 loop).
"""

from __future__ import annotations

import math

import numpy as np

from .activation import check_grad_pair, float_input

__all__ = ["gelu", "gelu_backward", "check_approximate"]

_SQRT1_2 = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_PI = math.sqrt(2.0 / math.pi)
_KAPPA = 0.044715


def _erf(x):
    from scipy.special import erf  # deferred: scipy costs ~0.1 s to import

    return erf(x)


def check_approximate(approximate, where) -> str:
    """``approximate`` as ``'none'`` or ``'tanh'``, or ValueError.

    Parameters
    ----------
    approximate : str
    where : str
        The caller, named in error messages.

    Returns
    -------
    str

    Examples
    --------
    >>> check_approximate("tanh", "GELU")
    'tanh'
    """
    if approximate not in ("none", "tanh"):
        raise ValueError(
            f"{where}: approximate must be 'none' (the exact erf form) or 'tanh', as in torch.nn.GELU. "
            f"Received: approximate={approximate!r}"
        )
    return approximate


def _compute_dtype(x):
    """The input itself, or in float32 when it is float16 (torch's "opmath" type for half)."""
    return x.astype(np.float32) if x.dtype == np.float16 else x


def _tanh_inner(x):
    return np.tanh(x.dtype.type(_SQRT_2_PI) * (x + x.dtype.type(_KAPPA) * (x * x * x)))


def gelu(x, approximate="none", *, where="gelu"):
    r"""``x * Phi(x)``, ``Phi`` the standard normal CDF (or its tanh approximation).

    Parameters
    ----------
    x : ndarray, floating point, any shape (dtype kept)
    approximate : {'none', 'tanh'}
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray, same shape and dtype as ``x`` (float16 is computed in float32, then rounded)

    Shape
    -----
    Any shape; the output has ``x``'s.

    Notes
    -----
    ``'none'``: :math:`y = \tfrac12 x (1 + \mathrm{erf}(x/\sqrt2))`.
    ``'tanh'``: :math:`y = \tfrac12 x (1 + \tanh(\sqrt{2/\pi}(x + 0.044715 x^3)))`.

    Examples
    --------
    >>> gelu(np.array([-1.0, 0.0, 1.0])).round(6)
    array([-0.158655,  0.      ,  0.841345])
    >>> gelu(np.array([1.0]), approximate='tanh').round(6)
    array([0.841192])
    """
    float_input(x, "x", where)
    approximate = check_approximate(approximate, where)
    dtype, x = x.dtype, _compute_dtype(x)
    half = x.dtype.type(0.5)
    if approximate == "tanh":
        return (half * x * (1 + _tanh_inner(x))).astype(dtype, copy=False)
    return (half * x * (1 + _erf(x * x.dtype.type(_SQRT1_2)))).astype(dtype, copy=False)


def gelu_backward(grad_output, x, approximate="none", *, where="gelu_backward"):
    r"""Gradient of :func:`gelu` with respect to ``x``.

    Parameters
    ----------
    grad_output : ndarray
        dL/d(gelu(x)), of ``x``'s shape and dtype.
    x : ndarray, floating point
        The forward input.
    approximate : {'none', 'tanh'}, default 'none'
    where : str, optional
        The caller, named in error messages.

    Returns
    -------
    ndarray
        dL/dx, ``x``'s shape and dtype.

    Shape
    -----
    ``grad_output``, ``x`` and dL/dx: one shape, any.

    Notes
    -----
    ``'none'``: :math:`dy/dx = \Phi(x) + x\,\varphi(x)` with
    :math:`\Phi = \tfrac12(1 + \mathrm{erf}(x/\sqrt2))` and
    :math:`\varphi = e^{-x^2/2}/\sqrt{2\pi}`.
    ``'tanh'``: with :math:`u = \sqrt{2/\pi}(x + \kappa x^3)`, :math:`t = \tanh u`,
    :math:`dy/dx = \tfrac12(1 + t) + \tfrac12 x (1 - t^2) \sqrt{2/\pi}(1 + 3\kappa x^2)`.
    Both as PyTorch's ``gelu_backward``.

    Examples
    --------
    >>> gelu_backward(np.ones(1), np.zeros(1))
    array([0.5])
    """
    float_input(x, "x", where)
    check_grad_pair(grad_output, x, "x", where)
    approximate = check_approximate(approximate, where)
    dtype, x = x.dtype, _compute_dtype(x)
    t = x.dtype.type
    if approximate == "tanh":
        th = _tanh_inner(x)
        slope = t(0.5) * (1 + th) + t(0.5) * x * (1 - th * th) * t(_SQRT_2_PI) * (1 + t(3 * _KAPPA) * (x * x))
    else:
        cdf = t(0.5) * (1 + _erf(x * t(_SQRT1_2)))
        slope = cdf + x * (np.exp(t(-0.5) * (x * x)) * t(_INV_SQRT_2PI))
    return (grad_output * slope).astype(dtype, copy=False)
