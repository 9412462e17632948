"""Optimizers and learning-rate schedules, matching :mod:`torch.optim`."""

from __future__ import annotations

import math
import numbers

import numpy as np

from .layers.base import Layer
from .parameter import Parameter

__all__ = ["SGD", "StepLR", "clip_grad_norm", "all_finite"]


def _real(value, name: str, where: str, minimum: float = 0.0) -> float:
    """Return ``value`` as a finite float >= ``minimum``."""
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{where}: {name} must be a real number. Received: {name}={value!r}")
    if not math.isfinite(value) or value < minimum:
        raise ValueError(
            f"{where}: {name} must be a finite number >= {minimum:g}. Received: {name}={value!r}"
        )
    return float(value)


def all_finite(a: np.ndarray) -> bool:
    """Every element finite: one sum in ``a``'s dtype (nan/inf propagate through it); the exact
    element-wise check runs only when that sum is not finite (it may merely have overflowed)."""
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(a.sum()):
            return True
        return bool(np.isfinite(a).all())


class SGD:
    """Stochastic gradient descent with momentum, like :class:`torch.optim.SGD`.

    Parameters
    ----------
    params : iterable of Parameter, or Layer
        The parameters to update, e.g. ``model.parameters()``; a layer is
        accepted too. Must be non-empty and free of duplicates.
    lr : float
        Learning rate, >= 0. ``opt.lr`` may be changed between steps.
    momentum : float, default 0
        Momentum factor, >= 0.
    dampening : float, default 0
        Dampening for momentum, >= 0 (torch accepts any value).
    weight_decay : float, default 0
        L2 penalty, >= 0.
    nesterov : bool, default False
        Nesterov momentum; requires ``momentum > 0`` and ``dampening == 0``.

    Notes
    -----
    For each parameter :math:`p` with gradient :math:`g` (torch's rule):

    .. math::

        g &\\leftarrow g + \\lambda p \\\\
        b_1 &= g, \\quad b_t = \\mu b_{t-1} + (1 - \\tau) g \\\\
        g &\\leftarrow g + \\mu b_t \\text{ (Nesterov) or } b_t \\\\
        p &\\leftarrow p - \\eta g

    with weight decay :math:`\\lambda`, momentum :math:`\\mu`, dampening
    :math:`\\tau` and learning rate :math:`\\eta`. Without momentum the middle
    two lines are skipped. Updates are in place in the parameter's dtype.
    Each parameter has its own momentum buffer, keyed by its position in the
    parameter list (as in ``torch``'s ``state_dict``).

    Examples
    --------
    >>> p = Parameter(np.array([1.0, 2.0]))
    >>> opt = SGD([p], lr=0.1, momentum=0.9)
    >>> p.grad[:] = [1.0, -1.0]
    >>> opt.step()
    >>> p.data
    array([0.9, 2.1])
    >>> opt.zero_grad(); p.grad
    array([0., 0.])
    """

    #: ``step()`` changes nothing when it raises (the Trainer need not keep a copy).
    atomic_step = True

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        where = "SGD"
        if isinstance(params, Layer):
            params = params.parameters()
        elif isinstance(params, (Parameter, np.ndarray)):
            raise TypeError(
                f"{where}: params must be an iterable of Parameter objects. "
                f"Received: a single {type(params).__name__}. Wrap it in a list: SGD([p], lr=...)."
            )
        try:
            params = list(params)
        except TypeError:
            raise TypeError(
                f"{where}: params must be an iterable of Parameter objects or a Layer. "
                f"Received: {type(params).__name__}. Pass model.parameters()."
            ) from None
        if not params:
            raise ValueError(
                f"{where}: got an empty parameter list. Pass model.parameters() of a model "
                "that has trainable parameters."
            )
        seen = {}
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(
                    f"{where}: params[{i}] must be a Parameter. Received: {type(p).__name__}."
                )
            if id(p) in seen:
                raise ValueError(
                    f"{where}: params[{i}] is the same Parameter as params[{seen[id(p)]}]; "
                    "each parameter may appear only once. Remove the duplicate."
                )
            seen[id(p)] = i
        self.params: list[Parameter] = params
        self.lr = lr
        self.momentum, self.dampening, self.weight_decay, self.nesterov = \
            self._check_hyper(momentum, dampening, weight_decay, nesterov)
        self.momentum_buffers: dict[int, np.ndarray] = {}

    @staticmethod
    def _check_hyper(momentum, dampening, weight_decay, nesterov, where="SGD"):
        momentum = _real(momentum, "momentum", where)
        dampening = _real(dampening, "dampening", where)
        weight_decay = _real(weight_decay, "weight_decay", where)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise ValueError(f"{where}: nesterov must be a bool. Received: nesterov={nesterov!r}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(
                f"{where}: Nesterov momentum requires a momentum and zero dampening. "
                f"Received: momentum={momentum!r}, dampening={dampening!r}. "
                "Use momentum > 0 and dampening=0, or nesterov=False."
            )
        return momentum, dampening, weight_decay, bool(nesterov)

    @property
    def lr(self) -> float:
        """The current learning rate (schedules set it; >= 0 and finite in every parameter's dtype)."""
        return self._lr

    @lr.setter
    def lr(self, value) -> None:
        value = _real(value, "lr", "SGD")
        for dt in {p.data.dtype for p in self.params}:
            with np.errstate(over="ignore"):
                finite = np.isfinite(dt.type(value))
            if not finite:
                raise ValueError(
                    f"SGD: lr={value!r} is not finite in the parameters' dtype {dt} (it would "
                    "make every weight inf or nan). Use a smaller learning rate."
                )
        self._lr = value

    def step(self) -> None:
        """Update every parameter once from its ``.grad`` (params with ``grad=None`` are skipped).

        The step is all or nothing: every new value (and momentum buffer) is
        computed first; if any is nan or inf, a FloatingPointError is raised and
        no parameter or buffer has changed. The check is one sum per parameter
        in its own dtype (an element-wise check only when that sum is not
        finite). The price is memory: until the commit the step holds the new
        values of all parameters (and the new momentum buffers), one extra copy
        of each (15.3 MiB peak for 7.6 MiB of float32 parameters with momentum,
        against 3.8 MiB for an in-place update).
        """
        # no overflow warnings: a non-finite result is refused below with a FloatingPointError
        with np.errstate(over="ignore", invalid="ignore"):
            pending = self._updates()
        for i, data, new, buf in pending:  # commit: in place, so references to p.data stay valid
            np.copyto(data, new)
            if buf is not None:
                self.momentum_buffers[i] = buf

    def _updates(self) -> list:
        """``(index, data, new value, new momentum buffer)`` per parameter; changes nothing."""
        pending = []
        scalars = {}  # per dtype: -lr, momentum, 1 - dampening, weight decay (converted once)
        for i, p in enumerate(self.params):
            grad, data = p.grad, p.data
            if grad is None:
                continue
            if grad.shape != data.shape:
                raise ValueError(
                    f"SGD.step: params[{i}].grad has shape {grad.shape} but the parameter has "
                    f"shape {data.shape}. Reset it with params[{i}].zero_grad()."
                )
            dt = data.dtype
            sc = scalars.get(dt)
            if sc is None:
                sc = scalars[dt] = (dt.type(-self._lr), dt.type(self.momentum),
                                    dt.type(1 - self.dampening), dt.type(self.weight_decay))
            neg_lr, mu, undamped, wd = sc
            g = grad.astype(dt, copy=False)
            if self.weight_decay != 0:
                g = g + wd * data
            buf = None
            if self.momentum != 0:
                old = self.momentum_buffers.get(i)
                if old is None:
                    buf = np.array(g, dtype=dt, copy=True)
                else:  # out of place: the old buffer stays until the step is committed
                    buf = old * mu
                    buf += g if self.dampening == 0 else undamped * g
                g = g + mu * buf if self.nesterov else buf
            new = g * neg_lr  # p - lr * g, bit for bit (negation is exact)
            new += data
            # the cheap check: one sum in the parameter's dtype (nan/inf propagate); the exact
            # element check runs only when the sum is not finite (non-finite values or overflow)
            if not math.isfinite(np.add.reduce(new, axis=None)) and not np.isfinite(new).all():
                raise FloatingPointError(
                    f"SGD.step: the update of params[{i}] {data.shape} is not finite (nan or "
                    f"inf) with lr={self.lr!r}; no parameter was changed. Lower the learning rate "
                    "or clip the gradients (minidl.optim.clip_grad_norm)."
                )
            pending.append((i, data, new, buf))
        return pending

    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero, in place."""
        for p in self.params:
            p.zero_grad()

    def state_dict(self) -> dict:
        """Hyper-parameters, ``num_params`` and copies of the momentum buffers ``{index: array}``."""
        return {"lr": self.lr, "momentum": self.momentum, "dampening": self.dampening,
                "weight_decay": self.weight_decay, "nesterov": self.nesterov,
                "num_params": len(self.params),
                "momentum_buffers": {i: b.copy() for i, b in sorted(self.momentum_buffers.items())}}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore from :meth:`state_dict` (keys may be ``int`` or ``str``, as after JSON).

        Everything is checked first; on any mismatch a ValueError is raised and
        nothing is changed.
        """
        where = "SGD.load_state_dict"
        keys = {"lr", "momentum", "dampening", "weight_decay", "nesterov", "num_params",
                "momentum_buffers"}
        if not isinstance(state_dict, dict) or set(state_dict) != keys:
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"{where}: expected a dict with keys {sorted(keys)}. Received: {got}. "
                             "Pass the result of SGD.state_dict().")
        sd = state_dict
        if sd["num_params"] != len(self.params):
            raise ValueError(f"{where}: the state is for {sd['num_params']} parameters but this "
                             f"optimizer has {len(self.params)}. Build the optimizer on the same "
                             "model (same parameter order) that was saved.")
        lr = _real(sd["lr"], "lr", where)
        hyper = self._check_hyper(sd["momentum"], sd["dampening"], sd["weight_decay"],
                                  sd["nesterov"], where)
        buffers = {}
        for key, buf in sd["momentum_buffers"].items():
            try:
                i = int(key)
            except (TypeError, ValueError):
                i = -1
            if not 0 <= i < len(self.params):
                raise ValueError(f"{where}: momentum buffer key {key!r} is not a parameter index "
                                 f"in [0, {len(self.params)}).")
            buf, p = np.asarray(buf), self.params[i]
            if buf.shape != p.data.shape or buf.dtype != p.data.dtype:
                raise ValueError(f"{where}: momentum buffer {i} has shape {buf.shape} and dtype "
                                 f"{buf.dtype}, but params[{i}] has shape {p.data.shape} and "
                                 f"dtype {p.data.dtype}.")
            buffers[i] = buf.copy()
        self.lr = lr
        self.momentum, self.dampening, self.weight_decay, self.nesterov = hyper
        self.momentum_buffers = buffers

    def __repr__(self) -> str:
        return (f"SGD(lr={self.lr!r}, momentum={self.momentum!r}, dampening={self.dampening!r}, "
                f"weight_decay={self.weight_decay!r}, nesterov={self.nesterov!r}, "
                f"num_params={len(self.params)})")


class StepLR:
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs (torch's StepLR).

    Call :meth:`step` once per epoch, after the epoch's optimizer steps.

    Notes
    -----
    After ``e`` calls to :meth:`step`, ``lr = base_lr * gamma ** (e // step_size)``
    (applied multiplicatively to the current ``optimizer.lr``, as torch does).

    Examples
    --------
    >>> opt = SGD([Parameter(np.zeros(1))], lr=1.0)
    >>> sched = StepLR(opt, step_size=2, gamma=0.5)
    >>> lrs = []
    >>> for epoch in range(5):
    ...     lrs.append(sched.get_last_lr()); sched.step()
    >>> lrs
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    def __init__(self, optimizer, step_size, gamma=0.1):
        where = "StepLR"
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"{where}: optimizer must have an lr attribute (e.g. SGD). "
                            f"Received: {type(optimizer).__name__}.")
        if not isinstance(step_size, numbers.Integral) or isinstance(step_size, bool) \
                or step_size < 1:
            raise ValueError(f"{where}: step_size must be an int >= 1. "
                             f"Received: step_size={step_size!r}")
        self.optimizer, self.step_size = optimizer, int(step_size)
        self.gamma = _real(gamma, "gamma", where)
        self.base_lr = self._last_lr = optimizer.lr
        self.last_epoch = 0

    def step(self) -> None:
        """Advance one epoch, updating ``optimizer.lr``."""
        self.last_epoch += 1
        if self.last_epoch % self.step_size == 0:
            self.optimizer.lr = self.optimizer.lr * self.gamma
        self._last_lr = self.optimizer.lr

    def get_last_lr(self) -> float:
        """The learning rate set by the last :meth:`step` (a float; torch returns a list)."""
        return self._last_lr

    def state_dict(self) -> dict:
        return {"step_size": self.step_size, "gamma": self.gamma, "base_lr": self.base_lr,
                "last_epoch": self.last_epoch, "last_lr": self._last_lr}

    def load_state_dict(self, state_dict: dict) -> None:
        self.step_size, self.gamma = int(state_dict["step_size"]), float(state_dict["gamma"])
        self.base_lr, self.last_epoch = float(state_dict["base_lr"]), int(state_dict["last_epoch"])
        self._last_lr = float(state_dict["last_lr"])


def clip_grad_norm(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False) -> float:
    r"""Scale gradients in place so that their total norm is at most ``max_norm``.

    :func:`torch.nn.utils.clip_grad_norm_`'s semantics: the total norm is the
    ``norm_type``-norm of the per-parameter gradient norms (``inf`` for the
    largest absolute value); every gradient is multiplied by
    ``min(1, max_norm / (total_norm + 1e-6))``.

    Parameters
    ----------
    parameters : iterable of Parameter, or a Layer
    max_norm : float > 0
    norm_type : float >= 1 or ``inf``, default 2
    error_if_nonfinite : bool
        Raise RuntimeError when the total norm is nan or inf (torch's flag);
        otherwise the gradients are scaled by a nan coefficient, as torch does.

    Returns
    -------
    float
        The total norm of the gradients before clipping.

    Examples
    --------
    >>> p = Parameter(np.zeros(2)); p.grad[:] = [3.0, 4.0]
    >>> clip_grad_norm([p], max_norm=1.0)
    5.0
    >>> p.grad.round(6)
    array([0.6, 0.8])
    """
    where = "clip_grad_norm"
    if isinstance(parameters, Layer):
        parameters = parameters.parameters()
    elif isinstance(parameters, Parameter):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    max_norm = _real(max_norm, "max_norm", where)
    if not isinstance(norm_type, numbers.Real) or isinstance(norm_type, bool) or not (
            norm_type >= 1 or norm_type == math.inf):
        raise ValueError(f"{where}: norm_type must be a number >= 1 or inf. Received: norm_type={norm_type!r}")
    if not grads:
        return 0.0
    norm_type = float(norm_type)
    with np.errstate(over="ignore", invalid="ignore"):
        if norm_type == math.inf:
            norms = [np.abs(g).max() if g.size else g.dtype.type(0) for g in grads]
            total = max(norms)
        else:
            norms = [np.sum(np.abs(g) ** norm_type) ** (1.0 / norm_type) for g in grads]
            total = np.sum(np.abs(np.array(norms)) ** norm_type) ** (1.0 / norm_type)
    total = float(total)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"{where}: the total norm of order {norm_type} of the gradients is {total}, so they "
            "cannot be clipped. Set error_if_nonfinite=False to scale them anyway."
        )
    for g in grads:  # torch: clamp(max_norm / (total + 1e-6), max=1), in the gradients' dtype
        dt = g.dtype.type
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            coef = dt(max_norm) / (dt(total) + dt(1e-6))
        g *= coef if np.isnan(coef) or coef < 1 else dt(1.0)
    return total
