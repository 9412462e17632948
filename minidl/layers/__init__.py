"""Stateful layers: validate the input, call a kernel, keep what backward needs.

Each layer lives in the module of its kind and is exported here from that module's
``__all__``, so a new layer is added in one place: its own module.
"""

from .._names import missing
from .activation import *  # noqa: F403 - each module's __all__ is its public layers
from .activation import __all__ as _activation
from .activation_extra import *  # noqa: F403
from .activation_extra import __all__ as _activation_extra
from .adaptive_pool import *  # noqa: F403
from .adaptive_pool import __all__ as _adaptive_pool
from .base import InputSpec, Layer, Unsupported
from .batchnorm import *  # noqa: F403
from .batchnorm import __all__ as _batchnorm
from .conv import *  # noqa: F403
from .conv import __all__ as _conv
from .conv_transpose import *  # noqa: F403
from .conv_transpose import __all__ as _conv_transpose
from .dense import *  # noqa: F403
from .dense import __all__ as _dense
from .dropout import *  # noqa: F403
from .dropout import __all__ as _dropout
from .log_softmax import *  # noqa: F403
from .log_softmax import __all__ as _log_softmax
from .merge import *  # noqa: F403
from .merge import __all__ as _merge
from .normalization import *  # noqa: F403
from .normalization import __all__ as _normalization
from .pool import *  # noqa: F403
from .pool import __all__ as _pool
from .signal1d import *  # noqa: F403
from .signal1d import __all__ as _signal1d
from .upsample import *  # noqa: F403
from .upsample import __all__ as _upsample

__all__ = [
    "Layer", *_conv, *_conv_transpose, *_signal1d, *_activation, *_activation_extra, *_log_softmax, *_pool,
    *_adaptive_pool, *_dense, *_merge, *_batchnorm, *_normalization, *_dropout, *_upsample, "Unsupported", "InputSpec",
]


def __getattr__(name):  # torch's Conv2d, Linear, BatchNorm2d...: say minidl's name
    raise missing(__name__, name, __all__)
