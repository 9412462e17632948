"""Losses of one element at a time (L1Loss, SmoothL1Loss, HuberLoss, KLDivLoss), and their shared base class."""

from __future__ import annotations

import warnings

import numpy as np

from ..functional.kl_div import KL_REDUCTIONS, kl_div, kl_div_backward
from ..functional.loss_args import REDUCTIONS, check_reduction
from ..functional.reduction import check_pair
from ..functional.regression_loss import (
    check_threshold,
    huber_loss,
    huber_loss_backward,
    l1_loss,
    l1_loss_backward,
    smooth_l1_loss,
    smooth_l1_loss_backward,
)
from ..layers.base import constructor_args
from ..layers.registry import register_layer
from .base import Loss

__all__ = ["L1Loss", "SmoothL1Loss", "HuberLoss", "KLDivLoss"]


class _ElementwiseLoss(Loss):
    """A loss of ``(outputs, targets)`` of one shape: its kernels ``_kernel(outputs, targets,
    reduction, **options)`` and ``_kernel_backward(..., grad_output=g)`` do the math."""

    _kernel = _kernel_backward = None
    _reductions = REDUCTIONS

    def _options(self, dtype):
        """The kernels' keyword arguments besides the reduction (arrays in the outputs' ``dtype``)."""
        return {}

    def _check(self, outputs, targets):
        """``targets`` checked and cast to the outputs' dtype (and the outputs checked)."""
        return check_pair(outputs, targets, self.reduction, repr(self), self._reductions)

    def extra_repr(self):  # the arguments that differ from their defaults (torch's repr of a loss shows none)
        defaults = dict(constructor_args(type(self).__init__))
        return ", ".join(f"{name}={value.tolist() if isinstance(value, np.ndarray) else value!r}"
                         for name, value in self._hyper_parameters().items()
                         if isinstance(value, np.ndarray) or value != defaults.get(name))

    def forward(self, outputs, targets):
        targets = self._check(outputs, targets)
        self.save_for_backward(outputs=outputs, targets=targets)
        return type(self)._kernel(outputs, targets, reduction=self.reduction, check_args=False,
                                  **self._options(outputs.dtype))

    def backward(self, grad_output=1.0):
        """dL/doutputs of the last :meth:`forward`, scaled by ``grad_output``.

        Parameters
        ----------
        grad_output : real scalar, default 1.0; an ndarray for ``reduction='none'``
            The upstream gradient of the loss (for 'none', of the outputs' shape and dtype).

        Returns
        -------
        ndarray
            dL/doutputs, the outputs' shape and dtype.

        Shape
        -----
        The outputs' shape (``grad_output`` too, with 'none').

        Examples
        --------
        >>> loss = L1Loss()
        >>> _ = loss(np.array([1.0, -3.0]), np.zeros(2))
        >>> loss.backward()
        array([ 0.5, -0.5])
        """
        s = self.saved_values
        g = self._upstream(grad_output, s.outputs.shape, s.outputs.dtype)
        return type(self)._kernel_backward(s.outputs, s.targets, reduction=self.reduction, grad_output=g,
                                           check_args=False, **self._options(s.outputs.dtype))

    def get_config(self):
        return {name: value.tolist() if isinstance(value, np.ndarray) else value
                for name, value in super().get_config().items()}


def _away_from_kinks(rng, shape, kinks):
    """(outputs, targets) whose differences stay at least 0.1 away from every kink ``|d| = k``."""
    edges = sorted({0.0, *kinks})
    bands = [(a + 0.1, b - 0.1) for a, b in zip(edges, edges[1:] + [edges[-1] + 2.0])]
    band = rng.integers(0, len(bands), shape)
    low, high = np.array(bands).T
    d = rng.uniform(low[band], high[band]) * rng.choice([-1.0, 1.0], shape)
    y = rng.standard_normal(shape)
    return y + d, y


@register_layer
class L1Loss(_ElementwiseLoss):
    r"""Mean absolute error, as :class:`torch.nn.L1Loss`.

    Parameters
    ----------
    reduction : {'mean', 'sum', 'none'}
        'mean' averages over every element, as PyTorch.

    Shape
    -----
    ``forward(outputs, targets)``: any shape, the same for both (targets are cast to the
    outputs' dtype); returns a float (an array of that shape for 'none').

    Notes
    -----
    :math:`L = \frac1M \sum_i |x_i - y_i|`, :math:`\partial L/\partial x_i = \mathrm{sign}(x_i - y_i)/M`
    (0 where :math:`x_i = y_i`, as PyTorch); see :func:`minidl.functional.l1_loss`.

    Examples
    --------
    >>> loss = L1Loss()
    >>> loss(np.array([[1.0, -3.0]]), np.zeros((1, 2)))
    2.0
    >>> loss.backward()
    array([[ 0.5, -0.5]])
    """

    _kernel, _kernel_backward = staticmethod(l1_loss), staticmethod(l1_loss_backward)

    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = check_reduction(reduction, "L1Loss")

    @classmethod
    def examples(cls, rng):
        yield cls(), _away_from_kinks(rng, (4, 3), ())
        yield cls(reduction="sum"), _away_from_kinks(rng, (2, 3, 2), ())


@register_layer
class SmoothL1Loss(_ElementwiseLoss):
    r"""Smooth L1 loss, as :class:`torch.nn.SmoothL1Loss`: squared below ``beta``, absolute above.

    Parameters
    ----------
    reduction : {'mean', 'sum', 'none'}
        'mean' averages over every element, as PyTorch.
    beta : float, default 1.0
        Where the square turns into the absolute value (``>= 0``; 0 is :class:`L1Loss`).

    Shape
    -----
    ``forward(outputs, targets)``: any shape, the same for both; returns a float (an array of
    that shape for 'none').

    Notes
    -----
    Element loss :math:`\tfrac12 d^2/\beta` for :math:`|d| < \beta`, else :math:`|d| - \tfrac12\beta`
    (:math:`d = x - y`); its derivative :math:`d/\beta` clipped to :math:`[-1, 1]`.
    See :func:`minidl.functional.smooth_l1_loss`.

    Examples
    --------
    >>> loss = SmoothL1Loss(beta=2.0)
    >>> loss(np.array([1.0, -4.0]), np.zeros(2))
    1.625
    >>> loss.backward()
    array([ 0.25, -0.5 ])
    """

    _kernel, _kernel_backward = staticmethod(smooth_l1_loss), staticmethod(smooth_l1_loss_backward)

    def __init__(self, reduction="mean", beta=1.0):
        super().__init__()
        self.reduction = check_reduction(reduction, "SmoothL1Loss")
        self.beta = check_threshold(beta, "beta", "SmoothL1Loss", zero_ok=True)

    def _options(self, dtype):
        return dict(beta=self.beta)

    @classmethod
    def examples(cls, rng):
        yield cls(), _away_from_kinks(rng, (4, 3), (1.0,))
        yield cls(reduction="sum", beta=0.5), _away_from_kinks(rng, (2, 3, 2), (0.5,))
        yield cls(beta=0.0), _away_from_kinks(rng, (3, 2), ())


@register_layer
class HuberLoss(_ElementwiseLoss):
    r"""Huber loss, as :class:`torch.nn.HuberLoss`: squared up to ``delta``, linear beyond.

    Parameters
    ----------
    reduction : {'mean', 'sum', 'none'}
        'mean' averages over every element, as PyTorch.
    delta : float, default 1.0
        Where the square turns into the absolute value (``> 0``).

    Shape
    -----
    ``forward(outputs, targets)``: any shape, the same for both; returns a float (an array of
    that shape for 'none').

    Notes
    -----
    Element loss :math:`\tfrac12 d^2` for :math:`|d| \le \delta`, else :math:`\delta(|d| - \tfrac12\delta)`;
    its derivative :math:`d` clipped to :math:`[-\delta, \delta]`: ``delta`` times
    :class:`SmoothL1Loss` with ``beta=delta``. See :func:`minidl.functional.huber_loss`.

    Examples
    --------
    >>> loss = HuberLoss(delta=2.0)
    >>> loss(np.array([1.0, -4.0]), np.zeros(2))
    3.25
    >>> loss.backward()
    array([ 0.5, -1. ])
    """

    _kernel, _kernel_backward = staticmethod(huber_loss), staticmethod(huber_loss_backward)

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__()
        self.reduction = check_reduction(reduction, "HuberLoss")
        self.delta = check_threshold(delta, "delta", "HuberLoss", zero_ok=False)

    def _options(self, dtype):
        return dict(delta=self.delta)

    @classmethod
    def examples(cls, rng):
        yield cls(), _away_from_kinks(rng, (4, 3), (1.0,))
        yield cls(reduction="sum", delta=0.5), _away_from_kinks(rng, (2, 3, 2), (0.5,))


@register_layer
class KLDivLoss(_ElementwiseLoss):
    r"""Kullback-Leibler divergence, as :class:`torch.nn.KLDivLoss`: log-probabilities against a target distribution.

    Parameters
    ----------
    reduction : {'mean', 'batchmean', 'sum', 'none'}
        'mean' (PyTorch's default) averages over every element, which is not the divergence:
        PyTorch warns, and so does minidl (once, here). 'batchmean' divides the sum by the batch
        size: the KL divergence per sample.
    log_target : bool, default False
        Whether the targets are log-probabilities.

    Shape
    -----
    ``forward(outputs, targets)``: log-probabilities (e.g. a :class:`~minidl.layers.LogSoftmax`'s
    output) and targets of the same shape, e.g. (N, C); returns a float (an array of that shape for 'none').

    Notes
    -----
    Element loss :math:`y(\log y - x)` (0 where :math:`y = 0`), gradient :math:`-y`; with
    ``log_target``, :math:`e^{y}(y - x)` and :math:`-e^{y}`. See :func:`minidl.functional.kl_div`.

    Examples
    --------
    >>> loss = KLDivLoss(reduction="batchmean")
    >>> round(loss(np.log([[0.25, 0.75]]), np.array([[0.5, 0.5]])), 6)
    0.143841
    >>> loss.backward()
    array([[-0.5, -0.5]])
    """

    _kernel, _kernel_backward = staticmethod(kl_div), staticmethod(kl_div_backward)
    _reductions = KL_REDUCTIONS

    def __init__(self, reduction="mean", log_target=False):
        super().__init__()
        if not isinstance(reduction, str) or reduction not in KL_REDUCTIONS:
            raise ValueError(f"KLDivLoss: reduction must be 'mean', 'batchmean', 'sum' or 'none', as in PyTorch. "
                             f"Received: reduction={reduction!r}")
        if reduction == "mean":
            warnings.warn("KLDivLoss: reduction='mean' divides the total loss by both the batch size and the "
                          "number of classes; 'batchmean' divides by the batch size only, which is the KL "
                          "divergence (PyTorch's warning).", UserWarning, stacklevel=2)
        self.reduction = reduction
        if not isinstance(log_target, (bool, np.bool_)):
            raise TypeError(f"KLDivLoss: log_target must be True or False. Received: log_target={log_target!r}.")
        self.log_target = bool(log_target)

    def _options(self, dtype):
        return dict(log_target=self.log_target)

    @classmethod
    def examples(cls, rng):
        p, q = rng.dirichlet(np.ones(4), size=3), rng.dirichlet(np.ones(4), size=3)
        yield cls(reduction="batchmean"), (np.log(p), q)
        yield cls(reduction="sum", log_target=True), (np.log(p), np.log(q))
