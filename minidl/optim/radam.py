"""RAdam, like :class:`torch.optim.RAdam`."""

from __future__ import annotations

import numpy as np

from .adam import check_betas, moments, weight_decay
from .optimizer import Optimizer, check_flag, real_number

__all__ = ["RAdam"]


class RAdam(Optimizer):
    """RAdam (rectified Adam), like :class:`torch.optim.RAdam` (its single-tensor CPU rule).

    Parameters
    ----------
    params : iterable of Parameter, a Layer, or a list of dicts
        The parameters, or parameter groups (dicts with ``"params"`` and any
        hyper-parameters below), as for :class:`SGD`.
    lr : float, default 1e-3
        Learning rate, >= 0.
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the first and second moment averages, each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator, >= 0.
    weight_decay : float, default 0
        Weight decay, >= 0: an L2 penalty added to the gradient, or decoupled (below).
    decoupled_weight_decay : bool, default False
        Shrink the weights by ``lr * weight_decay`` of themselves each step, as
        :class:`AdamW` does, instead of adding the penalty to the gradient.
    maximize : bool, default False
        Keyword only. Maximise the objective: the rule runs on ``-grad``, as torch's ``maximize``.

    Notes
    -----
    For each parameter :math:`p` with gradient :math:`g`, at step
    :math:`t = 1, 2, \\ldots` (torch's rule; :math:`m_0 = v_0 = 0`), after the
    weight decay (as :class:`Adam`, or as :class:`AdamW` when decoupled):

    .. math::

        m_t &= \\beta_1 m_{t-1} + (1 - \\beta_1) g, \\quad
        v_t = \\beta_2 v_{t-1} + (1 - \\beta_2) g^2 \\\\
        \\rho_\\infty &= \\frac{2}{1 - \\beta_2} - 1, \\quad
        \\rho_t = \\rho_\\infty - \\frac{2 t \\beta_2^t}{1 - \\beta_2^t} \\\\
        p &\\leftarrow p - \\eta \\frac{m_t}{1 - \\beta_1^t} \\, r_t
            \\frac{\\sqrt{1 - \\beta_2^t}}{\\sqrt{v_t} + \\epsilon}
            \\text{ if } \\rho_t > 5, \\text{ else }
            p \\leftarrow p - \\eta \\frac{m_t}{1 - \\beta_1^t} \\\\
        r_t &= \\sqrt{\\frac{(\\rho_t - 4)(\\rho_t - 2) \\rho_\\infty}
                          {(\\rho_\\infty - 4)(\\rho_\\infty - 2) \\rho_t}}

    While the variance estimate is too young (:math:`\\rho_t \\le 5`, the first
    five steps with the default betas) the step is plain momentum SGD. The state of
    parameter ``i`` is ``state[i] = {"step", "exp_avg", "exp_avg_sq"}``, arrays in
    the parameter's dtype.

    Examples
    --------
    >>> from minidl import Parameter
    >>> p = Parameter(np.array([1.0, -1.0]))
    >>> opt = RAdam([p], lr=0.1)
    >>> p.grad[:] = [0.5, -2.0]
    >>> opt.step()  # rho_1 = 1 <= 5: the first step is lr times the (bias-corrected) gradient
    >>> p.data.round(6)
    array([ 0.95, -0.8 ])
    >>> sorted(opt.state[0])
    ['exp_avg', 'exp_avg_sq', 'step']
    """

    _state_arrays = ("exp_avg", "exp_avg_sq")
    _state_required = ("step", "exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 decoupled_weight_decay=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay, maximize=maximize))

    def _check_hyper(self, hyper: dict, where: str) -> dict:
        return {"lr": real_number(hyper["lr"], "lr", where),
                "betas": check_betas(hyper["betas"], where),
                "eps": real_number(hyper["eps"], "eps", where),
                "weight_decay": real_number(hyper["weight_decay"], "weight_decay", where),
                "decoupled_weight_decay": check_flag(hyper["decoupled_weight_decay"],
                                                     "decoupled_weight_decay", where)}

    def _update(self, data, g, hyper, state):
        lr, (beta1, beta2) = hyper["lr"], hyper["betas"]
        if state is None:
            zeros = np.zeros_like(data)
            state = {"step": 0, "exp_avg": zeros, "exp_avg_sq": zeros}
        step = state["step"] + 1
        base, g = weight_decay(data, g, lr, hyper["weight_decay"], hyper["decoupled_weight_decay"])
        exp_avg, exp_avg_sq = moments(state, g, beta1, beta2)
        bias_correction1, bias_correction2 = 1 - beta1 ** step, 1 - beta2 ** step
        update = exp_avg / bias_correction1
        update *= lr
        rho_inf = 2 / (1 - beta2) - 1  # the length of the approximated moving average, at most and now
        rho_t = rho_inf - 2 * step * (beta2 ** step) / bias_correction2
        if rho_t > 5.0:
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            adaptive = np.sqrt(exp_avg_sq)
            adaptive += hyper["eps"]
            update *= np.divide(bias_correction2 ** 0.5, adaptive, out=adaptive)
            update *= rect
        new = base - update
        return new, {"step": step, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
