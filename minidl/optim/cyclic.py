"""Cyclical learning rates (Smith), stepped once per batch, like torch's CyclicLR
(the base class: :mod:`minidl.optim.lr_scheduler`)."""

from __future__ import annotations

import math
import types

from .lr_scheduler import LRScheduler, int_at_least, lr_list, param_groups_of
from .one_cycle import _per_group
from .optimizer import check_flag, real_number

__all__ = ["CyclicLR"]

_MODES = ("triangular", "triangular2", "exp_range")


class CyclicLR(LRScheduler):
    """Cycle the learning rate between ``base_lr`` and ``max_lr`` (torch's CyclicLR), the
    momentum the other way between ``max_momentum`` and ``base_momentum``.

    Call :meth:`step` after every batch (``LearningRateScheduler(sched,
    interval="batch")`` does so in ``Trainer.fit``).

    Parameters
    ----------
    optimizer : Optimizer
    base_lr : float or list of float (one per group)
        The lower bound; the constructor sets each group's lr to it.
    max_lr : float or list of float (one per group)
        The upper bound (reached only where the scale is 1).
    step_size_up : int >= 1, default 2000
        Steps of the rising half of a cycle.
    step_size_down : int >= 1, optional
        Steps of the falling half; default ``step_size_up``.
    mode : 'triangular' | 'triangular2' | 'exp_range', default 'triangular'
        The amplitude's scale: 1; halved every cycle; ``gamma ** step``. Ignored
        when ``scale_fn`` is given.
    gamma : float >= 0, default 1
        The base of 'exp_range'.
    scale_fn : callable(float) -> float, optional
        A custom scale in [0, 1], of the cycle number or the step count (see
        ``scale_mode``). Like torch's state dict, :meth:`state_dict` leaves it out
        (a callable object's ``__dict__`` is kept).
    scale_mode : 'cycle' | 'iterations', default 'cycle'
        The argument of ``scale_fn`` (the built-in modes set it themselves).
    cycle_momentum : bool, default True
        Cycle the momentum (SGD's and RMSprop's ``momentum``, Adam's ``betas[0]``),
        as torch does by default; the optimizer must have one.
    base_momentum, max_momentum : float or list of float, default 0.8, 0.9
        The momentum's bounds; the constructor sets it to ``max_momentum``.

    Raises
    ------
    ValueError
        A bad mode, size, bound or list length, or ``cycle_momentum`` with an
        optimizer that has no momentum.
    TypeError
        A ``scale_fn`` that is not callable.

    Notes
    -----
    With :math:`c = \\lfloor 1 + t / (u + d) \\rfloor` the cycle of step :math:`t`,
    :math:`x = 1 + t / (u + d) - c` its position and :math:`r = u / (u + d)`,

    .. math::

        \\eta_t = \\eta_{base} + (\\eta_{max} - \\eta_{base})\\, s(x)\\, \\text{scale}, \\quad
        s(x) = x / r \\text{ if } x \\le r \\text{ else } (x - 1) / (r - 1)

    with scale 1 (triangular), :math:`2^{1 - c}` (triangular2) or :math:`\\gamma^t`
    (exp_range); the momentum is :math:`m_{max} - (m_{max} - m_{base}) s(x)\\, \\text{scale}`.

    Examples
    --------
    >>> from minidl import Parameter
    >>> from minidl.optim import SGD
    >>> opt = SGD([Parameter(np.zeros(1))], lr=0.1, momentum=0.9)
    >>> sched = CyclicLR(opt, base_lr=0.1, max_lr=0.5, step_size_up=2, mode="triangular2")
    >>> lrs = []
    >>> for batch in range(9):
    ...     lrs.append(round(sched.get_last_lr()[0], 4)); sched.step()
    >>> lrs
    [0.1, 0.3, 0.5, 0.3, 0.1, 0.2, 0.3, 0.2, 0.1]
    """

    _hyper_names = ("max_lrs", "step_size_up", "step_size_down", "mode", "gamma", "scale_mode",
                    "cycle_momentum", "use_beta1", "base_momentums", "max_momentums")

    def __init__(self, optimizer, base_lr, max_lr, step_size_up=2000, step_size_down=None,
                 mode="triangular", gamma=1.0, scale_fn=None, scale_mode="cycle", cycle_momentum=True,
                 base_momentum=0.8, max_momentum=0.9):
        where = "CyclicLR"
        groups = param_groups_of(optimizer, where)
        n, self.optimizer = len(groups), optimizer
        if scale_fn is not None and not callable(scale_fn):
            raise TypeError(f"{where}: scale_fn must be a function of the cycle or step count, or None. "
                            f"Received: {type(scale_fn).__name__}")
        self.scale_fn = scale_fn
        if scale_fn is None:  # torch: the built-in modes choose their scale_mode
            scale_mode = "iterations" if mode == "exp_range" else "cycle"
        keys = set(getattr(optimizer, "defaults", {}))
        values = self._check_hyper(dict(
            max_lrs=_per_group(max_lr, n, "max_lr", where), step_size_up=step_size_up,
            step_size_down=step_size_up if step_size_down is None else step_size_down, mode=mode,
            gamma=gamma, scale_mode=scale_mode, cycle_momentum=cycle_momentum, use_beta1="betas" in keys,
            base_momentums=_per_group(base_momentum, n, "base_momentum", where),
            max_momentums=_per_group(max_momentum, n, "max_momentum", where)), where)
        if values["cycle_momentum"] and not keys & {"momentum", "betas"}:
            raise ValueError(f"{where}: cycle_momentum=True needs an optimizer with a momentum or betas "
                             f"hyper-parameter; {type(optimizer).__name__} has {sorted(keys)}. "
                             "Pass cycle_momentum=False.")
        base_lrs = _per_group(base_lr, n, "base_lr", where)
        for k, v in values.items():
            setattr(self, k, v)
        for i, group in enumerate(groups):
            group["lr"] = base_lrs[i]
            if self.cycle_momentum:
                self._set_momentum(group, self.max_momentums[i])
        super().__init__(optimizer)
        self.base_lrs = base_lrs  # as torch: set after the constructor's step

    def _check_hyper(self, values, where):
        if values["mode"] not in _MODES and self.scale_fn is None:
            raise ValueError(f"{where}: mode must be one of {list(_MODES)} (or pass scale_fn). "
                             f"Received: mode={values['mode']!r}")
        if values["scale_mode"] not in ("cycle", "iterations"):
            raise ValueError(f"{where}: scale_mode must be 'cycle' or 'iterations'. "
                             f"Received: scale_mode={values['scale_mode']!r}")
        n = len(self.optimizer.param_groups)
        out = {"step_size_up": int_at_least(values["step_size_up"], "step_size_up", where, 1),
               "step_size_down": int_at_least(values["step_size_down"], "step_size_down", where, 1),
               "mode": values["mode"], "gamma": real_number(values["gamma"], "gamma", where),
               "scale_mode": values["scale_mode"],
               "cycle_momentum": check_flag(values["cycle_momentum"], "cycle_momentum", where),
               "use_beta1": check_flag(values["use_beta1"], "use_beta1", where)}
        for name in ("max_lrs", "base_momentums", "max_momentums"):
            out[name] = lr_list(values[name], n, name, where)
        return out

    def _set_momentum(self, group, value):
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def _scale(self, x):
        if self.scale_fn is not None:
            return self.scale_fn(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (x - 1))
        return self.gamma ** x

    def get_lr(self):
        up, down = float(self.step_size_up), float(self.step_size_down)
        total = up + down
        ratio = up / total
        cycle = math.floor(1 + self.last_epoch / total)
        x = 1.0 + self.last_epoch / total - cycle
        factor = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
        scale = self._scale(cycle if self.scale_mode == "cycle" else self.last_epoch)
        lrs = [base + (top - base) * factor * scale for base, top in zip(self.base_lrs, self.max_lrs)]
        if self.cycle_momentum:
            for group, low, top in zip(self.optimizer.param_groups, self.base_momentums, self.max_momentums):
                self._set_momentum(group, top - (top - low) * factor * scale)
        return lrs

    def state_dict(self) -> dict:
        """As the base class's, plus ``scale_fn``: ``None`` for a function (left out, as torch
        does), a copy of the ``__dict__`` of a callable object.

        Returns
        -------
        dict

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> from minidl.optim import SGD
        >>> opt = SGD(Dense(2, 1).parameters(), lr=0.1, momentum=0.9)
        >>> state = CyclicLR(opt, 0.1, 1.0, step_size_up=5).state_dict()
        >>> state["last_epoch"], state["max_lrs"], state["scale_fn"]
        (0, [1.0], None)
        """
        fn = self.scale_fn
        saved = None if fn is None or isinstance(fn, types.FunctionType) or not hasattr(fn, "__dict__") \
            else dict(vars(fn))
        return {**super().state_dict(), "scale_fn": saved}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore from :meth:`state_dict`; ``scale_fn`` stays this scheduler's own.

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
        >>> from minidl.optim import SGD
        >>> opt = SGD(Dense(2, 1).parameters(), lr=0.1, momentum=0.9)
        >>> sched = CyclicLR(opt, 0.1, 1.0, step_size_up=5)
        >>> state = sched.state_dict(); state["last_epoch"] = 7
        >>> sched.load_state_dict(state)
        >>> sched.last_epoch
        7
        """
        saved = state_dict.get("scale_fn", ()) if isinstance(state_dict, dict) else ()
        if saved is not None and (not isinstance(saved, dict) or not hasattr(self.scale_fn, "__dict__")):
            raise ValueError(f"CyclicLR.load_state_dict: expected a dict with scale_fn, None or (for a "
                             f"scale_fn object) a dict. Received: {saved!r:.200}. Pass the result of "
                             "CyclicLR.state_dict().")
        super().load_state_dict({k: v for k, v in state_dict.items() if k != "scale_fn"})
        if saved is not None:
            vars(self.scale_fn).update(saved)
