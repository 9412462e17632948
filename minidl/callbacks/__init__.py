"""Training callbacks with event-named hooks, as in Keras.

The Trainer calls each hook of every callback passed to ``fit``: :class:`Callback` is the base
class; :class:`EarlyStopping`, :class:`ModelCheckpoint`, :class:`LearningRateScheduler` and
:class:`NormHistory` are the built-in ones.
"""

from .base import Callback
from .monitors import EarlyStopping, ModelCheckpoint
from .norms import NormHistory
from .schedule import LearningRateScheduler

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler", "NormHistory"]
