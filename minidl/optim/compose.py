"""Schedules made of schedules: SequentialLR (one after another, switching at milestones) and
ChainedScheduler (all of them at every step), like torch's (the base class: :mod:`.lr_scheduler`)."""

from __future__ import annotations

import bisect

from .lr_scheduler import LRScheduler, int_at_least, lr_list, param_groups_of
from .optimizer_state import check_state_keys

__all__ = ["SequentialLR", "ChainedScheduler"]


def _check_schedulers(schedulers, optimizer, where: str, nested: bool) -> list:
    if not isinstance(schedulers, (list, tuple)) or not schedulers:
        raise ValueError(f"{where}: schedulers must be a non-empty list of schedulers (e.g. [LinearLR(opt), "
                         f"ExponentialLR(opt, 0.9)]). Received: {schedulers!r:.200}")
    for i, sched in enumerate(schedulers):
        if type(sched).__name__ == "ReduceLROnPlateau":
            raise ValueError(f"{where}: ReduceLROnPlateau (at index {i}) cannot be combined: its step "
                             "takes the metric. Step it separately.")
        if not isinstance(sched, LRScheduler) or not nested and isinstance(sched, _Composite):
            kinds = "minidl.optim schedulers" + ("" if nested else " (not SequentialLR or ChainedScheduler)")
            raise TypeError(f"{where}: schedulers must be {kinds}. Received: {type(sched).__name__} at "
                            f"index {i}.")
        if sched.optimizer is not optimizer:
            raise ValueError(f"{where}: every scheduler must belong to the same optimizer; the one at index "
                             f"{i} ({type(sched).__name__}) has another. Create them all on one optimizer.")
    return list(schedulers)


class _Composite(LRScheduler):
    """The state dicts of schedules made of schedules: theirs under ``"schedulers"``."""

    _keys: tuple = ()

    def _check_own(self, sd: dict, where: str) -> dict:
        return {}

    def state_dict(self) -> dict:
        """The schedule's own counters and the state dict of each of its schedulers.

        Returns
        -------
        dict

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> from minidl.optim import SGD, ChainedScheduler, ConstantLR, ExponentialLR
        >>> opt = SGD(Dense(2, 1).parameters(), lr=1.0)
        >>> sched = ChainedScheduler([ConstantLR(opt, 0.5), ExponentialLR(opt, 0.9)])
        >>> [s["last_epoch"] for s in sched.state_dict()["schedulers"]]
        [0, 0]
        """
        own = {k: list(v) if isinstance(v, list) else v for k, v in ((k, getattr(self, k)) for k in self._keys)}
        return {**own, "last_lr": list(self._last_lr), "schedulers": [s.state_dict() for s in self._schedulers]}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore from :meth:`state_dict`, its schedulers too; on a malformed state a
        ValueError, and nothing is changed.

        Parameters
        ----------
        state_dict : dict
            As :meth:`state_dict` returns it.

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> from minidl.optim import SGD, ChainedScheduler, ConstantLR, ExponentialLR
        >>> opt = SGD(Dense(2, 1).parameters(), lr=1.0)
        >>> sched = ChainedScheduler([ConstantLR(opt, 0.5), ExponentialLR(opt, 0.9)])
        >>> state = sched.state_dict(); state["schedulers"][1]["last_epoch"] = 4
        >>> sched.load_state_dict(state)
        >>> sched._schedulers[1].last_epoch
        4
        """
        name = type(self).__name__
        where = f"{name}.load_state_dict"
        sd = check_state_keys(state_dict, {*self._keys, "last_lr", "schedulers"}, name)
        states = sd["schedulers"]
        if not isinstance(states, list) or len(states) != len(self._schedulers):
            raise ValueError(f"{where}: schedulers must be a list of {len(self._schedulers)} state dicts. "
                             f"Received: {states!r:.200}")
        last = lr_list(sd["last_lr"], len(self.optimizer.param_groups), "last_lr", where)
        own = self._check_own(sd, where)
        backup = [s.state_dict() for s in self._schedulers]
        try:
            for sched, state in zip(self._schedulers, states):
                sched.load_state_dict(state)
        except Exception:
            for sched, state in zip(self._schedulers, backup):
                sched.load_state_dict(state)
            raise
        for k, v in own.items():
            setattr(self, k, v)
        self._last_lr = last

    def __repr__(self) -> str:
        names = ", ".join(type(s).__name__ for s in self._schedulers)
        own = "".join(f", {k}={getattr(self, k)!r}" for k in self._keys)
        return f"{type(self).__name__}(schedulers=[{names}]{own})"


class SequentialLR(_Composite):
    """Run schedulers one after another, switching at the milestone epochs (torch's SequentialLR;
    e.g. a warm-up, then a decay).

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer of every scheduler.
    schedulers : list of LRScheduler
        Built on ``optimizer`` (not ReduceLROnPlateau, SequentialLR or ChainedScheduler).
        The constructor undoes their initial steps and starts the first one.
    milestones : list of int >= 0, sorted
        One fewer than ``schedulers``: at epoch ``milestones[i]`` scheduler ``i + 1``
        takes over, starting at its own epoch 0.

    Raises
    ------
    ValueError
        An empty list, schedulers of another optimizer, a ReduceLROnPlateau, or
        milestones that are not sorted ints or not one fewer than the schedulers.
    TypeError
        Something that is not a minidl scheduler.

    Notes
    -----
    As torch: a scheduler taking over at a milestone starts from its closed
    form at epoch 0 (each group's initial lr times its first factor) where it
    has one, else from its ``get_lr``; the state dict holds the schedulers'.

    Examples
    --------
    >>> from minidl import Parameter
    >>> from minidl.optim import SGD, LinearLR, ExponentialLR
    >>> opt = SGD([Parameter(np.zeros(1))], lr=1.0)
    >>> warmup = LinearLR(opt, start_factor=0.25, total_iters=3)
    >>> sched = SequentialLR(opt, [warmup, ExponentialLR(opt, gamma=0.5)], milestones=[3])
    >>> lrs = []
    >>> for epoch in range(6):
    ...     lrs.append(sched.get_last_lr()[0]); sched.step()
    >>> lrs
    [0.25, 0.5, 0.75, 1.0, 0.5, 0.25]
    """

    _keys = ("milestones", "last_epoch")

    def __init__(self, optimizer, schedulers, milestones):
        where = "SequentialLR"
        groups = param_groups_of(optimizer, where)
        schedulers = _check_schedulers(schedulers, optimizer, where, nested=False)
        self.milestones = self._check_milestones(milestones, len(schedulers), where)
        self._schedulers, self.optimizer, self.last_epoch = schedulers, optimizer, 0
        for group in groups:
            group["lr"] = group["initial_lr"]
        for sched in schedulers:  # torch's recursive_undo
            sched.last_epoch -= 1
        first = schedulers[bisect.bisect_right(self.milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    @staticmethod
    def _check_milestones(milestones, n: int, where: str) -> list:
        if not isinstance(milestones, (list, tuple)) or len(milestones) != n - 1:
            raise ValueError(f"{where}: milestones must be a list of {n - 1} epochs (one fewer than the "
                             f"{n} schedulers). Received: milestones={milestones!r:.200}")
        out = [int_at_least(m, f"milestones[{i}]", where, 0) for i, m in enumerate(milestones)]
        if out != sorted(out):
            raise ValueError(f"{where}: milestones must be sorted (the epochs at which the next scheduler "
                             f"takes over). Received: milestones={milestones!r}")
        return out

    def _check_own(self, sd, where):
        return {"milestones": self._check_milestones(sd["milestones"], len(self._schedulers), where),
                "last_epoch": int_at_least(sd["last_epoch"], "last_epoch", where, 0)}

    def step(self) -> None:
        """Advance one epoch: the scheduler of the new epoch steps, or starts at a milestone.

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> from minidl.optim import SGD, ConstantLR, StepLR
        >>> opt = SGD(Dense(2, 1).parameters(), lr=1.0)
        >>> sched = SequentialLR(opt, [ConstantLR(opt, 0.1, 2), StepLR(opt, 1, 0.5)], milestones=[2])
        >>> sched.step(); sched.step(); opt.lr  # the StepLR starts from the initial lr
        1.0
        >>> sched.step(); opt.lr
        0.5
        """
        epoch = self.last_epoch + 1
        idx = bisect.bisect_right(self.milestones, epoch)
        sched = self._schedulers[idx]
        if idx > 0 and self.milestones[idx - 1] == epoch:
            sched._restart()
        else:
            sched.step()
        self.last_epoch = epoch
        self._last_lr = sched.get_last_lr()


class ChainedScheduler(_Composite):
    """Step several schedulers together, each one's change applied on top of the others'
    (torch's ChainedScheduler).

    Parameters
    ----------
    schedulers : list of LRScheduler
        Built on one optimizer (not ReduceLROnPlateau); stepped in this order.
    optimizer : Optimizer, optional
        Their optimizer; default the first scheduler's.

    Raises
    ------
    ValueError
        An empty list, schedulers of another optimizer, or a ReduceLROnPlateau.
    TypeError
        Something that is not a minidl scheduler.

    Notes
    -----
    Schedules that multiply the current lr (ConstantLR, ExponentialLR, StepLR,
    ...) compose into the product of their factors; one that sets the lr from
    its initial value (LambdaLR, CyclicLR, ...) overrides those before it.

    Examples
    --------
    >>> from minidl import Parameter
    >>> from minidl.optim import SGD, ConstantLR, ExponentialLR
    >>> opt = SGD([Parameter(np.zeros(1))], lr=1.0)
    >>> sched = ChainedScheduler([ConstantLR(opt, factor=0.5, total_iters=2), ExponentialLR(opt, gamma=0.5)])
    >>> lrs = []
    >>> for epoch in range(4):
    ...     lrs.append(sched.get_last_lr()[0]); sched.step()
    >>> lrs
    [0.5, 0.25, 0.25, 0.125]
    """

    def __init__(self, schedulers, optimizer=None):
        where = "ChainedScheduler"
        if optimizer is None and isinstance(schedulers, (list, tuple)) and schedulers:
            optimizer = getattr(schedulers[0], "optimizer", None)
        self._schedulers = _check_schedulers(schedulers, optimizer, where, nested=True)
        self.optimizer = optimizer
        self._last_lr = [g["lr"] for g in param_groups_of(optimizer, where)]

    def step(self) -> None:
        """Step every scheduler, in order.

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> from minidl.optim import SGD, ExponentialLR, StepLR
        >>> opt = SGD(Dense(2, 1).parameters(), lr=1.0)
        >>> sched = ChainedScheduler([ExponentialLR(opt, 0.5), StepLR(opt, 2, 0.1)])
        >>> sched.step(); sched.step(); round(opt.lr, 6)
        0.025
        """
        for sched in self._schedulers:
            sched.step()
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]
