"""The optimizer base: parameter groups, per-parameter state, the all-or-nothing step."""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..layers.base import Layer
from ..parameter import Parameter
from .optimizer_state import OptimizerState, check_state_keys  # noqa: F401 - its import path before the split

__all__ = ["Optimizer", "all_finite"]


def real_number(value, name: str, where: str, minimum: float = 0.0) -> float:
    """Return ``value`` as a finite float >= ``minimum``."""
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{where}: {name} must be a real number. Received: {name}={value!r}")
    if not math.isfinite(value) or value < minimum:
        raise ValueError(
            f"{where}: {name} must be a finite number >= {minimum:g}. Received: {name}={value!r}"
        )
    return float(value)


def below_one(value, name: str, where: str) -> float:
    """Return ``value`` as a float in [0, 1) (betas, torch's check)."""
    value = real_number(value, name, where)
    if value >= 1.0:
        raise ValueError(f"{where}: {name} must be in [0, 1). Received: {name}={value!r}")
    return value


def check_flag(value, name: str, where: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{where}: {name} must be a bool. Received: {name}={value!r}")
    return bool(value)


def all_finite(a: np.ndarray) -> bool:
    """Every element finite: one sum in ``a``'s dtype (nan/inf propagate through it); the exact
    element-wise check runs only when that sum is not finite (it may merely have overflowed).

    Parameters
    ----------
    a : ndarray

    Returns
    -------
    bool

    Examples
    --------
    >>> all_finite(np.array([1.0, 2.0])), all_finite(np.array([1.0, np.nan]))
    (True, False)
    >>> all_finite(np.full(4, 6e4, np.float16))  # the sum overflows, the elements do not
    True
    """
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(a.sum()):
            return True
        return bool(np.isfinite(a).all())


def _finite(a: np.ndarray) -> bool:
    """:func:`all_finite` without the error-state context (the step sets it once)."""
    return math.isfinite(np.add.reduce(a, axis=None)) or bool(np.isfinite(a).all())


class Optimizer(OptimizerState):
    """Base class of minidl's optimizers, like :class:`torch.optim.Optimizer`.

    Holds the parameter groups (``param_groups``: a list of dicts with
    ``"params"`` and every hyper-parameter), the per-parameter ``state``
    (``{index: {name: value}}``, the index being the parameter's position in
    ``params``, all groups in order), and the all-or-nothing step: every new
    value and state is computed out of place first, and committed only when
    all are finite.

    A subclass sets ``_state_arrays`` / ``_state_required`` (names of its
    state entries) and implements ``_check_hyper(hyper, where)`` (validated copy) and
    ``_update(data, grad, hyper, state) -> (new_data, new_state)`` (pure:
    must not modify ``data`` or ``state``). A ``maximize`` entry in the defaults
    is checked and applied by the base, as torch does: the rule then runs on
    ``-grad`` (gradient ascent).

    Parameters
    ----------
    params : iterable of Parameter, a Layer, or a list of dicts
        The parameters, or parameter groups: dicts with ``"params"`` and any
        hyper-parameters that differ from the defaults.
    defaults : dict
        Every hyper-parameter's default value.

    Examples
    --------
    >>> from minidl.layers import Dense
    >>> from minidl.optim import SGD
    >>> layer = Dense(4, 2)
    >>> opt = SGD([{"params": [layer.weight]}, {"params": [layer.bias], "lr": 0.01}], lr=0.1)
    >>> [g["lr"] for g in opt.param_groups]
    [0.1, 0.01]
    """

    #: ``step()`` changes nothing when it raises (the Trainer need not keep a copy).
    atomic_step = True
    _state_arrays: tuple = ()
    _state_required: tuple = ()
    #: check the new state arrays too (SGD: a non-finite buffer always makes the update non-finite)
    _check_new_state = True
    #: names of per-parameter state entries that are Python floats (NAdam's ``mu_product``)
    _state_scalars: tuple = ()
    #: hyper-parameters added after state dicts were first saved, with the value that keeps the
    #: old behaviour: a saved group without them loads with it (torch's ``setdefault`` on load)
    _added_hyper = {"maximize": False}

    def __init__(self, params, defaults: dict):
        where = type(self).__name__
        self.defaults = self._checked(dict(defaults), where)
        self.param_groups: list[dict] = []
        self.params: list[Parameter] = []
        self.state: dict[int, dict] = {}
        self._index: dict = {}  # Parameter -> position in params (by identity: copies keep it)
        self._hyper_cache: dict[int, tuple] = {}
        for group in self._split_groups(params, where):
            self.add_param_group(group)

    # ------------------------------------------------------------ groups
    @staticmethod
    def _split_groups(params, where: str) -> list:
        if isinstance(params, Layer):
            return [{"params": params.parameters()}]
        if isinstance(params, (Parameter, np.ndarray, dict)):
            raise TypeError(
                f"{where}: params must be an iterable of Parameter objects or of group dicts. "
                f"Received: a single {type(params).__name__}. Wrap it in a list: "
                f"{where}([p], lr=...)."
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
        dicts = [isinstance(p, dict) for p in params]
        if all(dicts):
            return params
        if any(dicts):
            raise TypeError(
                f"{where}: params mixes group dicts and single parameters (params[{dicts.index(True)}] "
                f"is a dict, params[{dicts.index(False)}] is not). Pass either model.parameters() "
                "or a list of dicts, e.g. [{'params': a}, {'params': b, 'lr': 0.01}]."
            )
        return [{"params": params, "_flat": True}]

    def add_param_group(self, param_group: dict) -> None:
        """Add a group: a dict with ``"params"`` (Parameters or a Layer) and any
        hyper-parameters; those missing take the constructor's defaults.

        Raises ValueError for an empty group, an unknown key, a parameter that
        is already in a group, or an invalid hyper-parameter.

        Parameters
        ----------
        param_group : dict
            ``{"params": [...], "lr": ..., ...}``.

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> from minidl.optim import SGD
        >>> layer = Dense(4, 2)
        >>> opt = SGD([layer.weight], lr=0.1)
        >>> opt.add_param_group({"params": [layer.bias], "lr": 0.0})
        >>> len(opt.param_groups)
        2
        """
        where = type(self).__name__
        k = len(self.param_groups)
        flat = isinstance(param_group, dict) and param_group.get("_flat", False)
        label = "params" if flat else f"param_groups[{k}]['params']"
        if not isinstance(param_group, dict):
            raise TypeError(f"{where}: a parameter group must be a dict with 'params'. "
                            f"Received: {type(param_group).__name__}.")
        group = {key: v for key, v in param_group.items() if key != "_flat"}
        unknown = sorted(set(group) - {"params", *self.defaults}, key=str)
        if "params" not in group or unknown:
            raise ValueError(
                f"{where}: param_groups[{k}] must have 'params' and only the keys "
                f"{list(self.defaults)}. Received: keys {list(group)}"
                + (f" (unknown: {unknown})" if unknown else "") + ". Fix the group's keys."
            )
        params = group["params"]
        if isinstance(params, Layer):
            params = params.parameters()
        elif isinstance(params, Parameter):
            params = [params]
        try:
            params = list(params)
        except TypeError:
            raise TypeError(f"{where}: {label} must be an iterable of Parameter objects or a Layer. "
                            f"Received: {type(params).__name__}.") from None
        if not params:
            raise ValueError(f"{where}: {label} is empty; every parameter group needs at least "
                             "one Parameter. Drop the group or give it parameters.")
        seen: dict[int, int] = {}
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(f"{where}: {label}[{i}] must be a Parameter. "
                                f"Received: {type(p).__name__}.")
            if id(p) in seen:
                raise ValueError(f"{where}: {label}[{i}] is the same Parameter as {label}[{seen[id(p)]}]; "
                                 "each parameter may appear only once. Remove the duplicate.")
            if p in self._index:
                other = next(j for j, g in enumerate(self.param_groups)
                             if any(q is p for q in g["params"]))
                raise ValueError(f"{where}: {label}[{i}] is already in param_groups[{other}]; a "
                                 "parameter may belong to one group only. Remove it from one group.")
            seen[id(p)] = i
        hyper = {name: group.get(name, self.defaults[name]) for name in self.defaults}
        hyper = self._checked(hyper, where if flat else f"{where}: param_groups[{k}]")
        self._check_lr_dtype(hyper["lr"], params, where)
        for p in params:
            self._index[p] = len(self.params)
            self.params.append(p)
        self.param_groups.append({"params": params, **hyper})

    def _check_hyper(self, hyper: dict, where: str) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def _checked(self, hyper: dict, where: str) -> dict:
        """``_check_hyper``'s validated copy, plus the flags the base handles (``maximize``)."""
        out = self._check_hyper(hyper, where)
        if "maximize" in hyper:
            out["maximize"] = check_flag(hyper["maximize"], "maximize", where)
        return out

    @staticmethod
    def _check_lr_dtype(lr: float, params, where: str) -> None:
        for dt in {p.data.dtype for p in params}:
            with np.errstate(over="ignore"):
                finite = np.isfinite(dt.type(lr))
            if not finite:
                raise ValueError(
                    f"{where}: lr={lr!r} is not finite in the parameters' dtype {dt} (it would "
                    "make every weight inf or nan). Use a smaller learning rate."
                )

    def _common(self, name: str):
        values = [g[name] for g in self.param_groups]
        if any(v != values[0] for v in values[1:]):
            raise ValueError(
                f"{type(self).__name__}.{name}: the {len(values)} parameter groups have different "
                f"values {values}. Read or set each group's value in "
                f"optimizer.param_groups[i][{name!r}]."
            )
        return values[0]

    def __getattr__(self, name):  # the hyper-parameters, when every group agrees (opt.momentum)
        defaults = self.__dict__.get("defaults")
        if defaults is not None and name in defaults and self.__dict__.get("param_groups"):
            return self._common(name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def lr(self) -> float:
        """The learning rate of every group (a ValueError when the groups differ: then read
        ``param_groups[i]['lr']``); setting it sets every group's (schedules do)."""
        return self._common("lr")

    @lr.setter
    def lr(self, value) -> None:
        where = type(self).__name__
        value = real_number(value, "lr", where)
        self._check_lr_dtype(value, self.params, where)
        for group in self.param_groups:
            group["lr"] = value

    # -------------------------------------------------------------- step
    def _update(self, data, grad, hyper, state):  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self) -> None:
        """Update every parameter once from its ``.grad`` (params with ``grad=None`` are skipped).

        The step is all or nothing: every new value (and state) is computed
        first; if any is nan or inf, a FloatingPointError is raised and no
        parameter or state has changed. The check is one sum per array in its
        own dtype (an element-wise check only when that sum is not finite). The
        price is memory: until the commit the step holds the new values of all
        parameters and of their state arrays (one extra copy of each).

        Raises
        ------
        FloatingPointError
            An update is not finite (nothing changed).
        ValueError
            A gradient of another shape than its parameter.

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> from minidl.optim import SGD
        >>> layer = Dense(2, 1, rng=0)
        >>> opt = SGD(layer.parameters(), lr=0.1, momentum=0.9)
        >>> layer.weight.grad[...] = 1.0
        >>> before = layer.weight.data.copy()
        >>> opt.step()
        >>> np.allclose(layer.weight.data, before - 0.1)
        True
        """
        name = type(self).__name__
        pending = []
        # no overflow warnings: a non-finite result is refused below with a FloatingPointError
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for k, group in enumerate(self.param_groups):
                hyper = self._hyper_of(k, group, name)
                for p in group["params"]:
                    grad, data = p.grad, p.data
                    if grad is None:
                        continue
                    i = self._index[p]
                    if grad.shape != data.shape:
                        raise ValueError(
                            f"{name}.step: params[{i}].grad has shape {grad.shape} but the parameter "
                            f"has shape {data.shape}. Reset it with params[{i}].zero_grad()."
                        )
                    grad = grad.astype(data.dtype, copy=False)
                    if hyper.get("maximize"):  # torch: every rule runs on -grad (negation is exact)
                        grad = np.negative(grad)
                    new, state = self._update(data, grad, hyper, self.state.get(i))
                    bad = not _finite(new) or self._check_new_state and any(
                        not _finite(v) for v in state.values() if isinstance(v, np.ndarray))
                    if bad:
                        raise FloatingPointError(
                            f"{name}.step: the update of params[{i}] {data.shape} is not finite (nan "
                            f"or inf) with lr={group['lr']!r}; no parameter was changed. Lower the "
                            "learning rate or clip the gradients (minidl.optim.clip_grad_norm)."
                        )
                    pending.append((i, data, new, state))
        self._commit(pending)

    def _commit(self, pending: list) -> None:
        """Publish a computed step, in place (references to ``p.data`` stay valid).

        All or nothing under Ctrl-C too: a KeyboardInterrupt between two assignments
        finishes the commit (redoing the assignment in progress is harmless: each one
        only publishes a value computed before), then propagates.
        """
        done, interrupted = 0, None
        while done < len(pending):
            try:
                for i, data, new, state in pending[done:]:
                    np.copyto(data, new)
                    if state:
                        self.state[i] = state
                    done += 1
            except KeyboardInterrupt as exc:  # the first one is raised once the step is whole
                interrupted = interrupted or exc
        if interrupted is not None:
            raise interrupted

    def _hyper_of(self, k: int, group: dict, name: str) -> dict:
        """The group's validated hyper-parameters, re-checked only when a value changed (a
        schedule or the user may set ``group["lr"]`` and others between steps)."""
        raw = tuple(group[n] for n in self.defaults)
        cached = self._hyper_cache.get(k)
        if cached is None or cached[0] != raw:
            cached = self._hyper_cache[k] = (raw, self._checked(group, f"{name}.step: param_groups[{k}]"))
        return cached[1]

    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero, in place.

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> from minidl.optim import SGD
        >>> layer = Dense(2, 1, rng=0)
        >>> opt = SGD(layer.parameters(), lr=0.1, momentum=0.9)
        >>> layer.weight.grad[...] = 1.0
        >>> opt.zero_grad()
        >>> float(layer.weight.grad.sum())
        0.0
        """
        for p in self.params:
            p.zero_grad()

    def __repr__(self) -> str:
        groups = self.param_groups
        hyper = groups[0] if len(groups) == 1 else self.defaults
        text = ", ".join(f"{n}={hyper[n]!r}" for n in self.defaults)
        more = f", param_groups={len(groups)}" if len(groups) > 1 else ""
        return f"{type(self).__name__}({text}, num_params={len(self.params)}{more})"
