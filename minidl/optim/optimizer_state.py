"""The optimizers' state dicts: :class:`OptimizerState`, the base of
:class:`~minidl.optim.Optimizer` that saves and restores its groups and per-parameter state."""

from __future__ import annotations

import math
import numbers

import numpy as np


def check_state_keys(state_dict, keys, owner: str) -> dict:
    """``state_dict`` if it is a dict with exactly ``keys``, else the ValueError of
    ``owner.load_state_dict`` (the optimizers' and the schedules' first check)."""
    if not isinstance(state_dict, dict) or set(state_dict) != set(keys):
        got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
        raise ValueError(f"{owner}.load_state_dict: expected a dict with keys {sorted(keys)}. "
                         f"Received: {got}. Pass the result of {owner}.state_dict().")
    return state_dict


class OptimizerState:
    """``state_dict`` / ``load_state_dict`` of :class:`~minidl.optim.Optimizer` (which sets
    ``defaults``, ``param_groups``, ``params``, ``state`` and the parameter index they use)."""

    def state_dict(self) -> dict:
        """``{"num_params", "param_groups", "state"}``, like torch's: each group's
        hyper-parameters with ``"params"`` as parameter indices, and copies of the
        per-parameter state ``{index: {name: array or step count}}``.

        Returns
        -------
        dict

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> from minidl.optim import SGD
        >>> layer = Dense(2, 1, rng=0)
        >>> opt = SGD(layer.parameters(), lr=0.1, momentum=0.9)
        >>> layer.weight.grad[...] = 1.0; opt.step()
        >>> sd = opt.state_dict()
        >>> sd["num_params"], sd["param_groups"][0]["params"], list(sd["state"][0])
        (2, [0, 1], ['momentum_buffer'])
        """
        groups = [{**{n: g[n] for n in self.defaults},
                   "params": [self._index[p] for p in g["params"]]} for g in self.param_groups]
        state = {i: {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in s.items()}
                 for i, s in sorted(self.state.items())}
        return {"num_params": len(self.params), "param_groups": groups, "state": state}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore from :meth:`state_dict` (keys may be ``int`` or ``str``, as after JSON).

        Everything is checked first; on any mismatch a ValueError is raised and
        nothing is changed.

        Parameters
        ----------
        state_dict : dict
            As :meth:`state_dict` returns it, for an optimizer over the same parameters.

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> from minidl.optim import SGD
        >>> layer = Dense(2, 1, rng=0)
        >>> opt = SGD(layer.parameters(), lr=0.1, momentum=0.9)
        >>> layer.weight.grad[...] = 1.0; opt.step()
        >>> fresh = SGD(layer.parameters(), lr=0.5, momentum=0.9)
        >>> fresh.load_state_dict(opt.state_dict())
        >>> fresh.lr, np.array_equal(fresh.state[0]["momentum_buffer"], opt.state[0]["momentum_buffer"])
        (0.1, True)
        """
        name = type(self).__name__
        where = f"{name}.load_state_dict"
        sd = check_state_keys(state_dict, {"num_params", "param_groups", "state"}, name)
        if sd["num_params"] != len(self.params):
            raise ValueError(f"{where}: the state is for {sd['num_params']} parameters but this "
                             f"optimizer has {len(self.params)}. Build the optimizer on the same "
                             "model (same parameter order) that was saved.")
        groups = sd["param_groups"]
        if not isinstance(groups, (list, tuple)) or len(groups) != len(self.param_groups):
            got = len(groups) if isinstance(groups, (list, tuple)) else type(groups).__name__
            raise ValueError(f"{where}: the state has {got} parameter groups but this optimizer has "
                             f"{len(self.param_groups)}. Build the optimizer with the same groups.")
        new_hyper = []
        for k, (saved, group) in enumerate(zip(groups, self.param_groups)):
            mine = [self._index[p] for p in group["params"]]
            if isinstance(saved, dict):  # saved before a hyper-parameter existed: its old behaviour
                saved = {**{n: v for n, v in self._added_hyper.items() if n in self.defaults}, **saved}
            if not isinstance(saved, dict) or set(saved) != {"params", *self.defaults}:
                raise ValueError(f"{where}: param_groups[{k}] must have the keys "
                                 f"{sorted(['params', *self.defaults])}. Received: {saved!r:.200}")
            if list(saved["params"]) != mine:
                raise ValueError(f"{where}: param_groups[{k}] holds parameters {list(saved['params'])} "
                                 f"but this optimizer's group {k} holds {mine}. Build the optimizer "
                                 "with the same groups, in the same order.")
            hyper = self._checked({n: saved[n] for n in self.defaults},
                                      f"{where}: param_groups[{k}]")
            self._check_lr_dtype(hyper["lr"], group["params"], where)
            new_hyper.append(hyper)
        state = {}
        for key, entry in dict(sd["state"]).items():
            try:
                i = int(key)
            except (TypeError, ValueError):
                i = -1
            if not 0 <= i < len(self.params):
                raise ValueError(f"{where}: state key {key!r} is not a parameter index "
                                 f"in [0, {len(self.params)}).")
            state[i] = self._check_state(entry, i, where)
        for group, hyper in zip(self.param_groups, new_hyper):
            group.update(hyper)
        self.state = state

    def _check_state(self, entry, i: int, where: str) -> dict:
        allowed = set(self._state_arrays) | set(self._state_scalars)
        allowed |= {"step"} if "step" in self._state_required else set()
        if not isinstance(entry, dict) or not set(self._state_required) <= set(entry) <= allowed:
            got = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            raise ValueError(f"{where}: the state of params[{i}] must have the entries "
                             f"{sorted(self._state_required)} (and optionally "
                             f"{sorted(allowed - set(self._state_required))}). Received: {got}.")
        out, p = {}, self.params[i]
        for k, v in entry.items():
            if k == "step":
                if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 0:
                    raise ValueError(f"{where}: the step count of params[{i}] must be an int >= 0. "
                                     f"Received: step={v!r}")
                out[k] = int(v)
                continue
            if k in self._state_scalars:
                if not isinstance(v, numbers.Real) or isinstance(v, (bool, np.bool_)) or not math.isfinite(v):
                    raise ValueError(f"{where}: {k} of params[{i}] must be a finite number. Received: {k}={v!r}")
                out[k] = float(v)
                continue
            v = np.asarray(v)
            if v.shape != p.data.shape or v.dtype != p.data.dtype:
                raise ValueError(f"{where}: {k.replace('_', ' ')} {i} has shape {v.shape} and dtype "
                                 f"{v.dtype}, but params[{i}] has shape {p.data.shape} and dtype "
                                 f"{p.data.dtype}.")
            out[k] = v.copy()
        return out
