"""Learning-rate schedules stepped once per epoch, like :mod:`torch.optim.lr_scheduler`: the base
class and the step decays here, the annealing schedules (LinearLR, CosineAnnealingLR) in
:mod:`minidl.optim.annealing` (which builds on this module; :mod:`minidl.optim` exports both)."""

from __future__ import annotations

import bisect
import numbers

import numpy as np

from .optimizer import real_number
from .optimizer_state import check_state_keys

__all__ = ["LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR"]


def int_at_least(value, name: str, where: str, minimum: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)) \
            or value < minimum:
        raise ValueError(f"{where}: {name} must be an int >= {minimum}. Received: {name}={value!r}")
    return int(value)


def param_groups_of(optimizer, where: str) -> list:
    groups = getattr(optimizer, "param_groups", None)  # (not opt.lr: it raises when groups differ)
    if not isinstance(groups, list) or not groups \
            or not all(isinstance(g, dict) and "lr" in g for g in groups):
        raise TypeError(f"{where}: optimizer must have an lr attribute and param_groups, like "
                        f"minidl.optim's optimizers (e.g. SGD). Received: {type(optimizer).__name__}.")
    return groups


def lr_list(values, n: int, name: str, where: str) -> list:
    if not isinstance(values, (list, tuple)) or len(values) != n:
        raise ValueError(f"{where}: {name} must be a list of {n} learning rates (one per parameter "
                         f"group). Received: {name}={values!r:.200}")
    return [real_number(v, f"{name}[{i}]", where) for i, v in enumerate(values)]


class LRScheduler:
    """Base class of the epoch schedules, like :class:`torch.optim.lr_scheduler.LRScheduler`.

    The constructor records each group's lr as ``base_lrs`` (as torch, the
    first scheduler of an optimizer keeps it in the group as ``"initial_lr"``,
    and later ones start from that) and takes the
    initial step (``last_epoch`` becomes 0; some schedules, such as
    :class:`LinearLR`, set their first lr there). Each :meth:`step` advances
    ``last_epoch`` and sets every group's lr from :meth:`get_lr`. A subclass
    lists its hyper-parameters in ``_hyper_names`` and implements
    ``_check_hyper(values, where)`` and :meth:`get_lr`.

    Parameters
    ----------
    optimizer : Optimizer
        A minidl optimizer (it has ``param_groups``).

    Examples
    --------
    >>> from minidl.layers import Dense
    >>> from minidl.optim import SGD
    >>> class Halve(LRScheduler):
    ...     def _check_hyper(self, values, where):
    ...         return values
    ...     def get_lr(self):
    ...         return [base * 0.5 ** self.last_epoch for base in self.base_lrs]
    >>> sched = Halve(SGD(Dense(2, 1).parameters(), lr=1.0))
    >>> for _ in range(3):
    ...     sched.step()
    >>> sched.get_last_lr()
    [0.125]
    """

    _hyper_names: tuple = ()

    def __init__(self, optimizer):
        where = type(self).__name__
        self.optimizer = optimizer
        # torch's initial_lr: the lr before any scheduler, shared by every scheduler of the optimizer
        self.base_lrs = [float(g.setdefault("initial_lr", g["lr"])) for g in param_groups_of(optimizer, where)]
        self.last_epoch = -1
        self._initial_step()

    def _initial_step(self) -> None:
        self._step_count = 0
        self._initial = True  # torch's _is_initial: the constructor's step
        try:
            self.step()
        finally:
            self._initial = False

    def _restart(self) -> None:
        """torch's ``_update_lr(0)`` (SequentialLR at a milestone): epoch 0 again, from the
        closed form where the schedule has one."""
        self._group_lrs()
        closed = getattr(self, "_closed_form_lr", None)
        epoch, self.last_epoch = self.last_epoch, 0
        try:
            lrs = closed() if closed else self.get_lr()
        except Exception:
            self.last_epoch = epoch
            raise
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = float(lr)
        self._last_lr = self._group_lrs()

    def _check_hyper(self, values: dict, where: str) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_lr(self) -> list:  # pragma: no cover - abstract
        """The lrs of epoch ``last_epoch`` (called by :meth:`step` after it advanced the count).

        Returns
        -------
        list of float
            One lr per parameter group.
        """
        raise NotImplementedError

    def _group_lrs(self) -> list:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.base_lrs):
            raise RuntimeError(
                f"{type(self).__name__}.step: the optimizer has {len(groups)} parameter groups but "
                f"had {len(self.base_lrs)} when the scheduler was created. Create the scheduler "
                "after the last add_param_group."
            )
        return [g["lr"] for g in groups]

    def step(self) -> None:
        """Advance one epoch (call it after the epoch's optimizer steps), setting every
        group's lr.

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> from minidl.optim import SGD, StepLR
        >>> opt = SGD(Dense(2, 1).parameters(), lr=1.0)
        >>> sched = StepLR(opt, step_size=2, gamma=0.5)
        >>> for epoch in range(4):
        ...     # ... the epoch's batches: opt.step() ...
        ...     sched.step()
        >>> opt.lr
        0.25
        """
        self._group_lrs()
        self._step_count += 1
        self.last_epoch += 1
        try:
            lrs = self.get_lr()
        except Exception:  # (a user's lr_lambda): the counts stay as they were
            self._step_count -= 1
            self.last_epoch -= 1
            raise
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = float(lr)
        self._last_lr = self._group_lrs()

    def get_last_lr(self) -> list:
        """The lrs set by the last :meth:`step`, one per parameter group (a list, as torch).

        Returns
        -------
        list of float

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> from minidl.optim import SGD, StepLR
        >>> opt = SGD(Dense(2, 1).parameters(), lr=1.0)
        >>> sched = StepLR(opt, step_size=2, gamma=0.5)
        >>> sched.step(); sched.step()
        >>> sched.get_last_lr()
        [0.5]
        """
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """The hyper-parameters, ``base_lrs``, ``last_epoch``, the step count and the last lrs.

        Returns
        -------
        dict

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> from minidl.optim import SGD, StepLR
        >>> opt = SGD(Dense(2, 1).parameters(), lr=1.0)
        >>> sched = StepLR(opt, step_size=2, gamma=0.5)
        >>> sched.state_dict()
        {'step_size': 2, 'gamma': 0.5, 'base_lrs': [1.0], 'last_epoch': 0, 'step_count': 1, 'last_lr': [1.0]}
        """
        return {**{n: getattr(self, n) for n in self._hyper_names},
                "base_lrs": list(self.base_lrs), "last_epoch": self.last_epoch,
                "step_count": self._step_count, "last_lr": list(self._last_lr)}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore from :meth:`state_dict`; a ValueError (and no change) on a malformed state.

        Parameters
        ----------
        state_dict : dict
            As :meth:`state_dict` returns it. The optimizer's lrs are not set: they
            come with the optimizer's own state dict.

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> from minidl.optim import SGD, StepLR
        >>> opt = SGD(Dense(2, 1).parameters(), lr=1.0)
        >>> sched = StepLR(opt, step_size=2, gamma=0.5)
        >>> state = sched.state_dict(); state["last_epoch"] = 5
        >>> sched.load_state_dict(state)
        >>> sched.last_epoch
        5
        """
        where = f"{type(self).__name__}.load_state_dict"
        sd = check_state_keys(self._legacy(state_dict), {*self._hyper_names, "base_lrs", "last_epoch",
                                                         "step_count", "last_lr"}, type(self).__name__)
        n = len(self.optimizer.param_groups)
        hyper = self._check_hyper({k: sd[k] for k in self._hyper_names}, where)
        base, last = lr_list(sd["base_lrs"], n, "base_lrs", where), lr_list(sd["last_lr"], n, "last_lr", where)
        epoch = int_at_least(sd["last_epoch"], "last_epoch", where, -1)  # -1: waiting in a SequentialLR
        count = int_at_least(sd["step_count"], "step_count", where, 1)
        for k, v in hyper.items():
            setattr(self, k, v)
        self.base_lrs, self._last_lr, self.last_epoch, self._step_count = base, last, epoch, count

    def _legacy(self, state_dict):
        return state_dict

    def __repr__(self) -> str:
        hyper = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._hyper_names)
        return f"{type(self).__name__}({hyper}, last_epoch={self.last_epoch})"


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs (torch's StepLR).

    Call :meth:`step` once per epoch, after the epoch's optimizer steps.

    Parameters
    ----------
    optimizer : Optimizer
    step_size : int >= 1
    gamma : float >= 0, default 0.1

    Notes
    -----
    After ``e`` calls to :meth:`step`, ``lr = base_lr * gamma ** (e // step_size)``
    (applied multiplicatively to each group's current lr, as torch does).

    Examples
    --------
    >>> from minidl import Parameter
    >>> from minidl.optim import SGD
    >>> opt = SGD([Parameter(np.zeros(1))], lr=1.0)
    >>> sched = StepLR(opt, step_size=2, gamma=0.5)
    >>> lrs = []
    >>> for epoch in range(5):
    ...     lrs.append(sched.get_last_lr()[0]); sched.step()
    >>> lrs
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    _hyper_names = ("step_size", "gamma")

    def __init__(self, optimizer, step_size, gamma=0.1):
        param_groups_of(optimizer, "StepLR")
        self.step_size, self.gamma = self._check_hyper(dict(step_size=step_size, gamma=gamma),
                                                       "StepLR").values()
        super().__init__(optimizer)

    def _check_hyper(self, values, where):
        return {"step_size": int_at_least(values["step_size"], "step_size", where, 1),
                "gamma": real_number(values["gamma"], "gamma", where)}

    def get_lr(self):
        lrs = self._group_lrs()
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return lrs
        return [lr * self.gamma for lr in lrs]

    def _closed_form_lr(self):
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]

    def _legacy(self, sd):  # minidl 0.x: one lr, no step count
        if isinstance(sd, dict) and set(sd) == {"step_size", "gamma", "base_lr", "last_epoch", "last_lr"}:
            n = len(self.optimizer.param_groups)
            return {"step_size": sd["step_size"], "gamma": sd["gamma"], "base_lrs": [sd["base_lr"]] * n,
                    "last_epoch": sd["last_epoch"], "step_count": sd["last_epoch"] + 1,
                    "last_lr": [sd["last_lr"]] * n}
        return sd


class MultiStepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` at each milestone epoch (torch's MultiStepLR).

    Parameters
    ----------
    optimizer : Optimizer
    milestones : iterable of int >= 0
        Epoch counts at which to decay; a milestone listed twice decays twice.
    gamma : float >= 0, default 0.1

    Notes
    -----
    After ``e`` calls to :meth:`step`,
    ``lr = base_lr * gamma ** (number of milestones <= e)``, applied
    multiplicatively to each group's current lr.

    Examples
    --------
    >>> from minidl import Parameter
    >>> from minidl.optim import SGD
    >>> opt = SGD([Parameter(np.zeros(1))], lr=1.0)
    >>> sched = MultiStepLR(opt, milestones=[2, 4], gamma=0.5)
    >>> lrs = []
    >>> for epoch in range(6):
    ...     lrs.append(sched.get_last_lr()[0]); sched.step()
    >>> lrs
    [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    """

    _hyper_names = ("milestones", "gamma")

    def __init__(self, optimizer, milestones, gamma=0.1):
        param_groups_of(optimizer, "MultiStepLR")
        self.milestones, self.gamma = self._check_hyper(dict(milestones=milestones, gamma=gamma),
                                                        "MultiStepLR").values()
        super().__init__(optimizer)

    def _check_hyper(self, values, where):
        try:
            milestones = list(values["milestones"])
        except TypeError:
            raise ValueError(f"{where}: milestones must be a list of epoch counts (ints >= 0). "
                             f"Received: milestones={values['milestones']!r}") from None
        return {"milestones": sorted(int_at_least(m, f"milestones[{i}]", where, 0)
                                     for i, m in enumerate(milestones)),
                "gamma": real_number(values["gamma"], "gamma", where)}

    def get_lr(self):
        count = self.milestones.count(self.last_epoch)
        lrs = self._group_lrs()
        return [lr * self.gamma ** count for lr in lrs] if count else lrs

    def _closed_form_lr(self):
        return [base * self.gamma ** bisect.bisect_right(self.milestones, self.last_epoch)
                for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every epoch (torch's ExponentialLR).

    Parameters
    ----------
    optimizer : Optimizer
    gamma : float >= 0

    Notes
    -----
    After ``e`` calls to :meth:`step`, ``lr = base_lr * gamma ** e`` (one
    multiplication per step, as torch).

    Examples
    --------
    >>> from minidl import Parameter
    >>> from minidl.optim import SGD
    >>> opt = SGD([Parameter(np.zeros(1))], lr=1.0)
    >>> sched = ExponentialLR(opt, gamma=0.5)
    >>> sched.step(); sched.step(); sched.get_last_lr()
    [0.25]
    """

    _hyper_names = ("gamma",)

    def __init__(self, optimizer, gamma):
        param_groups_of(optimizer, "ExponentialLR")
        self.gamma = self._check_hyper(dict(gamma=gamma), "ExponentialLR")["gamma"]
        super().__init__(optimizer)

    def _check_hyper(self, values, where):
        return {"gamma": real_number(values["gamma"], "gamma", where)}

    def get_lr(self):
        lrs = self._group_lrs()
        return lrs if self._initial else [lr * self.gamma for lr in lrs]

    def _closed_form_lr(self):
        return [base * self.gamma ** self.last_epoch for base in self.base_lrs]
