"""The numerics of :func:`minidl.check_model`: one layer's backward against finite differences
at recorded inputs, element by element or along random directions, kinks left out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TensorResult"]


@dataclass
class TensorResult:
    """One input or parameter of one layer: how it was checked and the largest error.

    Parameters
    ----------
    name : str
        ``"input"`` (``"input[1]"`` for a second input), or the parameter's name.
    method : str
        ``"elementwise"`` or ``"directions"`` (random directional derivatives).
    checked : int
        Elements (elementwise) or directions checked.
    max_abs_err : float
    max_rel_err : float
        Against ``max(|analytic|, |numeric|)``.
    worst : object
        The worst element's index (elementwise) or direction's number.
    passed : bool
    kinks_skipped : int
        Elements left out at declared kinks, or directions replaced because they crossed one.

    Examples
    --------
    >>> TensorResult("input", "elementwise", 4, 0.0, 0.0, (0,), True).passed
    True
    """

    name: str
    method: str
    checked: int
    max_abs_err: float
    max_rel_err: float
    worst: object
    passed: bool
    kinks_skipped: int = 0

_TRIES = 5  # directions drawn for each one kept (the others crossed a kink)


def _fix_randomness(layer) -> None:
    """A layer that draws a mask (Dropout) draws it once per shape, so every call computes one function."""
    draw = getattr(layer, "draw_mask", None)
    if callable(draw):
        masks = {}
        layer.draw_mask = lambda shape: masks.setdefault(tuple(shape), draw(shape))


def tensor_result(name, method, analytic, numeric, scale, rtol, atol, worst_keys, kinks):
    if len(analytic) == 0:
        return TensorResult(name, method, 0, 0.0, 0.0, None, True, kinks)
    a, n, s = (np.asarray(v, dtype=np.float64) for v in (analytic, numeric, scale))
    err = np.abs(a - n)
    excess = np.where(np.isnan(err), np.inf, err / (atol + rtol * s))
    k = int(np.argmax(excess))
    rel = err / np.maximum(np.maximum(np.abs(a), np.abs(n)), 1e-300)
    return TensorResult(name, method, len(a), float(np.nanmax(err)), float(np.nanmax(rel)), worst_keys[k],
                        bool(np.all(excess <= 1.0)), kinks)


def check_layer_at(layer, inputs, rng, directions, elementwise_limit, eps, rtol, atol):
    """``(tensor results, note)`` for ``layer`` at ``inputs`` (float64 arrays are checked)."""
    _fix_randomness(layer)
    xs = [np.array(v, dtype=np.float64) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v for v in inputs]
    first = layer(*xs)
    if not np.array_equal(np.asarray(first), np.asarray(layer(*xs)), equal_nan=True):
        return [], "random: its output changes from call to call; seed its randomness to check it"
    scalar = np.ndim(first) == 0
    g = None if scalar else rng.standard_normal(np.shape(first))

    def value():
        out = layer(*xs)
        return float(out) if scalar else float(np.sum(np.asarray(out, dtype=np.float64) * g))

    layer.zero_grad()
    layer(*xs)
    grads = layer.backward() if scalar else layer.backward(g)
    grads = grads if isinstance(grads, (tuple, list)) else (grads,)
    kinks = layer.kinks(*xs, tol=max(100 * eps, 1e-5))
    kinks = kinks if kinks is not None else (None,) * len(xs)
    targets = []  # (name, array perturbed in place, analytic gradient, kink mask)
    floats = [i for i, v in enumerate(xs) if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
    for k, i in enumerate(floats[:len(grads)]):
        if grads[k] is not None:
            targets.append(("input" if len(floats) == 1 else f"input[{i}]", xs[i], grads[k], kinks[i]))
    for name, p in layer.named_parameters():
        targets.append((name, p.data, p.grad.copy(), None))
    results = []
    for name, array, analytic, mask in targets:
        if np.shape(analytic) != array.shape:
            results.append(TensorResult(name, f"shape {np.shape(analytic)} != {array.shape}", 0, np.inf, np.inf,
                                        None, False))
        elif array.size <= elementwise_limit:
            results.append(_elementwise(name, array, np.asarray(analytic, np.float64), mask, value, eps, rtol, atol))
        else:
            results.append(_directional(name, array, np.asarray(analytic, np.float64), mask, value, rng,
                                        directions, eps, rtol, atol))
    return results, ""


def _elementwise(name, array, analytic, mask, value, eps, rtol, atol):
    flat, a_flat = array.reshape(-1), analytic.reshape(-1)
    skip = np.zeros(flat.size, bool) if mask is None else np.asarray(mask).reshape(-1)
    a, n, keys, crossed = [], [], [], 0
    f0 = value()
    for i in np.flatnonzero(~skip):
        orig = flat[i]
        flat[i] = orig + eps
        fp = value()
        flat[i] = orig - eps
        fm = value()
        flat[i] = orig
        right, left = (fp - f0) / eps, (f0 - fm) / eps
        if abs(right - left) > 10 * (atol + rtol * max(abs(right), abs(left))):
            crossed += 1  # a kink no layer declared: the one-sided slopes disagree
            continue
        a.append(a_flat[i])
        n.append((fp - fm) / (2 * eps))
        keys.append(tuple(int(j) for j in np.unravel_index(i, array.shape)))
    scale = np.maximum(np.abs(a), np.abs(n)) if a else []
    return tensor_result(name, "elementwise", a, n, scale, rtol, atol, keys, int(skip.sum()) + crossed)


def _directional(name, array, analytic, mask, value, rng, directions, eps, rtol, atol):
    saved = array.copy()
    a, n, scale, keys, crossed = [], [], [], [], 0
    f0 = value()
    for d in range(directions):
        for _ in range(_TRIES):
            v = rng.standard_normal(array.shape)
            if mask is not None:
                v[mask] = 0.0
            array[...] = saved + eps * v
            fp = value()
            array[...] = saved - eps * v
            fm = value()
            array[...] = saved
            s = float(np.sum(np.abs(analytic * v)))
            right, left = (fp - f0) / eps, (f0 - fm) / eps
            if abs(right - left) <= 10 * (atol + rtol * s):  # differentiable along v: keep it
                a.append(float(np.sum(analytic * v)))
                n.append((fp - fm) / (2 * eps))
                scale.append(s)
                keys.append(d)
                break
            crossed += 1  # one-sided slopes disagree: v crosses a kink no layer declared
    kinks = crossed + (0 if mask is None else int(np.sum(mask)))
    return tensor_result(name, "directions", a, n, scale, rtol, atol, keys, kinks)
