"""Adamax, like :class:`torch.optim.Adamax`."""

from __future__ import annotations

import numpy as np

from .adam import check_betas, lerp
from .optimizer import Optimizer, real_number

__all__ = ["Adamax"]


class Adamax(Optimizer):
    """Adamax (Adam with the infinity norm), like :class:`torch.optim.Adamax` (its single-tensor CPU rule).

    Parameters
    ----------
    params : iterable of Parameter, a Layer, or a list of dicts
        The parameters, or parameter groups (dicts with ``"params"`` and any
        hyper-parameters below), as for :class:`SGD`.
    lr : float, default 2e-3
        Learning rate, >= 0.
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the first moment average and of the infinity norm, each in [0, 1).
    eps : float, default 1e-8
        Added to ``|g|`` in the infinity norm, >= 0.
    weight_decay : float, default 0
        L2 penalty added to the gradient, >= 0.
    maximize : bool, default False
        Keyword only. Maximise the objective: the rule runs on ``-grad``, as torch's ``maximize``.

    Notes
    -----
    For each parameter :math:`p` with gradient :math:`g`, at step
    :math:`t = 1, 2, \\ldots` (torch's rule; :math:`m_0 = u_0 = 0`):

    .. math::

        g &\\leftarrow g + \\lambda p \\\\
        m_t &= \\beta_1 m_{t-1} + (1 - \\beta_1) g \\\\
        u_t &= \\max(\\beta_2 u_{t-1}, |g| + \\epsilon) \\\\
        p &\\leftarrow p - \\frac{\\eta}{1 - \\beta_1^t} \\frac{m_t}{u_t}

    with weight decay :math:`\\lambda` and learning rate :math:`\\eta`. The
    state of parameter ``i`` is ``state[i] = {"step", "exp_avg", "exp_inf"}``,
    arrays in the parameter's dtype.

    Examples
    --------
    >>> from minidl import Parameter
    >>> p = Parameter(np.array([1.0, -1.0]))
    >>> opt = Adamax([p], lr=0.1)
    >>> p.grad[:] = [0.5, -2.0]
    >>> opt.step()  # the first step moves each weight by about lr, against its gradient
    >>> p.data.round(6)
    array([ 0.9, -0.9])
    >>> sorted(opt.state[0])
    ['exp_avg', 'exp_inf', 'step']
    """

    _state_arrays = ("exp_avg", "exp_inf")
    _state_required = ("step", "exp_avg", "exp_inf")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, *, maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize))

    def _check_hyper(self, hyper: dict, where: str) -> dict:
        return {"lr": real_number(hyper["lr"], "lr", where),
                "betas": check_betas(hyper["betas"], where),
                "eps": real_number(hyper["eps"], "eps", where),
                "weight_decay": real_number(hyper["weight_decay"], "weight_decay", where)}

    def _update(self, data, g, hyper, state):
        (beta1, beta2), wd = hyper["betas"], hyper["weight_decay"]
        if state is None:
            zeros = np.zeros_like(data)
            state = {"step": 0, "exp_avg": zeros, "exp_inf": zeros}
        step = state["step"] + 1
        if wd != 0:
            g = g + wd * data
        exp_avg = lerp(state["exp_avg"], g, 1 - beta1)
        norm = np.abs(g)
        norm += hyper["eps"]
        exp_inf = state["exp_inf"] * beta2
        np.maximum(exp_inf, norm, out=exp_inf)
        clr = hyper["lr"] / (1 - beta1 ** step)
        new = exp_avg * -clr  # addcdiv: p + (-clr * m) / u
        new /= exp_inf
        new += data
        return new, {"step": step, "exp_avg": exp_avg, "exp_inf": exp_inf}
