"""Losses: layers whose forward returns a Python float (an array with ``reduction='none'``).

:class:`Loss` is the base class (``minidl/losses/base.py``, with :class:`SoftmaxCrossEntropy`
and :class:`MSE`); every loss registers itself, so files and ``minidl gradcheck`` find it by name.
"""

from .._names import missing
from .base import MSE, Loss, SoftmaxCrossEntropy
from .bce import BCELoss, BCEWithLogitsLoss
from .elementwise import HuberLoss, KLDivLoss, L1Loss, SmoothL1Loss
from .nll import NLLLoss

__all__ = ["Loss", "SoftmaxCrossEntropy", "MSE", "L1Loss", "SmoothL1Loss", "HuberLoss", "BCELoss", "BCEWithLogitsLoss",
           "KLDivLoss", "NLLLoss"]


def __getattr__(name):  # torch's CrossEntropyLoss, MSELoss...: say minidl's name
    raise missing(__name__, name, __all__)
