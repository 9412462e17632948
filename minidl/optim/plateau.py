"""Reduce the learning rate when a metric stops improving, like torch's ReduceLROnPlateau."""

from __future__ import annotations

import math
import numbers

from .lr_scheduler import int_at_least, lr_list, param_groups_of
from .optimizer import real_number
from .optimizer_state import check_state_keys

__all__ = ["ReduceLROnPlateau"]

_HYPER = ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lrs",
          "default_min_lr", "eps")
_COUNTERS = ("best", "num_bad_epochs", "cooldown_counter", "last_epoch", "last_lr")


class ReduceLROnPlateau:
    """Multiply the learning rate by ``factor`` when a metric has not improved for
    ``patience`` epochs (torch's ReduceLROnPlateau).

    Call :meth:`step` with the metric (e.g. the validation loss) once per
    epoch; ``LearningRateScheduler(sched, monitor="val_loss")`` does so in
    ``Trainer.fit``.

    Parameters
    ----------
    optimizer : Optimizer
    mode : 'min' | 'max', default 'min'
        Whether the metric should decrease (a loss) or increase.
    factor : float in [0, 1), default 0.1
    patience : int >= 0, default 10
        Epochs without improvement tolerated; the lr drops on the next one.
    threshold : float >= 0, default 1e-4
        The least change that counts as an improvement.
    threshold_mode : 'rel' | 'abs', default 'rel'
        Improvement means ``metric < best * (1 - threshold)`` ('rel', mode
        'min') or ``metric < best - threshold`` ('abs'); mirrored for 'max'.
    cooldown : int >= 0, default 0
        Epochs after a reduction during which bad epochs are not counted.
    min_lr : float or list of float (one per group), default 0
        Lower bound of each group's lr.
    eps : float >= 0, default 1e-8
        A reduction smaller than ``eps`` is skipped.

    Notes
    -----
    On a reduction each group's lr becomes
    :math:`\\max(\\eta \\cdot \\text{factor}, \\eta_{min})` unless that changes it
    by ``eps`` or less; then the cooldown starts and the bad-epoch count is
    reset. A nan metric counts as no improvement, as in torch.

    Examples
    --------
    >>> from minidl import Parameter
    >>> from minidl.optim import SGD
    >>> opt = SGD([Parameter(np.zeros(1))], lr=1.0)
    >>> sched = ReduceLROnPlateau(opt, factor=0.5, patience=1)
    >>> for val_loss in [1.0, 0.9, 0.95, 0.92, 0.91]:
    ...     sched.step(val_loss)
    >>> sched.get_last_lr()  # two epochs without improvement on 0.9: halved
    [0.5]
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8):
        where = "ReduceLROnPlateau"
        groups = param_groups_of(optimizer, where)
        self.optimizer = optimizer
        default = None if isinstance(min_lr, (list, tuple)) else min_lr
        min_lrs = list(min_lr) if default is None else [min_lr] * len(groups)
        values = dict(mode=mode, factor=factor, patience=patience, threshold=threshold,
                      threshold_mode=threshold_mode, cooldown=cooldown, min_lrs=min_lrs,
                      default_min_lr=default, eps=eps)
        for k, v in self._check_hyper(values, where).items():
            setattr(self, k, v)
        self.last_epoch = 0
        self._last_lr = [g["lr"] for g in groups]
        self.best = math.inf if self.mode == "min" else -math.inf
        self.cooldown_counter = self.num_bad_epochs = 0

    def _check_hyper(self, values: dict, where: str) -> dict:
        if values["mode"] not in ("min", "max"):
            raise ValueError(f"{where}: mode must be 'min' or 'max'. Received: mode={values['mode']!r}")
        if values["threshold_mode"] not in ("rel", "abs"):
            raise ValueError(f"{where}: threshold_mode must be 'rel' or 'abs'. "
                             f"Received: threshold_mode={values['threshold_mode']!r}")
        factor = real_number(values["factor"], "factor", where)
        if factor >= 1.0:
            raise ValueError(f"{where}: factor must be < 1 (the lr is multiplied by it). "
                             f"Received: factor={factor!r}")
        default = values["default_min_lr"]
        return {"mode": values["mode"], "factor": factor,
                "patience": int_at_least(values["patience"], "patience", where, 0),
                "threshold": real_number(values["threshold"], "threshold", where),
                "threshold_mode": values["threshold_mode"],
                "cooldown": int_at_least(values["cooldown"], "cooldown", where, 0),
                "min_lrs": lr_list(values["min_lrs"], len(self.optimizer.param_groups),
                                    "min_lr", where),
                "default_min_lr": None if default is None else real_number(default, "min_lr", where),
                "eps": real_number(values["eps"], "eps", where)}

    def _is_better(self, a: float, best: float) -> bool:
        if self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold) if self.mode == "min" \
                else a > best * (self.threshold + 1.0)
        return a < best - self.threshold if self.mode == "min" else a > best + self.threshold

    def step(self, metrics) -> None:
        """Record this epoch's ``metrics`` (a number) and reduce the lrs if it is time.

        Parameters
        ----------
        metrics : float
            The monitored value of the epoch just ended (e.g. the validation loss).

        Raises
        ------
        TypeError
            ``metrics`` is not a number.

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> from minidl.optim import SGD
        >>> opt = SGD(Dense(2, 1).parameters(), lr=1.0)
        >>> sched = ReduceLROnPlateau(opt, factor=0.5, patience=1)
        >>> for val_loss in [1.0, 0.9, 0.9, 0.9]:
        ...     sched.step(val_loss)
        >>> opt.lr  # two epochs without improving on 0.9 (more than patience=1): halved
        0.5
        """
        if not isinstance(metrics, numbers.Real) and not hasattr(metrics, "__float__"):
            raise TypeError(f"ReduceLROnPlateau.step: metrics must be a number (the monitored "
                            f"value, e.g. the validation loss). Received: {metrics!r:.100}")
        current = float(metrics)
        self.last_epoch += 1
        if self._is_better(current, self.best):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in the cooldown are not counted
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def _reduce_lr(self) -> None:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(
                    f"ReduceLROnPlateau.step: the optimizer has {len(groups)} parameter groups but "
                    f"min_lr lists {len(self.min_lrs)}. Set sched.min_lrs to one value per group."
                )
            self.min_lrs = [self.default_min_lr] * len(groups)
        for group, low in zip(groups, self.min_lrs):
            old = float(group["lr"])
            new = max(old * self.factor, low)
            if old - new > self.eps:
                group["lr"] = new

    def get_last_lr(self) -> list:
        """The lrs after the last :meth:`step`, one per parameter group.

        Returns
        -------
        list of float
        """
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """The hyper-parameters, the best value, the counters and the last lrs.

        Returns
        -------
        dict

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> from minidl.optim import SGD
        >>> opt = SGD(Dense(2, 1).parameters(), lr=1.0)
        >>> sched = ReduceLROnPlateau(opt, factor=0.5, patience=1)
        >>> sched.step(0.5)
        >>> {k: sched.state_dict()[k] for k in ("best", "num_bad_epochs", "last_lr")}
        {'best': 0.5, 'num_bad_epochs': 0, 'last_lr': [1.0]}
        """
        return {**{k: getattr(self, k) for k in _HYPER}, "best": self.best,
                "num_bad_epochs": self.num_bad_epochs, "cooldown_counter": self.cooldown_counter,
                "last_epoch": self.last_epoch, "last_lr": list(self._last_lr)}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore from :meth:`state_dict`; a ValueError (and no change) on a malformed state.

        Parameters
        ----------
        state_dict : dict
            As :meth:`state_dict` returns it.

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> from minidl.optim import SGD
        >>> opt = SGD(Dense(2, 1).parameters(), lr=1.0)
        >>> sched = ReduceLROnPlateau(opt, factor=0.5, patience=1)
        >>> state = sched.state_dict(); state["best"] = 0.1
        >>> sched.load_state_dict(state)
        >>> sched.best
        0.1
        """
        where = "ReduceLROnPlateau.load_state_dict"
        sd = check_state_keys(state_dict, {*_HYPER, *_COUNTERS}, "ReduceLROnPlateau")
        hyper = self._check_hyper({k: sd[k] for k in _HYPER}, where)
        best = sd["best"]
        if not isinstance(best, numbers.Real) or isinstance(best, bool):
            raise ValueError(f"{where}: best must be a number. Received: best={best!r}")
        counters = [int_at_least(sd[k], k, where, 0) for k in ("num_bad_epochs", "cooldown_counter",
                                                        "last_epoch")]
        last = lr_list(sd["last_lr"], len(self.optimizer.param_groups), "last_lr", where)
        for k, v in hyper.items():
            setattr(self, k, v)
        self.best = float(best)
        self.num_bad_epochs, self.cooldown_counter, self.last_epoch = counters
        self._last_lr = last

    def __repr__(self) -> str:
        return (f"ReduceLROnPlateau(mode={self.mode!r}, factor={self.factor!r}, "
                f"patience={self.patience!r}, best={self.best!r}, last_epoch={self.last_epoch})")
