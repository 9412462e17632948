"""Binary cross-entropy losses: BCELoss (from probabilities) and BCEWithLogitsLoss (from logits)."""

from __future__ import annotations

import numpy as np

from ..functional.bce import (
    binary_cross_entropy,
    binary_cross_entropy_backward,
    binary_cross_entropy_with_logits,
    binary_cross_entropy_with_logits_backward,
    check_bce_args,
)
from ..functional.loss_args import check_reduction
from ..layers.registry import register_layer
from .elementwise import _ElementwiseLoss

__all__ = ["BCELoss", "BCEWithLogitsLoss"]


def _as_weight(weight, name, where):
    """``weight`` as a float64 array of finite values (a copy), or None."""
    if weight is None:
        return None
    if isinstance(weight, (str, bytes)):
        hint = " (weight comes first, as in torch: pass reduction= by keyword)" if name == "weight" else ""
        raise TypeError(f"{where}: {name} must be an array of real numbers or None{hint}. Received: {name}={weight!r}.")
    try:
        w = np.array(weight)
    except (ValueError, TypeError, OverflowError) as exc:
        raise TypeError(f"{where}: {name} must be an array of real numbers. Received: {name}={weight!r} "
                        f"({exc}).") from None
    if w.dtype.kind not in "iuf" or isinstance(weight, bool):
        raise TypeError(f"{where}: {name} must be an array of real numbers or None. Received: dtype {w.dtype}.")
    w = w.astype(np.float64)
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{where}: {name} must be finite. Received: {w.tolist()}.")
    return w


def _cast(weight, dtype):
    return None if weight is None else weight.astype(dtype)


@register_layer
class BCELoss(_ElementwiseLoss):
    r"""Binary cross-entropy of probabilities, as :class:`torch.nn.BCELoss`.

    Parameters
    ----------
    weight : array-like, optional
        Rescales each element's loss; broadcasts to the outputs' shape (stored as float64).
    reduction : {'mean', 'sum', 'none'}
        'mean' averages over every element, as PyTorch.

    Shape
    -----
    ``forward(outputs, targets)``: probabilities in [0, 1] (e.g. a Sigmoid's output) and
    targets, any shape, the same for both; returns a float (an array of that shape for 'none').

    Notes
    -----
    Element loss :math:`-w\,[y \log x + (1 - y)\log(1 - x)]`, each log floored at -100 as in
    PyTorch (so a confident wrong answer costs 100, not ``inf``); gradient
    :math:`w\,(x - y)/\max(x(1 - x), 10^{-12})`. :class:`BCEWithLogitsLoss` takes logits and is
    the stable choice for training. See :func:`minidl.functional.binary_cross_entropy`.

    Examples
    --------
    >>> loss = BCELoss()
    >>> round(loss(np.array([0.5, 0.5]), np.array([1.0, 0.0])), 6)
    0.693147
    >>> loss.backward()
    array([-1.,  1.])
    """

    _kernel, _kernel_backward = staticmethod(binary_cross_entropy), staticmethod(binary_cross_entropy_backward)

    def __init__(self, weight=None, reduction="mean"):
        super().__init__()
        self.weight = _as_weight(weight, "weight", "BCELoss")
        self.reduction = check_reduction(reduction, "BCELoss")

    def _check(self, outputs, targets):
        dtype = outputs.dtype if isinstance(outputs, np.ndarray) else np.float64
        return check_bce_args(outputs, targets, self.reduction, repr(self), weight=_cast(self.weight, dtype))

    def _options(self, dtype):
        return dict(weight=_cast(self.weight, dtype))

    @classmethod
    def examples(cls, rng):
        yield cls(), (rng.uniform(0.05, 0.95, (4, 3)), rng.integers(0, 2, (4, 3)).astype(float))
        yield cls(weight=[0.5, 2.0, 1.0], reduction="sum"), (rng.uniform(0.05, 0.95, (2, 3)), rng.uniform(0, 1, (2, 3)))


@register_layer
class BCEWithLogitsLoss(_ElementwiseLoss):
    r"""Binary cross-entropy of logits, sigmoid and loss in one stable step, as :class:`torch.nn.BCEWithLogitsLoss`.

    Parameters
    ----------
    weight : array-like, optional
        Rescales each element's loss; broadcasts to the outputs' shape (stored as float64).
    reduction : {'mean', 'sum', 'none'}
        'mean' averages over every element, as PyTorch.
    pos_weight : array-like, optional
        The weight of the positive term (e.g. one per class, ``n_negative / n_positive`` for
        imbalanced labels); broadcasts to the outputs' shape.

    Shape
    -----
    ``forward(outputs, targets)``: logits and targets (usually in [0, 1]), any shape, the same
    for both; returns a float (an array of that shape for 'none').

    Notes
    -----
    With :math:`l = 1 + (p - 1)\,y`: element loss :math:`w\,[(1 - y)\,x + l\,(\log(1 + e^{-|x|}) + \max(-x, 0))]`,
    finite for logits of any size; gradient :math:`w\,(l\,\sigma(x) - p\,y)`, i.e.
    :math:`w\,(\sigma(x) - y)` without ``pos_weight``. See
    :func:`minidl.functional.binary_cross_entropy_with_logits`.

    Examples
    --------
    >>> loss = BCEWithLogitsLoss()
    >>> round(loss(np.array([0.0, -1000.0]), np.array([1.0, 0.0])), 6)
    0.346574
    >>> loss.backward()
    array([-0.25,  0.  ])
    """

    _kernel = staticmethod(binary_cross_entropy_with_logits)
    _kernel_backward = staticmethod(binary_cross_entropy_with_logits_backward)

    def __init__(self, weight=None, reduction="mean", pos_weight=None):
        super().__init__()
        self.weight = _as_weight(weight, "weight", "BCEWithLogitsLoss")
        self.reduction = check_reduction(reduction, "BCEWithLogitsLoss")
        self.pos_weight = _as_weight(pos_weight, "pos_weight", "BCEWithLogitsLoss")

    def _check(self, outputs, targets):
        dtype = outputs.dtype if isinstance(outputs, np.ndarray) else np.float64
        return check_bce_args(outputs, targets, self.reduction, repr(self), weight=_cast(self.weight, dtype),
                              pos_weight=_cast(self.pos_weight, dtype), probabilities=False)

    def _options(self, dtype):
        return dict(weight=_cast(self.weight, dtype), pos_weight=_cast(self.pos_weight, dtype))

    @classmethod
    def examples(cls, rng):
        yield cls(), (rng.standard_normal((4, 3)) * 2, rng.integers(0, 2, (4, 3)).astype(float))
        yield (cls(weight=[[0.5], [2.0]], reduction="sum", pos_weight=[3.0, 1.0, 0.5]),
               (rng.standard_normal((2, 3)), rng.uniform(0, 1, (2, 3))))

