"""NAdam, like :class:`torch.optim.NAdam`."""

from __future__ import annotations

import numpy as np

from .adam import check_betas, moments, weight_decay
from .optimizer import Optimizer, check_flag, real_number

__all__ = ["NAdam"]


class NAdam(Optimizer):
    """NAdam (Adam with Nesterov momentum), like :class:`torch.optim.NAdam` (its single-tensor CPU rule).

    Parameters
    ----------
    params : iterable of Parameter, a Layer, or a list of dicts
        The parameters, or parameter groups (dicts with ``"params"`` and any
        hyper-parameters below), as for :class:`SGD`.
    lr : float, default 2e-3
        Learning rate, >= 0.
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the first and second moment averages, each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator, >= 0.
    weight_decay : float, default 0
        Weight decay, >= 0: an L2 penalty added to the gradient, or decoupled (below).
    momentum_decay : float, default 4e-3
        How fast the momentum factor :math:`\\mu_t` rises to :math:`\\beta_1`, >= 0.
    decoupled_weight_decay : bool, default False
        Shrink the weights by ``lr * weight_decay`` of themselves each step, as
        :class:`AdamW` does, instead of adding the penalty to the gradient.
    maximize : bool, default False
        Keyword only. Maximise the objective: the rule runs on ``-grad``, as torch's ``maximize``.

    Notes
    -----
    For each parameter :math:`p` with gradient :math:`g`, at step
    :math:`t = 1, 2, \\ldots` (torch's rule; :math:`m_0 = v_0 = 0`, :math:`\\Pi_0 = 1`),
    after the weight decay (as :class:`Adam`, or as :class:`AdamW` when decoupled):

    .. math::

        \\mu_t &= \\beta_1 \\left(1 - \\tfrac12 \\, 0.96^{t \\psi}\\right), \\quad
        \\Pi_t = \\Pi_{t-1} \\mu_t \\\\
        m_t &= \\beta_1 m_{t-1} + (1 - \\beta_1) g, \\quad
        v_t = \\beta_2 v_{t-1} + (1 - \\beta_2) g^2, \\quad
        d_t = \\sqrt{v_t / (1 - \\beta_2^t)} + \\epsilon \\\\
        p &\\leftarrow p - \\eta \\frac{1 - \\mu_t}{1 - \\Pi_t} \\frac{g}{d_t}
             - \\eta \\frac{\\mu_{t+1}}{1 - \\Pi_t \\mu_{t+1}} \\frac{m_t}{d_t}

    with momentum decay :math:`\\psi` and learning rate :math:`\\eta`. The state
    of parameter ``i`` is ``state[i] = {"step", "mu_product", "exp_avg",
    "exp_avg_sq"}``: arrays in the parameter's dtype, and :math:`\\Pi_t` as a
    Python float holding a float32 value, because torch keeps it as a float32
    scalar tensor (its default dtype) and parity with torch needs the same rounding.

    Examples
    --------
    >>> from minidl import Parameter
    >>> p = Parameter(np.array([1.0, -1.0]))
    >>> opt = NAdam([p], lr=0.1)
    >>> p.grad[:] = [0.5, -2.0]
    >>> opt.step()  # lr (1 + 0.1 mu_2 / (1 - mu_1 mu_2)), about 1.06 lr, against each gradient
    >>> p.data.round(3)
    array([ 0.894, -0.894])
    >>> sorted(opt.state[0])
    ['exp_avg', 'exp_avg_sq', 'mu_product', 'step']
    """

    _state_arrays = ("exp_avg", "exp_avg_sq")
    _state_scalars = ("mu_product",)
    _state_required = ("step", "mu_product", "exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay,
                                      decoupled_weight_decay=decoupled_weight_decay, maximize=maximize))

    def _check_hyper(self, hyper: dict, where: str) -> dict:
        return {"lr": real_number(hyper["lr"], "lr", where),
                "betas": check_betas(hyper["betas"], where),
                **{k: real_number(hyper[k], k, where) for k in ("eps", "weight_decay", "momentum_decay")},
                "decoupled_weight_decay": check_flag(hyper["decoupled_weight_decay"],
                                                     "decoupled_weight_decay", where)}

    def _update(self, data, g, hyper, state):
        lr, (beta1, beta2), psi = hyper["lr"], hyper["betas"], hyper["momentum_decay"]
        if state is None:
            zeros = np.zeros_like(data)
            state = {"step": 0, "mu_product": 1.0, "exp_avg": zeros, "exp_avg_sq": zeros}
        step = state["step"] + 1
        base, g = weight_decay(data, g, lr, hyper["weight_decay"], hyper["decoupled_weight_decay"])
        mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * psi)))  # the momentum factor now and next step
        mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * psi)))
        mu_product = float(np.float32(state["mu_product"]) * np.float32(mu))  # torch: a float32 tensor
        exp_avg, exp_avg_sq = moments(state, g, beta1, beta2)
        denom = exp_avg_sq / (1 - beta2 ** step)
        denom = np.sqrt(denom, out=denom)
        denom += hyper["eps"]
        new = g * (-lr * (1.0 - mu) / (1.0 - mu_product))  # two addcdiv: p + (c * g) / d, then the momentum
        new /= denom
        new += base
        step_m = exp_avg * ((-lr * mu_next) / (1.0 - mu_product * mu_next))
        step_m /= denom
        new += step_m
        return new, {"step": step, "mu_product": mu_product, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
