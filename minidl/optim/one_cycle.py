"""The one-cycle policy, stepped once per batch, like torch's OneCycleLR."""

from __future__ import annotations

import math

from .lr_scheduler import LRScheduler, int_at_least, lr_list, param_groups_of
from .optimizer import check_flag, real_number

__all__ = ["OneCycleLR"]


def _per_group(value, n: int, name: str, where: str) -> list:
    if isinstance(value, (list, tuple)):
        return lr_list(value, n, name, where)
    return [real_number(value, name, where)] * n


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin), like :class:`torch.optim.lr_scheduler.OneCycleLR`.

    The lr rises from ``max_lr / div_factor`` to ``max_lr`` over the first
    ``pct_start`` of the steps, then anneals to
    ``max_lr / (div_factor * final_div_factor)``; the momentum (SGD's and
    RMSprop's ``momentum``, Adam's ``betas[0]``) cycles the other way between
    ``max_momentum`` and ``base_momentum``. Call :meth:`step` after every
    batch (``LearningRateScheduler(sched, interval="batch")`` does so in
    ``Trainer.fit``).

    Parameters
    ----------
    optimizer : Optimizer
    max_lr : float or list of float (one per group)
        The peak lr. The constructor sets each group's lr to
        ``max_lr / div_factor``.
    total_steps : int >= 1, optional
        Number of steps (batches) in the cycle; else ``epochs * steps_per_epoch``.
    epochs, steps_per_epoch : int >= 1, optional
    pct_start : float in [0, 1], default 0.3
        Fraction of the cycle spent raising the lr.
    anneal_strategy : 'cos' | 'linear', default 'cos'
    div_factor : float > 0, default 25
    final_div_factor : float > 0, default 1e4
    three_phase : bool, default False
        Go back down to ``max_lr / div_factor`` symmetrically, then anneal to
        the final lr (torch's third phase).
    cycle_momentum : bool, default True (keyword only)
        Cycle the momentum, as torch does by default; the optimizer must have
        a ``momentum`` or ``betas`` hyper-parameter.
    base_momentum, max_momentum : float or list of float, default 0.85, 0.95 (keyword only)

    Notes
    -----
    With phases ending at steps :math:`s_1 = p T - 1` and :math:`T - 1`
    (three-phase: :math:`p T - 1`, :math:`2 p T - 2`, :math:`T - 1`), step
    :math:`t` in the phase from :math:`s_a` to :math:`s_b` has the lr

    .. math::

        \\eta_t = \\text{anneal}(\\eta_a, \\eta_b, (t - s_a) / (s_b - s_a)), \\quad
        \\text{cos: } \\eta_b + \\tfrac12 (\\eta_a - \\eta_b)(1 + \\cos \\pi x), \\quad
        \\text{linear: } \\eta_a + (\\eta_b - \\eta_a) x

    Stepping past ``total_steps`` raises a ValueError, as torch's does.

    Examples
    --------
    >>> from minidl import Parameter
    >>> from minidl.optim import SGD
    >>> opt = SGD([Parameter(np.zeros(1))], lr=0.1, momentum=0.9)
    >>> sched = OneCycleLR(opt, max_lr=1.0, total_steps=10, anneal_strategy="linear")
    >>> lrs = []
    >>> for batch in range(10):
    ...     lrs.append(round(sched.get_last_lr()[0], 4)); sched.step()
    >>> lrs
    [0.04, 0.52, 1.0, 0.8571, 0.7143, 0.5714, 0.4286, 0.2857, 0.1429, 0.0]
    """

    _hyper_names = ("total_steps", "pct_start", "anneal_strategy", "three_phase",
                    "cycle_momentum", "initial_lrs", "max_lrs", "min_lrs", "base_momentums",
                    "max_momentums")

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
                 pct_start=0.3, anneal_strategy="cos", div_factor=25.0, final_div_factor=1e4,
                 three_phase=False, *, cycle_momentum=True, base_momentum=0.85,
                 max_momentum=0.95):
        where = "OneCycleLR"
        groups = param_groups_of(optimizer, where)
        n, self.optimizer = len(groups), optimizer
        if total_steps is not None:
            total_steps = int_at_least(total_steps, "total_steps", where, 1)
        elif epochs is not None and steps_per_epoch is not None:
            total_steps = int_at_least(epochs, "epochs", where, 1) * \
                int_at_least(steps_per_epoch, "steps_per_epoch", where, 1)
        else:
            raise ValueError(f"{where}: pass total_steps, or both epochs and steps_per_epoch. "
                             f"Received: total_steps={total_steps!r}, epochs={epochs!r}, "
                             f"steps_per_epoch={steps_per_epoch!r}")
        max_lrs = _per_group(max_lr, n, "max_lr", where)
        div = real_number(div_factor, "div_factor", where)
        final_div = real_number(final_div_factor, "final_div_factor", where)
        if div == 0 or final_div == 0:
            raise ValueError(f"{where}: div_factor and final_div_factor must be > 0. Received: "
                             f"div_factor={div_factor!r}, final_div_factor={final_div_factor!r}")
        initial = [m / div for m in max_lrs]
        values = dict(total_steps=total_steps, pct_start=pct_start, anneal_strategy=anneal_strategy,
                      three_phase=three_phase, cycle_momentum=cycle_momentum, initial_lrs=initial,
                      max_lrs=max_lrs, min_lrs=[i / final_div for i in initial],
                      base_momentums=_per_group(base_momentum, n, "base_momentum", where),
                      max_momentums=_per_group(max_momentum, n, "max_momentum", where))
        values = self._check_hyper(values, where)
        if values["cycle_momentum"]:
            keys = set(getattr(optimizer, "defaults", {}))
            if not keys & {"momentum", "betas"}:
                raise ValueError(f"{where}: cycle_momentum=True needs an optimizer with a momentum "
                                 f"or betas hyper-parameter; {type(optimizer).__name__} has "
                                 f"{sorted(keys)}. Pass cycle_momentum=False.")
        for k, v in values.items():
            setattr(self, k, v)
        start = 0.0
        for end, *_ in self._phases():
            if end == start:
                raise ValueError(f"{where}: pct_start={pct_start!r} with total_steps={total_steps} "
                                 "makes a phase of zero steps (torch divides by zero there). "
                                 "Change pct_start or total_steps.")
            start = end
        for i, group in enumerate(groups):
            group["lr"] = self.initial_lrs[i]
            if self.cycle_momentum:
                self._set_momentum(group, self.max_momentums[i])
        super().__init__(optimizer)

    def _check_hyper(self, values, where):
        pct = real_number(values["pct_start"], "pct_start", where)
        if pct > 1:
            raise ValueError(f"{where}: pct_start must be in [0, 1]. Received: pct_start={pct!r}")
        if values["anneal_strategy"] not in ("cos", "linear"):
            raise ValueError(f"{where}: anneal_strategy must be 'cos' or 'linear'. "
                             f"Received: anneal_strategy={values['anneal_strategy']!r}")
        n = len(self.optimizer.param_groups)
        out = {"total_steps": int_at_least(values["total_steps"], "total_steps", where, 1), "pct_start": pct,
               "anneal_strategy": values["anneal_strategy"],
               "three_phase": check_flag(values["three_phase"], "three_phase", where),
               "cycle_momentum": check_flag(values["cycle_momentum"], "cycle_momentum", where)}
        for name in self._hyper_names[5:]:
            out[name] = lr_list(values[name], n, name, where)
        return out

    @staticmethod
    def _set_momentum(group, value):
        if "betas" in group:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def _phases(self):
        T, p = self.total_steps, self.pct_start
        if self.three_phase:
            return [(float(p * T) - 1, "initial", "max", "max", "base"),
                    (float(2 * p * T) - 2, "max", "initial", "base", "max"),
                    (T - 1, "initial", "min", "max", "max")]
        return [(float(p * T) - 1, "initial", "max", "max", "base"),
                (T - 1, "max", "min", "base", "max")]

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def step(self) -> None:
        """Advance one batch; raises a ValueError (and changes nothing) past ``total_steps``.

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> from minidl.optim import SGD
        >>> opt = SGD(Dense(2, 1).parameters(), lr=0.1, momentum=0.9)
        >>> sched = OneCycleLR(opt, max_lr=1.0, total_steps=10)
        >>> round(opt.lr, 4), opt.momentum  # max_lr / div_factor (25)
        (0.04, 0.95)
        >>> for _ in range(3):
        ...     opt.step()  # (after the batch's backward)
        ...     sched.step()
        >>> round(opt.lr, 4), round(opt.momentum, 4)  # the peak is at step 3 (pct_start 0.3)
        (0.9505, 0.855)
        """
        if self.last_epoch + 1 > self.total_steps:
            raise ValueError(
                f"OneCycleLR.step: step {self.last_epoch + 1} is past total_steps="
                f"{self.total_steps}. Create the scheduler with total_steps (or epochs and "
                "steps_per_epoch) covering every batch it will be stepped for."
            )
        super().step()

    def get_lr(self):
        t, lrs = self.last_epoch, []
        phases = self._phases()
        for i, group in enumerate(self.optimizer.param_groups):
            lr_of = {"initial": self.initial_lrs[i], "max": self.max_lrs[i], "min": self.min_lrs[i]}
            mom_of = {"max": self.max_momentums[i], "base": self.base_momentums[i]}
            start = 0.0
            for k, (end, lr_a, lr_b, m_a, m_b) in enumerate(phases):
                if t <= end or k == len(phases) - 1:
                    pct = (t - start) / (end - start)
                    lrs.append(self._anneal(lr_of[lr_a], lr_of[lr_b], pct))
                    if self.cycle_momentum:
                        self._set_momentum(group, self._anneal(mom_of[m_a], mom_of[m_b], pct))
                    break
                start = end
        return lrs
