"""The annealing schedules: LinearLR (a warm-up) and CosineAnnealingLR, stepped once per epoch
like :mod:`torch.optim.lr_scheduler`'s (the base class and the step decays: :mod:`.lr_scheduler`)."""

from __future__ import annotations

import math

from .lr_scheduler import LRScheduler, int_at_least, param_groups_of
from .optimizer import real_number

__all__ = ["LinearLR", "CosineAnnealingLR"]


class LinearLR(LRScheduler):
    """Scale the learning rate linearly from ``start_factor`` to ``end_factor`` of its
    initial value over ``total_iters`` epochs (torch's LinearLR; a warm-up).

    Parameters
    ----------
    optimizer : Optimizer
    start_factor : float in (0, 1], default 1/3
        Applied at construction.
    end_factor : float in [0, 1], default 1
    total_iters : int >= 1, default 5

    Notes
    -----
    After ``e`` calls to :meth:`step`,
    ``lr = base_lr * (s + (f - s) * min(e, total_iters) / total_iters)``
    with start and end factors ``s`` and ``f``; computed as torch does, by
    multiplying each group's current lr by
    ``1 + (f - s) / (total_iters * s + (e - 1) * (f - s))``.

    Examples
    --------
    >>> from minidl import Parameter
    >>> from minidl.optim import SGD
    >>> opt = SGD([Parameter(np.zeros(1))], lr=1.0)
    >>> sched = LinearLR(opt, start_factor=0.25, total_iters=3)
    >>> lrs = []
    >>> for epoch in range(5):
    ...     lrs.append(round(sched.get_last_lr()[0], 6)); sched.step()
    >>> lrs
    [0.25, 0.5, 0.75, 1.0, 1.0]
    """

    _hyper_names = ("start_factor", "end_factor", "total_iters")

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5):
        param_groups_of(optimizer, "LinearLR")
        self.start_factor, self.end_factor, self.total_iters = self._check_hyper(
            dict(start_factor=start_factor, end_factor=end_factor, total_iters=total_iters),
            "LinearLR").values()
        super().__init__(optimizer)

    def _check_hyper(self, values, where):
        start, end = real_number(values["start_factor"], "start_factor", where), \
            real_number(values["end_factor"], "end_factor", where)
        if not 0 < start <= 1 or end > 1:
            raise ValueError(f"{where}: start_factor must be in (0, 1] and end_factor in [0, 1]. "
                             f"Received: start_factor={start!r}, end_factor={end!r}")
        return {"start_factor": start, "end_factor": end,
                "total_iters": int_at_least(values["total_iters"], "total_iters", where, 1)}

    def get_lr(self):
        lrs = self._group_lrs()
        s, f, n, e = self.start_factor, self.end_factor, self.total_iters, self.last_epoch
        if e == 0:
            return [lr * s for lr in lrs]
        if self._initial or e > n:
            return lrs
        return [lr * (1.0 + (f - s) / (n * s + (e - 1) * (f - s))) for lr in lrs]

    def _closed_form_lr(self):
        s, f, n = self.start_factor, self.end_factor, self.total_iters
        return [base * (s + (f - s) * min(n, self.last_epoch) / n) for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Anneal the learning rate along a cosine from its initial value to ``eta_min`` over
    ``T_max`` epochs (torch's CosineAnnealingLR, in its recursive form).

    Parameters
    ----------
    optimizer : Optimizer
    T_max : int >= 1
        Epochs of a half period; past it the lr rises again (a full period is
        ``2 * T_max``), as torch's does.
    eta_min : float >= 0, default 0

    Notes
    -----
    The closed form, after ``e`` calls to :meth:`step`, is

    .. math::

        \\eta_e = \\eta_{min} + \\tfrac12 (\\eta_0 - \\eta_{min})
                  (1 + \\cos(\\pi e / T_{max}))

    but, like torch, each step updates each group's current lr recursively,

    .. math::

        \\eta_e = \\eta_{min} + (\\eta_{e-1} - \\eta_{min})
                  \\frac{1 + \\cos(\\pi e / T_{max})}{1 + \\cos(\\pi (e - 1) / T_{max})}

    (with :math:`\\eta_e = \\eta_{e-1} + (\\eta_0 - \\eta_{min})(1 - \\cos(\\pi / T_{max})) / 2`
    when :math:`e - 1 - T_{max}` is a multiple of :math:`2 T_{max}`), so an
    lr changed between steps carries on along the curve; the sequence equals
    torch's to the last bit, and the closed form to about 1e-16 relative.

    Examples
    --------
    >>> from minidl import Parameter
    >>> from minidl.optim import SGD
    >>> opt = SGD([Parameter(np.zeros(1))], lr=1.0)
    >>> sched = CosineAnnealingLR(opt, T_max=4)
    >>> lrs = []
    >>> for epoch in range(5):
    ...     lrs.append(round(sched.get_last_lr()[0], 6)); sched.step()
    >>> lrs
    [1.0, 0.853553, 0.5, 0.146447, 0.0]
    """

    _hyper_names = ("T_max", "eta_min")

    def __init__(self, optimizer, T_max, eta_min=0.0):
        param_groups_of(optimizer, "CosineAnnealingLR")
        self.T_max, self.eta_min = self._check_hyper(dict(T_max=T_max, eta_min=eta_min),
                                                     "CosineAnnealingLR").values()
        super().__init__(optimizer)

    def _check_hyper(self, values, where):
        return {"T_max": int_at_least(values["T_max"], "T_max", where, 1),
                "eta_min": real_number(values["eta_min"], "eta_min", where)}

    def get_lr(self):
        lrs = self._group_lrs()
        if self._initial:
            return lrs
        e, T, lo = self.last_epoch, self.T_max, self.eta_min
        if (e - 1 - T) % (2 * T) == 0:
            return [lr + (base - lo) * (1 - math.cos(math.pi / T)) / 2
                    for base, lr in zip(self.base_lrs, lrs)]
        return [(1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T)) * (lr - lo) + lo
                for lr in lrs]

    def _closed_form_lr(self):
        lo = self.eta_min
        return [lo + (base - lo) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base in self.base_lrs]
