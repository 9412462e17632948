"""NormHistory: per-parameter gradient and weight norms over training."""

from __future__ import annotations

import numpy as np

from ..validation import is_int, positive_int
from .base import Callback


class NormHistory(Callback):
    """Record each parameter's gradient and weight L2 norms during training (opt-in).

    After the backward pass of every ``every``-th batch (global batch index
    ``step % every == 0``, counted over the whole run), before clipping and
    the optimizer step, so that each gradient is the batch's own, this stores
    ``np.linalg.norm(p.grad)`` and ``np.linalg.norm(p.data)`` for every named
    parameter. :func:`minidl.plot.norms` draws them. (As in PyTorch, the Trainer
    zeroes the gradients of the optimizer's parameters only: a parameter the
    optimizer does not train accumulates its gradient over the batches, and its
    recorded norm is that sum.)

    Parameters
    ----------
    every : int >= 1, default 1
        Record every ``every``-th batch (1: all of them).

    Attributes
    ----------
    grad_norms, weight_norms : dict of str -> list of float
        Parameter name (``model.named_parameters()``) -> one norm per recorded batch.
    steps : list of int
        The global batch index (from 0, over all epochs of the run) of each record.

    Notes
    -----
    ``fit`` starts a new record (``on_train_begin``); a Trainer checkpoint keeps it, so a
    resumed run continues it. The cost is one pass over the parameters per recorded batch.

    Examples
    --------
    >>> import minidl as mdl
    >>> from minidl import layers, losses
    >>> model = mdl.Sequential(layers.Flatten(), layers.Dense(64, 10, rng=0))
    >>> trainer = mdl.Trainer(model, losses.SoftmaxCrossEntropy(), mdl.optim.SGD(model.parameters(), lr=0.1))
    >>> (X, y), _ = mdl.data.load_digits()
    >>> norms = NormHistory(every=10)
    >>> _ = trainer.fit(X[:320], y[:320], epochs=2, callbacks=[norms], seed=0, progress=False)
    >>> norms.steps, sorted(norms.grad_norms)
    ([0, 10], ['1.bias', '1.weight'])
    """

    def __init__(self, every=1):
        self.every = positive_int(every, "every", "NormHistory")
        self._reset()

    def _reset(self):
        self.grad_norms: dict[str, list[float]] = {}
        self.weight_norms: dict[str, list[float]] = {}
        self.steps: list[int] = []
        self._count = 0  # batches seen in the run

    def on_train_begin(self, logs=None):
        self._reset()

    def on_after_backward(self, batch, logs=None):
        step, self._count = self._count, self._count + 1
        if step % self.every:
            return
        self.steps.append(step)
        for name, p in self.trainer.model.named_parameters():
            grad = 0.0 if p.grad is None else float(np.linalg.norm(p.grad))
            self.grad_norms.setdefault(name, []).append(grad)
            self.weight_norms.setdefault(name, []).append(float(np.linalg.norm(p.data)))

    def state_dict(self) -> dict:
        """The records so far and the batch count (a resumed run continues both).

        Returns
        -------
        dict
            ``grad_norms``, ``weight_norms`` (name -> list), ``steps`` and ``count``:
            plain lists and numbers, as checkpoints store them.

        Examples
        --------
        >>> NormHistory(every=2).state_dict()
        {'grad_norms': {}, 'weight_norms': {}, 'steps': [], 'count': 0}
        """
        return {"grad_norms": {k: list(v) for k, v in self.grad_norms.items()},
                "weight_norms": {k: list(v) for k, v in self.weight_norms.items()},
                "steps": list(self.steps), "count": self._count}

    def load_state_dict(self, state: dict) -> None:
        """Continue the records of :meth:`state_dict` (a resumed checkpoint).

        Parameters
        ----------
        state : dict
            As :meth:`state_dict` returns it; anything else raises ValueError.

        Examples
        --------
        >>> norms = NormHistory()
        >>> norms.load_state_dict({"grad_norms": {"0.weight": [1.5]}, "weight_norms": {"0.weight": [2.0]},
        ...                        "steps": [0], "count": 1})
        >>> norms.steps, norms.grad_norms
        ([0], {'0.weight': [1.5]})
        """

        def series(d):
            return isinstance(d, dict) and all(
                isinstance(k, str) and isinstance(v, list) and len(v) == len(state["steps"])
                and all(isinstance(x, (int, float)) for x in v) for k, v in d.items())

        if not (isinstance(state, dict) and isinstance(state.get("steps"), list)
                and all(is_int(s) and s >= 0 for s in state["steps"]) and is_int(state.get("count"))
                and series(state.get("grad_norms")) and series(state.get("weight_norms"))):
            raise ValueError("NormHistory.load_state_dict: expected the dict of NormHistory.state_dict(). "
                             f"Received: {state!r:.200}")
        self.steps = [int(s) for s in state["steps"]]
        self.grad_norms = {k: [float(x) for x in v] for k, v in state["grad_norms"].items()}
        self.weight_norms = {k: [float(x) for x in v] for k, v in state["weight_norms"].items()}
        self._count = int(state["count"])
