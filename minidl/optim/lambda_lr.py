"""The schedules of user functions: LambdaLR and MultiplicativeLR, stepped once per epoch like
torch's (the base class: :mod:`minidl.optim.lr_scheduler`).

Their state dicts leave the functions out, as torch's do: a plain function or lambda is
saved as ``None`` (rebuild the scheduler with the same function, then load the state), a
callable object as a copy of its ``__dict__`` (restored into the new scheduler's object)."""

from __future__ import annotations

import types

from .lr_scheduler import LRScheduler, param_groups_of

__all__ = ["LambdaLR", "MultiplicativeLR"]


class _FunctionSchedule(LRScheduler):
    """The common part: one function per group, and state dicts without the functions."""

    def __init__(self, optimizer, lr_lambda):
        where = type(self).__name__
        n = len(param_groups_of(optimizer, where))
        lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * n
        if len(lambdas) != n:
            raise ValueError(f"{where}: lr_lambda must be one function, or a list of {n} (one per "
                             f"parameter group). Received: a list of {len(lambdas)}.")
        for i, fn in enumerate(lambdas):
            if not callable(fn):
                raise TypeError(f"{where}: lr_lambda must be a function of the epoch count (e.g. "
                                f"lambda epoch: 0.95 ** epoch). Received: {type(fn).__name__} at "
                                f"index {i}.")
        self.lr_lambdas = lambdas
        super().__init__(optimizer)

    def _check_hyper(self, values, where):
        return values

    def _factor(self, i: int) -> float:
        fn = self.lr_lambdas[i]
        value = fn(self.last_epoch)
        if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
            raise TypeError(f"{type(self).__name__}.step: lr_lambda[{i}]({self.last_epoch}) must return "
                            f"a number (the factor). Received: {value!r:.100}")
        return value

    def state_dict(self) -> dict:
        """As the base class's, plus ``lr_lambdas``: ``None`` for a plain function or lambda, a
        copy of the ``__dict__`` of a callable object (the functions themselves are left out,
        as torch does).

        Returns
        -------
        dict

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> from minidl.optim import SGD, LambdaLR
        >>> sched = LambdaLR(SGD(Dense(2, 1).parameters(), lr=1.0), lambda epoch: 0.5 ** epoch)
        >>> sched.state_dict()["lr_lambdas"]
        [None]
        """
        saved = [None if isinstance(fn, types.FunctionType) else dict(vars(fn)) if hasattr(fn, "__dict__")
                 else None for fn in self.lr_lambdas]
        return {**super().state_dict(), "lr_lambdas": saved}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore from :meth:`state_dict`; the functions stay those of this scheduler.

        Parameters
        ----------
        state_dict : dict
            As :meth:`state_dict` returns it.

        Raises
        ------
        ValueError
            A malformed state (nothing is changed).

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> from minidl.optim import SGD, LambdaLR
        >>> sched = LambdaLR(SGD(Dense(2, 1).parameters(), lr=1.0), lambda epoch: 0.5 ** epoch)
        >>> state = sched.state_dict(); state["last_epoch"] = 3
        >>> sched.load_state_dict(state)
        >>> sched.last_epoch
        3
        """
        where = f"{type(self).__name__}.load_state_dict"
        saved = state_dict.get("lr_lambdas") if isinstance(state_dict, dict) else None
        if not isinstance(saved, list) or len(saved) != len(self.lr_lambdas) \
                or not all(s is None or isinstance(s, dict) for s in saved):
            raise ValueError(f"{where}: expected lr_lambdas, a list of {len(self.lr_lambdas)} entries "
                             f"(None or a dict). Received: {saved!r:.200}. Pass the result of "
                             f"{type(self).__name__}.state_dict().")
        super().load_state_dict({k: v for k, v in state_dict.items() if k != "lr_lambdas"})
        for fn, attrs in zip(self.lr_lambdas, saved):
            if attrs is not None:
                vars(fn).update(attrs)


class LambdaLR(_FunctionSchedule):
    """Set each group's lr to its initial lr times a function of the epoch count (torch's
    LambdaLR).

    Parameters
    ----------
    optimizer : Optimizer
    lr_lambda : callable(int) -> float, or a list of them (one per parameter group)
        The factor of epoch ``e``; called at construction with 0.

    Raises
    ------
    ValueError
        A list of the wrong length.
    TypeError
        Something not callable, or a factor that is not a number.

    Notes
    -----
    After ``e`` calls to :meth:`step`, ``lr = base_lr * lr_lambda(e)``. The state
    dict leaves the functions out, as torch's does: to resume, build the
    scheduler with the same functions, then load the state.

    Examples
    --------
    >>> from minidl import Parameter
    >>> from minidl.optim import SGD
    >>> opt = SGD([Parameter(np.zeros(1))], lr=1.0)
    >>> sched = LambdaLR(opt, lambda epoch: 1 / (epoch + 1))
    >>> lrs = []
    >>> for epoch in range(4):
    ...     lrs.append(sched.get_last_lr()[0]); sched.step()
    >>> lrs
    [1.0, 0.5, 0.3333333333333333, 0.25]
    """

    def get_lr(self):
        return [base * self._factor(i) for i, base in enumerate(self.base_lrs)]


class MultiplicativeLR(_FunctionSchedule):
    """Multiply each group's lr by a function of the epoch count at every step (torch's
    MultiplicativeLR).

    Parameters
    ----------
    optimizer : Optimizer
    lr_lambda : callable(int) -> float, or a list of them (one per parameter group)
        The factor applied at step ``e`` (not called at construction).

    Raises
    ------
    ValueError
        A list of the wrong length.
    TypeError
        Something not callable, or a factor that is not a number.

    Notes
    -----
    After ``e`` calls to :meth:`step`, ``lr = base_lr * lr_lambda(1) * ... * lr_lambda(e)``,
    applied to each group's current lr. The state dict leaves the functions out,
    as torch's does.

    Examples
    --------
    >>> from minidl import Parameter
    >>> from minidl.optim import SGD
    >>> opt = SGD([Parameter(np.zeros(1))], lr=1.0)
    >>> sched = MultiplicativeLR(opt, lambda epoch: 0.5)
    >>> sched.step(); sched.step(); sched.get_last_lr()
    [0.25]
    """

    def get_lr(self):
        lrs = self._group_lrs()
        if self._initial:
            return lrs
        return [lr * self._factor(i) for i, lr in enumerate(lrs)]
