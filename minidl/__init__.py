"""minidl: a small deep-learning framework on numpy with hand-derived backprop.

>>> import minidl as mdl
>>> from minidl import layers, losses
"""

from . import functional, layers, losses
from .gradcheck import GradcheckReport, gradcheck
from .parameter import Parameter

__version__ = "0.1.0"

__all__ = ["Parameter", "functional", "layers", "losses", "gradcheck", "GradcheckReport",
           "__version__"]
