"""ConstantLR (a constant factor for a number of epochs, a warm-up) and PolynomialLR (a polynomial
decay to zero), stepped once per epoch like torch's (the base class: :mod:`.lr_scheduler`)."""

from __future__ import annotations

from .lr_scheduler import LRScheduler, int_at_least, param_groups_of
from .optimizer import real_number

__all__ = ["ConstantLR", "PolynomialLR"]


class ConstantLR(LRScheduler):
    """Multiply the learning rate by ``factor`` until ``total_iters`` epochs have passed (torch's
    ConstantLR; a warm-up).

    Parameters
    ----------
    optimizer : Optimizer
    factor : float in (0, 1], default 1/3
        Applied at construction, undone at epoch ``total_iters``.
    total_iters : int >= 1, default 5

    Raises
    ------
    ValueError
        ``factor`` outside (0, 1] or ``total_iters`` not an int >= 1.

    Notes
    -----
    After ``e`` calls to :meth:`step`, ``lr = base_lr * factor`` while
    ``e < total_iters``, then ``base_lr``; computed as torch does, by
    multiplying each group's current lr by ``factor`` at construction and by
    ``1 / factor`` at epoch ``total_iters``.

    Examples
    --------
    >>> from minidl import Parameter
    >>> from minidl.optim import SGD
    >>> opt = SGD([Parameter(np.zeros(1))], lr=1.0)
    >>> sched = ConstantLR(opt, factor=0.5, total_iters=2)
    >>> lrs = []
    >>> for epoch in range(4):
    ...     lrs.append(sched.get_last_lr()[0]); sched.step()
    >>> lrs
    [0.5, 0.5, 1.0, 1.0]
    """

    _hyper_names = ("factor", "total_iters")

    def __init__(self, optimizer, factor=1.0 / 3, total_iters=5):
        param_groups_of(optimizer, "ConstantLR")
        self.factor, self.total_iters = self._check_hyper(dict(factor=factor, total_iters=total_iters),
                                                          "ConstantLR").values()
        super().__init__(optimizer)

    def _check_hyper(self, values, where):
        factor = real_number(values["factor"], "factor", where)
        if not 0 < factor <= 1:
            raise ValueError(f"{where}: factor must be in (0, 1] (the lr is multiplied by it, then "
                             f"divided by it at total_iters). Received: factor={factor!r}")
        return {"factor": factor, "total_iters": int_at_least(values["total_iters"], "total_iters", where, 1)}

    def get_lr(self):
        lrs = self._group_lrs()
        if self.last_epoch == 0:
            return [lr * self.factor for lr in lrs]
        if self.last_epoch != self.total_iters:
            return lrs
        return [lr * (1.0 / self.factor) for lr in lrs]

    def _closed_form_lr(self):
        f = self.factor
        return [base * (f + (self.last_epoch >= self.total_iters) * (1 - f)) for base in self.base_lrs]


class PolynomialLR(LRScheduler):
    """Decay the learning rate to zero along a polynomial over ``total_iters`` epochs (torch's
    PolynomialLR).

    Parameters
    ----------
    optimizer : Optimizer
    total_iters : int >= 1, default 5
        Epochs of the decay; the lr stays 0 after them.
    power : float >= 0, default 1
        The polynomial's degree (1: linear).

    Raises
    ------
    ValueError
        ``total_iters`` not an int >= 1, or ``power`` negative or not finite.

    Notes
    -----
    After ``e`` calls to :meth:`step`,
    ``lr = base_lr * (1 - min(e, total_iters) / total_iters) ** power``;
    computed as torch does, by multiplying each group's current lr by
    ``((1 - e / total_iters) / (1 - (e - 1) / total_iters)) ** power``.

    Examples
    --------
    >>> from minidl import Parameter
    >>> from minidl.optim import SGD
    >>> opt = SGD([Parameter(np.zeros(1))], lr=1.0)
    >>> sched = PolynomialLR(opt, total_iters=4, power=2.0)
    >>> lrs = []
    >>> for epoch in range(6):
    ...     lrs.append(sched.get_last_lr()[0]); sched.step()
    >>> lrs
    [1.0, 0.5625, 0.25, 0.0625, 0.0, 0.0]
    """

    _hyper_names = ("total_iters", "power")

    def __init__(self, optimizer, total_iters=5, power=1.0):
        param_groups_of(optimizer, "PolynomialLR")
        self.total_iters, self.power = self._check_hyper(dict(total_iters=total_iters, power=power),
                                                         "PolynomialLR").values()
        super().__init__(optimizer)

    def _check_hyper(self, values, where):
        return {"total_iters": int_at_least(values["total_iters"], "total_iters", where, 1),
                "power": real_number(values["power"], "power", where)}

    def get_lr(self):
        lrs = self._group_lrs()
        if self._initial or self.last_epoch > self.total_iters:
            return lrs
        e, n = self.last_epoch, self.total_iters
        decay = ((1.0 - e / n) / (1.0 - (e - 1) / n)) ** self.power
        return [lr * decay for lr in lrs]

    def _closed_form_lr(self):
        n = self.total_iters
        return [base * (1.0 - min(n, self.last_epoch) / n) ** self.power for base in self.base_lrs]
