"""The History of a training run: per-epoch metrics, as Keras's."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["History"]


class History(Mapping):
    """Per-epoch metrics: ``history["loss"]`` is a list with one value per epoch.

    A read-only mapping; ``.history`` is the underlying dict (as in Keras) and
    ``.epoch`` the list of epoch indices run. :meth:`minidl.Trainer.fit` returns it.

    Examples
    --------
    >>> import numpy as np, minidl as mdl
    >>> model = mdl.Sequential(mdl.layers.Dense(4, 2, rng=0))
    >>> trainer = mdl.Trainer(model, mdl.losses.SoftmaxCrossEntropy(),
    ...                       mdl.optim.SGD(model.parameters(), lr=0.1))
    >>> history = trainer.fit(np.ones((4, 4), np.float32), np.array([0, 1, 0, 1]), epochs=3,
    ...                       progress=False)
    >>> list(history), history.epoch, len(history["loss"])
    (['loss', 'accuracy'], [0, 1, 2], 3)
    """

    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def _append(self, epoch, logs):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))

    def _update_last(self, logs):
        """Make the last epoch's entries those of ``logs`` (which callbacks may have changed)."""
        n = len(self.epoch)
        for key, value in logs.items():
            values = self.history.setdefault(key, [])
            if len(values) == n:
                values[-1] = float(value)
            else:
                values.append(float(value))

    def __getitem__(self, key):
        return self.history[key]

    def __iter__(self):
        return iter(self.history)

    def __len__(self):
        return len(self.history)

    def __repr__(self):
        return f"History({self.history!r})"
