"""Adagrad, like :class:`torch.optim.Adagrad`."""

from __future__ import annotations

import numpy as np

from .optimizer import Optimizer, real_number

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """Adagrad, like :class:`torch.optim.Adagrad` (its single-tensor CPU rule, dense gradients).

    Parameters
    ----------
    params : iterable of Parameter, a Layer, or a list of dicts
        The parameters, or parameter groups (dicts with ``"params"`` and any
        hyper-parameters below), as for :class:`SGD`.
    lr : float, default 1e-2
        Learning rate, >= 0.
    lr_decay : float, default 0
        The learning rate at step :math:`t` is ``lr / (1 + (t - 1) * lr_decay)``, >= 0.
    weight_decay : float, default 0
        L2 penalty added to the gradient, >= 0.
    initial_accumulator_value : float, default 0
        Starting value of every element of the sum of squared gradients, >= 0.
        As in torch, the constructor's value starts every group's sums (a
        parameter group's own ``initial_accumulator_value`` is kept but not used).
    eps : float, default 1e-10
        Added to the denominator, >= 0.
    maximize : bool, default False
        Keyword only. Maximise the objective: the rule runs on ``-grad``, as torch's ``maximize``.

    Notes
    -----
    For each parameter :math:`p` with gradient :math:`g`, at step
    :math:`t = 1, 2, \\ldots` (torch's rule; :math:`s_0` = ``initial_accumulator_value``):

    .. math::

        g &\\leftarrow g + \\lambda p \\\\
        s_t &= s_{t-1} + g^2 \\\\
        p &\\leftarrow p - \\frac{\\eta}{1 + (t - 1) \\delta} \\frac{g}{\\sqrt{s_t} + \\epsilon}

    with weight decay :math:`\\lambda`, learning rate :math:`\\eta` and
    ``lr_decay`` :math:`\\delta`. Each element's step shrinks as its squared
    gradients add up. The state of parameter ``i`` is ``state[i] = {"step", "sum"}``
    (``"sum"`` in the parameter's dtype), made at its first step (torch makes
    it in the constructor; the values are the same).

    Examples
    --------
    >>> from minidl import Parameter
    >>> p = Parameter(np.array([1.0, -1.0]))
    >>> opt = Adagrad([p], lr=0.1)
    >>> p.grad[:] = [0.5, -2.0]
    >>> opt.step()  # the first step moves each weight by lr, against its gradient
    >>> p.data.round(6)
    array([ 0.9, -0.9])
    >>> sorted(opt.state[0])
    ['step', 'sum']
    """

    _state_arrays = ("sum",)
    _state_required = ("step", "sum")

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, *, maximize=False):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps,
                                      maximize=maximize))

    def _check_hyper(self, hyper: dict, where: str) -> dict:
        names = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")
        return {k: real_number(hyper[k], k, where) for k in names}

    def _update(self, data, g, hyper, state):
        if state is None:
            # torch's: the constructor's value for every group (a group's own is kept, unused)
            state = {"step": 0, "sum": np.full_like(data, self.defaults["initial_accumulator_value"])}
        step = state["step"] + 1
        if hyper["weight_decay"] != 0:
            g = g + hyper["weight_decay"] * data
        clr = hyper["lr"] / (1 + (step - 1) * hyper["lr_decay"])
        total = g * g  # addcmul(sum, g, g, value=1)
        total += state["sum"]
        std = np.sqrt(total)
        std += hyper["eps"]
        new = g * -clr  # addcdiv: p + (-clr * g) / std
        new /= std
        new += data
        return new, {"step": step, "sum": total}
