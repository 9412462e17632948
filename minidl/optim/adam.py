"""Adam and AdamW, like :class:`torch.optim.Adam` and :class:`torch.optim.AdamW`."""

from __future__ import annotations

import numbers

import numpy as np

from .optimizer import Optimizer, below_one, check_flag, real_number

__all__ = ["Adam", "AdamW"]


def lerp(start: np.ndarray, end: np.ndarray, weight: float) -> np.ndarray:
    """torch's ``start.lerp(end, weight)``, out of place (its two formulas, split at 0.5)."""
    if abs(weight) < 0.5:
        out = end - start
        out *= weight
        out += start
        return out
    out = start - end  # end - (end - start) * (1 - weight)
    out *= 1.0 - weight
    out += end
    return out


def check_betas(betas, where: str) -> tuple:
    """``betas`` as a pair of floats in [0, 1) (Adam's and its relatives' check)."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2 \
            or not all(isinstance(b, numbers.Real) for b in betas):
        raise ValueError(f"{where}: betas must be a pair of numbers in [0, 1), e.g. "
                         f"(0.9, 0.999). Received: betas={betas!r}")
    return below_one(betas[0], "betas[0]", where), below_one(betas[1], "betas[1]", where)


def weight_decay(data, g, lr: float, wd: float, decoupled: bool):
    """``(base, g)``: the weights the update starts from and the gradient, after torch's weight
    decay: decoupled shrinks the weights by ``lr * wd`` of themselves, coupled adds ``wd * data``."""
    if wd == 0:
        return data, g
    if decoupled:
        return data * (1 - lr * wd), g
    return data, g + wd * data


def moments(state: dict, g, beta1: float, beta2: float):
    """The new first and second moment averages (torch's ``lerp_`` and ``mul_().addcmul_()``)."""
    exp_avg = lerp(state["exp_avg"], g, 1 - beta1)
    exp_avg_sq = state["exp_avg_sq"] * beta2  # addcmul: v * beta2 + (1 - beta2) * g * g
    sq = g * (1 - beta2)
    sq *= g
    exp_avg_sq += sq
    return exp_avg, exp_avg_sq


class Adam(Optimizer):
    """Adam, like :class:`torch.optim.Adam` (its single-tensor CPU rule).

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
        L2 penalty added to the gradient, >= 0 (coupled; see :class:`AdamW`).
    amsgrad : bool, default False
        Normalise by the largest second moment seen so far (AMSGrad).
    maximize : bool, default False
        Keyword only. Maximise the objective: the rule runs on ``-grad``, as torch's ``maximize``.

    Notes
    -----
    For each parameter :math:`p` with gradient :math:`g`, at step
    :math:`t = 1, 2, \\ldots` (torch's rule; :math:`m_0 = v_0 = 0`):

    .. math::

        g &\\leftarrow g + \\lambda p \\\\
        m_t &= \\beta_1 m_{t-1} + (1 - \\beta_1) g \\\\
        v_t &= \\beta_2 v_{t-1} + (1 - \\beta_2) g^2 \\\\
        \\hat v_t &= \\max(\\hat v_{t-1}, v_t) \\text{ (AMSGrad) or } v_t \\\\
        p &\\leftarrow p - \\frac{\\eta}{1 - \\beta_1^t}
            \\frac{m_t}{\\sqrt{\\hat v_t} / \\sqrt{1 - \\beta_2^t} + \\epsilon}

    with weight decay :math:`\\lambda` and learning rate :math:`\\eta`; note
    that :math:`\\epsilon` is added after the bias correction of
    :math:`\\sqrt{v_t}`, as torch does. The state of parameter ``i`` is
    ``state[i] = {"step", "exp_avg", "exp_avg_sq"}`` (and
    ``"max_exp_avg_sq"`` with AMSGrad), arrays in the parameter's dtype. The
    step is all or nothing (see :meth:`Optimizer.step`): until the commit it
    holds the new parameter and moment arrays, three (four with AMSGrad)
    extra copies of the parameters.

    Examples
    --------
    >>> from minidl import Parameter
    >>> p = Parameter(np.array([1.0, -1.0]))
    >>> opt = Adam([p], lr=0.1)
    >>> p.grad[:] = [0.5, -2.0]
    >>> opt.step()  # the first step moves each weight by about lr, against its gradient
    >>> p.data.round(6)
    array([ 0.9, -0.9])
    >>> sorted(opt.state[0])
    ['exp_avg', 'exp_avg_sq', 'step']
    """

    _state_arrays = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _state_required = ("step", "exp_avg", "exp_avg_sq")
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def _check_hyper(self, hyper: dict, where: str) -> dict:
        return {"lr": real_number(hyper["lr"], "lr", where),
                "betas": check_betas(hyper["betas"], where),
                "eps": real_number(hyper["eps"], "eps", where),
                "weight_decay": real_number(hyper["weight_decay"], "weight_decay", where),
                "amsgrad": check_flag(hyper["amsgrad"], "amsgrad", where)}

    def _update(self, data, g, hyper, state):
        lr, (beta1, beta2), eps, wd = hyper["lr"], hyper["betas"], hyper["eps"], hyper["weight_decay"]
        if state is None:
            zeros = np.zeros_like(data)
            state = {"step": 0, "exp_avg": zeros, "exp_avg_sq": zeros}
        step = state["step"] + 1
        base, g = weight_decay(data, g, lr, wd, self._decoupled)
        exp_avg, exp_avg_sq = moments(state, g, beta1, beta2)
        new_state = {**state, "step": step, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
        second = exp_avg_sq
        if hyper["amsgrad"]:
            old_max = state.get("max_exp_avg_sq")
            second = exp_avg_sq.copy() if old_max is None else np.maximum(old_max, exp_avg_sq)
            new_state["max_exp_avg_sq"] = second
        # torch, on Python floats: step_size = lr / (1 - beta1^t), sqrt(1 - beta2^t)
        step_size = lr / (1 - beta1 ** step)
        bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
        denom = np.sqrt(second)
        denom /= bias_correction2_sqrt
        denom += eps
        new = exp_avg * -step_size  # addcdiv: p + (-step_size * m) / denom
        new /= denom
        new += base
        return new, new_state


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay, like :class:`torch.optim.AdamW`.

    Parameters
    ----------
    params : iterable of Parameter, a Layer, or a list of dicts
        As for :class:`Adam`.
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 1e-2
        Decoupled decay: the weights shrink by ``lr * weight_decay`` of
        themselves each step, outside the moment averages.
    amsgrad : bool, default False
    maximize : bool, default False

    Notes
    -----
    As :class:`Adam` without the gradient penalty; instead, before the Adam
    update (torch's rule):

    .. math::

        p \\leftarrow p \\, (1 - \\eta \\lambda)

    Examples
    --------
    >>> from minidl import Parameter
    >>> p = Parameter(np.array([1.0, -1.0]))
    >>> opt = AdamW([p], lr=0.1, weight_decay=0.5)
    >>> p.grad[:] = [0.0, 0.0]  # no gradient: only the decay acts
    >>> opt.step()
    >>> p.data
    array([ 0.95, -0.95])
    """

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize)

