"""Stochastic gradient descent with momentum, like :class:`torch.optim.SGD`."""

from __future__ import annotations

from collections.abc import MutableMapping

import numpy as np

from .optimizer import Optimizer, check_flag, real_number

__all__ = ["SGD"]

_LEGACY_KEYS = {"lr", "momentum", "dampening", "weight_decay", "nesterov", "num_params",
                "momentum_buffers"}


class _StateView(MutableMapping):
    """A live ``{index: array}`` view of one entry of the per-parameter state (SGD's
    ``momentum_buffers``); deleting or clearing removes the entries from the state."""

    def __init__(self, state: dict, key: str):
        self._state, self._key = state, key

    def __getitem__(self, i):
        return self._state[i][self._key]

    def __setitem__(self, i, value):
        self._state.setdefault(i, {})[self._key] = value

    def __delitem__(self, i):
        del self._state[i][self._key]

    def __iter__(self):
        return iter([i for i, s in self._state.items() if self._key in s])

    def __len__(self):
        return sum(self._key in s for s in self._state.values())

    def __repr__(self):
        return repr(dict(self))


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, like :class:`torch.optim.SGD`.

    Parameters
    ----------
    params : iterable of Parameter, a Layer, or a list of dicts
        The parameters to update, e.g. ``model.parameters()``, or parameter
        groups as in torch: dicts with ``"params"`` and any of the
        hyper-parameters below, which then override the defaults for that
        group (e.g. no weight decay on biases). Must be non-empty and free of
        duplicates.
    lr : float
        Learning rate, >= 0. ``opt.lr`` may be changed between steps (it sets
        every group's; ``param_groups[i]["lr"]`` sets one group's).
    momentum : float, default 0
        Momentum factor, >= 0.
    dampening : float, default 0
        Dampening for momentum, >= 0 (torch accepts any value).
    weight_decay : float, default 0
        L2 penalty, >= 0.
    nesterov : bool, default False
        Nesterov momentum; requires ``momentum > 0`` and ``dampening == 0``.
    maximize : bool, default False
        Keyword only. Maximise the objective: the rule runs on ``-grad``, as torch's ``maximize``.

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
    two lines are skipped. Updates are in place in the parameter's dtype, and
    bit for bit those of the in-place rule. Each parameter has its own
    momentum buffer (``state[i]["momentum_buffer"]``, also readable as
    ``momentum_buffers[i]``), keyed by its position in ``params``.

    Examples
    --------
    >>> from minidl import Parameter
    >>> p = Parameter(np.array([1.0, 2.0]))
    >>> opt = SGD([p], lr=0.1, momentum=0.9)
    >>> p.grad[:] = [1.0, -1.0]
    >>> opt.step()
    >>> p.data
    array([0.9, 2.1])
    >>> opt.zero_grad(); p.grad
    array([0., 0.])

    Parameter groups: no weight decay on the bias.

    >>> w, b = Parameter(np.ones(2)), Parameter(np.zeros(1))
    >>> opt = SGD([{"params": [w]}, {"params": [b], "weight_decay": 0.0}],
    ...           lr=0.1, weight_decay=5e-4)
    >>> [g["weight_decay"] for g in opt.param_groups]
    [0.0005, 0.0]
    """

    _state_arrays = ("momentum_buffer",)
    _check_new_state = False  # a nan/inf buffer makes the new value nan/inf (inf * -0.0 is nan)

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    def _check_hyper(self, hyper: dict, where: str) -> dict:
        out = {**{k: real_number(hyper[k], k, where) for k in ("lr", "momentum", "dampening", "weight_decay")},
               "nesterov": check_flag(hyper["nesterov"], "nesterov", where)}
        if out["nesterov"] and (out["momentum"] <= 0 or out["dampening"] != 0):
            raise ValueError(
                f"{where}: Nesterov momentum requires a momentum and zero dampening. "
                f"Received: momentum={hyper['momentum']!r}, dampening={hyper['dampening']!r}. "
                "Use momentum > 0 and dampening=0, or nesterov=False."
            )
        return out

    @property
    def momentum_buffers(self) -> _StateView:
        """The momentum buffers ``{index: array}`` (a live view of ``state``)."""
        return _StateView(self.state, "momentum_buffer")

    def _update(self, data, g, hyper, state):
        dt = data.dtype
        sc = hyper.get(dt)
        if sc is None:  # per dtype: -lr, momentum, 1 - dampening, weight decay (converted once)
            sc = hyper[dt] = (dt.type(-hyper["lr"]), dt.type(hyper["momentum"]),
                              dt.type(1 - hyper["dampening"]), dt.type(hyper["weight_decay"]))
        neg_lr, mu, undamped, wd = sc
        if hyper["weight_decay"] != 0:
            g = g + wd * data
        new_state = {}
        if hyper["momentum"] != 0:
            old = state.get("momentum_buffer") if state else None
            if old is None:
                buf = np.array(g, dtype=dt, copy=True)
            else:  # out of place: the old buffer stays until the step is committed
                buf = old * mu
                buf += g if hyper["dampening"] == 0 else undamped * g
            g = g + mu * buf if hyper["nesterov"] else buf
            new_state["momentum_buffer"] = buf
        new = g * neg_lr  # p - lr * g, bit for bit (negation is exact)
        new += data
        return new, new_state

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore from :meth:`state_dict` (keys may be ``int`` or ``str``, as after JSON).

        The flat format of minidl 0.x checkpoints (``lr``, ``momentum``, ...,
        ``momentum_buffers``) is accepted too, for a single parameter group.
        Everything is checked first; on any mismatch a ValueError is raised and
        nothing is changed.

        Parameters
        ----------
        state_dict : dict
            As :meth:`~minidl.optim.Optimizer.state_dict` returns it (or a minidl 0.x flat dict).

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> layer = Dense(2, 1)
        >>> opt = SGD(layer.parameters(), lr=0.1)
        >>> opt.load_state_dict(SGD(layer.parameters(), lr=0.2).state_dict())
        >>> opt.lr
        0.2
        """
        if isinstance(state_dict, dict) and set(state_dict) == _LEGACY_KEYS:
            sd = state_dict
            group = {k: sd[k] for k in ("lr", "momentum", "dampening", "weight_decay", "nesterov")}
            state_dict = {"num_params": sd["num_params"],
                          "param_groups": [{**group, "params": list(range(len(self.params)))}],
                          "state": {k: {"momentum_buffer": b} for k, b in
                                    dict(sd["momentum_buffers"]).items()}}
        super().load_state_dict(state_dict)
