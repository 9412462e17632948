"""Numerical gradient checking for any layer, loss or graph.

:func:`gradcheck` compares a layer's hand-written ``backward`` with central
differences, in float64, on a deep copy of the layer (the original is never
touched), and reports the worst element of every tensor.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

__all__ = ["gradcheck", "GradcheckReport", "TensorCheck"]


@dataclass
class TensorCheck:
    """The comparison for one tensor (an input or a parameter).

    ``worst_index`` is the element that violates ``|a - n| <= atol + rtol * |n|``
    the most (or comes closest to); ``analytic`` / ``numeric`` hold the full arrays.

    Parameters
    ----------
    name : str
        ``"input"`` (``"input[0]"``, ... for several), ``"weight"``, ...
    shape : tuple
    max_abs_err, max_rel_err : float
    worst_index : tuple
    worst_analytic, worst_numeric : float
        The two gradients at ``worst_index``.
    passed : bool
    analytic, numeric : ndarray or None
        The full gradients (float64).
    note : str
        Why it failed, when it is not the values (a wrong shape).

    Examples
    --------
    >>> from minidl.layers import Dense
    >>> report = gradcheck(Dense(3, 2, rng=0), np.ones((4, 3)))
    >>> [(t.name, t.shape, t.passed) for t in report.tensors]
    [('input', (4, 3), True), ('weight', (2, 3), True), ('bias', (2,), True)]
    """

    name: str
    shape: tuple
    max_abs_err: float
    max_rel_err: float
    worst_index: tuple
    worst_analytic: float
    worst_numeric: float
    passed: bool
    analytic: np.ndarray | None = field(default=None, repr=False)
    numeric: np.ndarray | None = field(default=None, repr=False)
    note: str = ""


@dataclass
class GradcheckReport:
    """Result of :func:`gradcheck`: ``.passed``, ``.tensors`` and a readable ``str``.

    Parameters
    ----------
    layer : str
        The checked layer's repr.
    eps, rtol, atol : float
    seed : int
        As given to :func:`gradcheck`.
    tensors : list of TensorCheck
        One per checked input and parameter.

    Examples
    --------
    >>> from minidl.layers import ReLU
    >>> report = gradcheck(ReLU(), np.array([-1.0, 2.0]))
    >>> bool(report), str(report).splitlines()[0].split(":")[1].split()[0]
    (True, 'PASSED')
    """

    layer: str
    eps: float
    rtol: float
    atol: float
    seed: int
    tensors: list[TensorCheck]

    @property
    def passed(self) -> bool:
        """True when every tensor passed."""
        return all(t.passed for t in self.tensors)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        head = (f"gradcheck {self.layer}: {'PASSED' if self.passed else 'FAILED'} "
                f"(eps={self.eps:g}, rtol={self.rtol:g}, atol={self.atol:g}, seed={self.seed}; "
                f"pass when |analytic - numeric| <= atol + rtol * |numeric| everywhere)")
        cols = ["tensor", "shape", "max_abs_err", "max_rel_err", "worst_index",
                "analytic", "numeric", "ok"]
        rows = [[t.name, str(t.shape), f"{t.max_abs_err:.3e}", f"{t.max_rel_err:.3e}",
                 str(t.worst_index), f"{t.worst_analytic:.6e}", f"{t.worst_numeric:.6e}",
                 ("ok" if t.passed else "FAIL") + (f" ({t.note})" if t.note else "")]
                for t in self.tensors]
        widths = [max(len(r[i]) for r in [cols] + rows) for i in range(len(cols))]
        lines = [head, "  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        if not self.tensors:
            lines.append("(nothing to check: no floating-point input and no parameter)")
        return "\n".join(lines)


def _is_float_array(x) -> bool:
    return isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating)


def _numeric_grad(f, x: np.ndarray, eps: float) -> np.ndarray:
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)  # views: x is contiguous float64
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + eps
        fp = f()
        flat[i] = orig - eps
        fm = f()
        flat[i] = orig
        gflat[i] = (fp - fm) / (2.0 * eps)
    return grad


def _compare(name, analytic, numeric, rtol, atol) -> TensorCheck:
    shape = tuple(numeric.shape)
    if analytic is None or np.shape(analytic) != shape:
        got = None if analytic is None else np.shape(analytic)
        return TensorCheck(name, shape, np.inf, np.inf, (), np.nan, np.nan, False,
                           None if analytic is None else np.asarray(analytic), numeric,
                           note=f"backward gave shape {got}, expected {shape}")
    analytic = np.asarray(analytic, dtype=np.float64)
    if numeric.size == 0:
        return TensorCheck(name, shape, 0.0, 0.0, (), 0.0, 0.0, True, analytic, numeric)
    abs_err = np.abs(analytic - numeric)
    scale = np.maximum(np.abs(analytic), np.abs(numeric))
    rel_err = np.divide(abs_err, scale, out=np.zeros_like(abs_err), where=scale > 0)
    excess = abs_err / (atol + rtol * np.abs(numeric))
    excess = np.where(np.isnan(abs_err), np.inf, excess)
    worst = np.unravel_index(int(np.argmax(excess)), shape)
    passed = bool(np.all(excess <= 1.0))
    return TensorCheck(name, shape, float(np.nanmax(abs_err)) if not np.isnan(abs_err).all() else np.nan,
                       float(np.nanmax(rel_err)) if not np.isnan(rel_err).all() else np.nan,
                       tuple(int(i) for i in worst), float(analytic[worst]), float(numeric[worst]),
                       passed, analytic, numeric)


def float64_copy(layer):
    """A deep copy of ``layer`` whose parameters (and floating-point buffers) are float64."""
    model = copy.deepcopy(layer)
    for p in model.parameters():
        p.data = np.array(p.data, dtype=np.float64)
        p.grad = np.zeros_like(p.data)
    _buffers_to_float64(model)
    return model


def _buffers_to_float64(layer) -> None:
    """Cast every floating-point buffer (running statistics) of ``layer`` and its children."""
    for name, value in list(layer.named_buffers(recurse=False)):
        if np.issubdtype(value.dtype, np.floating):
            setattr(layer, name, value.astype(np.float64))
    for _, child in layer.named_children():
        _buffers_to_float64(child)


def gradcheck(layer, *inputs, eps=1e-6, rtol=1e-5, atol=1e-7, seed=0) -> GradcheckReport:
    r"""Compare ``layer.backward`` with central differences, in float64.

    Parameters
    ----------
    layer : Layer
        Any layer, graph or loss, built-in or a user's own subclass. It is
        deep-copied and the copy's parameters (and floating-point buffers) are
        cast to float64; the layer
        itself is left untouched.
    *inputs : arrays (or other objects)
        Passed to ``forward``. Floating-point arrays are copied to float64 and
        checked; anything else (integer labels, say) is passed as is.
    eps : float
        Step of the central difference ``(f(x + eps) - f(x - eps)) / (2 eps)``.
    rtol, atol : float
        An element passes when ``|analytic - numeric| <= atol + rtol * |numeric|``
        (``numpy.allclose``'s rule). A pure relative bound is unreliable where
        the true gradient is near zero.
    seed : int
        Seeds the random upstream gradient ``G``.

    Returns
    -------
    GradcheckReport
        ``.passed``; per tensor the max absolute and relative error and the
        worst element's index and values; ``str(report)`` is a table.

    Notes
    -----
    For a layer, the checked scalar is ``f = sum(forward(*inputs) * G)`` with a
    standard-normal ``G``, and ``backward(G)`` must return ``df/dinput`` (a
    tuple for several inputs) and add ``df/dparam`` into each ``.grad``. For a
    loss (forward returns a scalar) ``f`` is the loss and ``backward()`` takes
    no argument. Gradients returned for the first k floating inputs are checked.
    Avoid inputs at kinks: ReLU at 0, max-pool windows with ties.

    Shape
    -----
    ``inputs``: whatever ``layer.forward`` takes; ``G`` has the output's shape.

    Examples
    --------
    >>> from minidl.layers import Dense
    >>> report = gradcheck(Dense(3, 2, rng=np.random.default_rng(0)), np.ones((4, 3)))
    >>> report.passed
    True
    """
    model = float64_copy(layer)
    xs = [np.array(x, dtype=np.float64) if _is_float_array(x) else x for x in inputs]
    rng = np.random.default_rng(seed)

    out = model.forward(*xs)
    scalar = np.ndim(out) == 0
    g = None if scalar else rng.standard_normal(np.shape(out))
    model.zero_grad()
    grads = model.backward() if scalar else model.backward(g)
    if not isinstance(grads, (tuple, list)):
        grads = (grads,)
    param_grads = [(name, p.grad.copy()) for name, p in model.named_parameters()]

    def f() -> float:
        y = model.forward(*xs)
        return float(y) if scalar else float(np.sum(np.asarray(y, dtype=np.float64) * g))

    float_idx = [i for i, x in enumerate(xs) if _is_float_array(x)]
    tensors = []
    for k, i in enumerate(float_idx[: len(grads)]):
        if grads[k] is None:
            continue
        name = "input" if len(inputs) == 1 else f"input[{i}]"
        tensors.append(_compare(name, grads[k], _numeric_grad(f, xs[i], eps), rtol, atol))
    params = dict(model.named_parameters())
    for name, analytic in param_grads:
        tensors.append(_compare(name, analytic, _numeric_grad(f, params[name].data, eps), rtol, atol))
    return GradcheckReport(repr(layer), eps, rtol, atol, seed, tensors)
