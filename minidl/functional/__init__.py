"""Pure numpy kernels: no classes, no state, no randomness.

Backward kernels are told the shape of the gradient they produce, like
:func:`torch.nn.grad.conv2d_input` and :func:`torch.nn.grad.conv2d_weight`.

Array arguments must be numpy arrays: a list raises a TypeError that says how
to convert it (``np.asarray(x, dtype=np.float32)``), as :func:`torch.nn.functional`
refuses lists. Shapes (``input_size``, ``weight_size``) and class labels
(``targets``) may be any sequence.
"""

from .activation import relu, relu_backward
from .batchnorm import batch_norm, batch_norm_backward
from .conv import (
    MAX_CACHED_COLUMN_BYTES,
    MAX_COLUMN_BYTES,
    conv2d,
    conv2d_backward,
    conv2d_bias,
    conv2d_input,
    conv2d_output_size,
    conv2d_weight,
    resolve_padding,
)
from .dense import flatten, linear, linear_bias, linear_input, linear_weight
from .dropout import dropout, dropout_backward
from .loss import cross_entropy, cross_entropy_backward, log_softmax, softmax
from .pool import max_pool2d, max_pool2d_backward

__all__ = [
    "batch_norm",
    "batch_norm_backward",
    "MAX_CACHED_COLUMN_BYTES",
    "MAX_COLUMN_BYTES",
    "conv2d",
    "conv2d_backward",
    "conv2d_bias",
    "conv2d_input",
    "conv2d_output_size",
    "conv2d_weight",
    "cross_entropy",
    "cross_entropy_backward",
    "dropout",
    "dropout_backward",
    "flatten",
    "linear",
    "linear_bias",
    "linear_input",
    "linear_weight",
    "log_softmax",
    "max_pool2d",
    "max_pool2d_backward",
    "relu",
    "relu_backward",
    "resolve_padding",
    "softmax",
]
