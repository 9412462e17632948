"""Cosine annealing with warm restarts (SGDR), like torch's CosineAnnealingWarmRestarts
(the base class: :mod:`minidl.optim.lr_scheduler`)."""

from __future__ import annotations

import math

from .lr_scheduler import LRScheduler, int_at_least, param_groups_of
from .optimizer import real_number

__all__ = ["CosineAnnealingWarmRestarts"]


class CosineAnnealingWarmRestarts(LRScheduler):
    """Anneal the learning rate along a cosine from its initial value to ``eta_min`` over ``T_0``
    steps, then restart, each period ``T_mult`` times longer than the last (torch's
    CosineAnnealingWarmRestarts; Loshchilov & Hutter's SGDR).

    Call :meth:`step` once per epoch, or once per batch for restarts within an
    epoch (``LearningRateScheduler(sched, interval="batch")``).

    Parameters
    ----------
    optimizer : Optimizer
    T_0 : int >= 1
        Steps until the first restart.
    T_mult : int >= 1, default 1
        Factor by which each period is longer than the previous one.
    eta_min : float >= 0, default 0

    Raises
    ------
    ValueError
        ``T_0`` or ``T_mult`` not an int >= 1, or ``eta_min`` negative or not finite.

    Notes
    -----
    With :math:`T_{cur}` the steps since the last restart and :math:`T_i` the
    current period,

    .. math::

        \\eta = \\eta_{min} + \\tfrac12 (\\eta_0 - \\eta_{min})
                (1 + \\cos(\\pi T_{cur} / T_i))

    computed from each group's initial lr :math:`\\eta_0` (not recursively).
    ``T_i`` and ``T_cur`` are part of the state dict.

    Examples
    --------
    >>> from minidl import Parameter
    >>> from minidl.optim import SGD
    >>> opt = SGD([Parameter(np.zeros(1))], lr=1.0)
    >>> sched = CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=2)
    >>> lrs = []
    >>> for epoch in range(7):
    ...     lrs.append(round(sched.get_last_lr()[0], 4)); sched.step()
    >>> lrs
    [1.0, 0.5, 1.0, 0.8536, 0.5, 0.1464, 1.0]
    """

    _hyper_names = ("T_0", "T_mult", "eta_min", "T_i", "T_cur")

    def __init__(self, optimizer, T_0, T_mult=1, eta_min=0.0):
        where = "CosineAnnealingWarmRestarts"
        param_groups_of(optimizer, where)
        values = self._check_hyper(dict(T_0=T_0, T_mult=T_mult, eta_min=eta_min, T_i=1, T_cur=0), where)
        self.T_0, self.T_mult, self.eta_min = values["T_0"], values["T_mult"], values["eta_min"]
        self.T_i, self.T_cur = self.T_0, 0
        super().__init__(optimizer)

    def _check_hyper(self, values, where):
        return {"T_0": int_at_least(values["T_0"], "T_0", where, 1),
                "T_mult": int_at_least(values["T_mult"], "T_mult", where, 1),
                "eta_min": real_number(values["eta_min"], "eta_min", where),
                "T_i": int_at_least(values["T_i"], "T_i", where, 1),
                "T_cur": int_at_least(values["T_cur"], "T_cur", where, 0)}

    def step(self) -> None:
        """Advance one step: ``T_cur`` grows by one, and at the end of a period restarts at 0
        with a period ``T_mult`` times longer.

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> from minidl.optim import SGD
        >>> opt = SGD(Dense(2, 1).parameters(), lr=1.0)
        >>> sched = CosineAnnealingWarmRestarts(opt, T_0=3)
        >>> for _ in range(3):
        ...     sched.step()
        >>> opt.lr, sched.T_cur  # restarted
        (1.0, 0)
        """
        self._group_lrs()
        if self.last_epoch < 0:  # the constructor's step (torch: epoch 0)
            self.T_i, self.T_cur = self.T_0, 0
        else:
            self.T_cur += 1
            if self.T_cur >= self.T_i:
                self.T_cur, self.T_i = self.T_cur % self.T_i, self.T_i * self.T_mult
        super().step()

    def get_lr(self):
        lo = self.eta_min
        return [lo + (base - lo) * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2 for base in self.base_lrs]
