"""The training loop: :class:`Trainer` (fit, evaluate, predict, checkpoints) and the :class:`History` it returns.

``mdl.Trainer`` and ``mdl.History`` are these. The pieces: :mod:`~minidl.train.trainer` (the loop,
evaluate, predict, checkpoints), :mod:`~minidl.train.fit_checks`, :mod:`~minidl.train.fit_probe` and
:mod:`~minidl.train.fit_state` (fit's argument checks, its check of the data against the model, its
per-batch state), :mod:`~minidl.train.checkpoint` (the checkpoint format) and :mod:`~minidl.train.history`.
"""

from .history import History
from .trainer import Trainer

__all__ = ["Trainer", "History"]
