"""RMSprop, like :class:`torch.optim.RMSprop`."""

from __future__ import annotations

import numpy as np

from .adam import lerp
from .optimizer import Optimizer, check_flag, real_number

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop, like :class:`torch.optim.RMSprop` (its single-tensor CPU rule).

    Parameters
    ----------
    params : iterable of Parameter, a Layer, or a list of dicts
        The parameters, or parameter groups (dicts with ``"params"`` and any
        hyper-parameters below), as for :class:`SGD`.
    lr : float, default 1e-2
        Learning rate, >= 0.
    alpha : float, default 0.99
        Smoothing constant of the squared-gradient average, >= 0.
    eps : float, default 1e-8
        Added to the denominator, >= 0.
    weight_decay : float, default 0
        L2 penalty, >= 0.
    momentum : float, default 0
        Momentum factor, >= 0.
    centered : bool, default False
        Normalise by an estimate of the gradient's variance (its square
        average minus its average squared) instead of its second moment.
    maximize : bool, default False
        Keyword only. Maximise the objective: the rule runs on ``-grad``, as torch's ``maximize``.

    Notes
    -----
    For each parameter :math:`p` with gradient :math:`g` (torch's rule;
    :math:`s_0 = \\bar g_0 = b_0 = 0`):

    .. math::

        g &\\leftarrow g + \\lambda p \\\\
        s_t &= \\alpha s_{t-1} + (1 - \\alpha) g^2 \\\\
        \\bar g_t &= \\alpha \\bar g_{t-1} + (1 - \\alpha) g \\text{ (centered)} \\\\
        d_t &= \\sqrt{s_t - \\bar g_t^2} + \\epsilon \\text{ (centered) or }
               \\sqrt{s_t} + \\epsilon \\\\
        b_t &= \\mu b_{t-1} + g / d_t, \\quad p \\leftarrow p - \\eta b_t
               \\text{ (momentum > 0) or } p \\leftarrow p - \\eta g / d_t

    The state of parameter ``i`` is ``state[i] = {"step", "square_avg"}``,
    with ``"momentum_buffer"`` when momentum > 0 and ``"grad_avg"`` when
    centered, arrays in the parameter's dtype. No bias correction.

    Examples
    --------
    >>> from minidl import Parameter
    >>> p = Parameter(np.array([1.0, -1.0]))
    >>> opt = RMSprop([p], lr=0.01, alpha=0.99)
    >>> p.grad[:] = [0.5, -2.0]
    >>> opt.step()  # the first step moves each weight by lr / sqrt(1 - alpha) = 0.1
    >>> p.data.round(6)
    array([ 0.9, -0.9])
    """

    _state_arrays = ("square_avg", "momentum_buffer", "grad_avg")
    _state_required = ("step", "square_avg")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    def _check_hyper(self, hyper: dict, where: str) -> dict:
        return {**{k: real_number(hyper[k], k, where) for k in ("lr", "alpha", "eps", "weight_decay", "momentum")},
                "centered": check_flag(hyper["centered"], "centered", where)}

    def _update(self, data, g, hyper, state):
        lr, alpha, eps, wd, mu = (hyper[k] for k in ("lr", "alpha", "eps", "weight_decay",
                                                      "momentum"))
        if state is None:
            state = {"step": 0, "square_avg": np.zeros_like(data)}
        new_state = {**state, "step": state["step"] + 1}  # unused entries stay, as in torch
        if wd != 0:
            g = g + wd * data
        square_avg = state["square_avg"] * alpha  # addcmul: s * alpha + (1 - alpha) * g * g
        sq = g * (1 - alpha)
        sq *= g
        square_avg += sq
        new_state["square_avg"] = square_avg
        if hyper["centered"]:
            old = state.get("grad_avg")
            grad_avg = lerp(np.zeros_like(data) if old is None else old, g, 1 - alpha)
            new_state["grad_avg"] = grad_avg
            avg = grad_avg * -1.0  # addcmul(grad_avg, grad_avg, value=-1), then sqrt
            avg *= grad_avg
            avg += square_avg
            avg = np.sqrt(avg, out=avg)
        else:
            avg = np.sqrt(square_avg)
        avg += eps
        if mu > 0:
            old = state.get("momentum_buffer")
            buf = np.zeros_like(data) if old is None else old * mu
            buf += g / avg
            new_state["momentum_buffer"] = buf
            new = buf * -lr  # p.add_(buf, alpha=-lr)
        else:
            new = g * -lr  # p.addcdiv_(g, avg, value=-lr)
            new /= avg
        new += data
        return new, new_state
