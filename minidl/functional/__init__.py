"""Pure numpy kernels: no classes, no state, no randomness.

Backward kernels are told the shape of the gradient they produce, like
:func:`torch.nn.grad.conv2d_input` and :func:`torch.nn.grad.conv2d_weight`.

Array arguments must be numpy arrays: a list raises a TypeError that says how
to convert it (``np.asarray(x, dtype=np.float32)``), as :func:`torch.nn.functional`
refuses lists. Shapes (``input_size``, ``weight_size``) and class labels
(``targets``) may be any sequence.

The math is here, one module per op with its forward and backward side by side
(``conv``, ``conv_transpose``, ``pool``, ``avgpool``,
``signal1d`` (the 1-D ops: the 2-D ones with H = 1), ``adaptive``, ``dense``, ``activation``, ``gelu``, ``silu``,
``activation_extra`` (ELU, Softplus, Hardswish, Mish, PReLU), ``dropout``,
``batchnorm``, ``layernorm``, ``groupnorm``, ``loss``, ``mse``, ``regression_loss``, ``bce``,
``kl_div``, ``nll``, ``upsample``), next to ``geometry`` (output sizes, padding) and the
argument checks ``conv_args`` and ``loss_args``; ``conv_reference`` is the convolution once more
as plain loops, the lesson in its plainest form and the tests' oracle (it imports only numpy).
The speed machinery the kernels call --
tiling under a byte budget, im2col, the depthwise kernels, BLAS threads and batch
splitting -- is behind a wall in ``minidl.functional._engine``: nothing there is math a
learner needs, and nothing there imports the math.
"""

from .activation import (
    leaky_relu,
    leaky_relu_backward,
    relu,
    relu_backward,
    sigmoid,
    sigmoid_backward,
    softmax_backward,
    tanh,
    tanh_backward,
)
from .activation_extra import (
    elu,
    elu_backward,
    hardswish,
    hardswish_backward,
    mish,
    mish_backward,
    prelu,
    prelu_backward,
    softplus,
    softplus_backward,
)
from .adaptive import (
    adaptive_avg_pool2d,
    adaptive_avg_pool2d_backward,
    adaptive_max_pool2d,
    adaptive_max_pool2d_backward,
)
from .avgpool import avg_pool2d, avg_pool2d_backward, global_avg_pool2d, global_avg_pool2d_backward
from .batchnorm import batch_norm, batch_norm_backward
from .bce import (
    binary_cross_entropy,
    binary_cross_entropy_backward,
    binary_cross_entropy_with_logits,
    binary_cross_entropy_with_logits_backward,
)
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
from .conv_transpose import (
    conv_transpose2d,
    conv_transpose2d_backward,
    conv_transpose2d_input,
    conv_transpose2d_weight,
)
from .dense import flatten, linear, linear_bias, linear_input, linear_weight
from .dropout import dropout, dropout_backward
from .gelu import gelu, gelu_backward
from .groupnorm import group_norm, group_norm_backward, instance_norm, instance_norm_backward
from .kl_div import kl_div, kl_div_backward
from .layernorm import layer_norm, layer_norm_backward
from .loss import cross_entropy, cross_entropy_backward, log_softmax, log_softmax_backward, softmax
from .mse import mse_loss, mse_loss_backward
from .nll import nll_loss, nll_loss_backward
from .pool import max_pool2d, max_pool2d_backward
from .regression_loss import (
    huber_loss,
    huber_loss_backward,
    l1_loss,
    l1_loss_backward,
    smooth_l1_loss,
    smooth_l1_loss_backward,
)
from .signal1d import (
    avg_pool1d,
    avg_pool1d_backward,
    conv1d,
    conv1d_backward,
    conv1d_input,
    conv1d_weight,
    max_pool1d,
    max_pool1d_backward,
)
from .silu import silu, silu_backward
from .upsample import (
    upsample_bilinear2d,
    upsample_bilinear2d_backward,
    upsample_nearest2d,
    upsample_nearest2d_backward,
)

__all__ = [
    "avg_pool2d",
    "avg_pool2d_backward",
    "global_avg_pool2d",
    "global_avg_pool2d_backward",
    "batch_norm",
    "binary_cross_entropy",
    "binary_cross_entropy_backward",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_backward",
    "batch_norm_backward",
    "MAX_CACHED_COLUMN_BYTES",
    "MAX_COLUMN_BYTES",
    "conv2d",
    "conv2d_backward",
    "conv2d_bias",
    "conv2d_input",
    "conv2d_output_size",
    "conv2d_weight",
    "conv_transpose2d",
    "conv_transpose2d_backward",
    "conv_transpose2d_input",
    "conv_transpose2d_weight",
    "cross_entropy",
    "cross_entropy_backward",
    "dropout",
    "dropout_backward",
    "elu",
    "elu_backward",
    "flatten",
    "gelu",
    "gelu_backward",
    "group_norm",
    "group_norm_backward",
    "hardswish",
    "hardswish_backward",
    "instance_norm",
    "instance_norm_backward",
    "layer_norm",
    "layer_norm_backward",
    "leaky_relu",
    "leaky_relu_backward",
    "huber_loss",
    "huber_loss_backward",
    "kl_div",
    "kl_div_backward",
    "l1_loss",
    "l1_loss_backward",
    "linear",
    "linear_bias",
    "linear_input",
    "linear_weight",
    "log_softmax",
    "log_softmax_backward",
    "max_pool2d",
    "mish",
    "mish_backward",
    "nll_loss",
    "nll_loss_backward",
    "prelu",
    "prelu_backward",
    "silu",
    "smooth_l1_loss",
    "smooth_l1_loss_backward",
    "silu_backward",
    "mse_loss",
    "mse_loss_backward",
    "max_pool2d_backward",
    "relu",
    "relu_backward",
    "resolve_padding",
    "sigmoid",
    "sigmoid_backward",
    "softmax_backward",
    "tanh",
    "tanh_backward",
    "softmax",
    "softplus",
    "softplus_backward",
    "conv1d",
    "conv1d_backward",
    "conv1d_input",
    "conv1d_weight",
    "max_pool1d",
    "max_pool1d_backward",
    "avg_pool1d",
    "avg_pool1d_backward",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d",
    "adaptive_max_pool2d_backward",
    "upsample_bilinear2d",
    "upsample_bilinear2d_backward",
    "upsample_nearest2d",
    "upsample_nearest2d_backward",
]
