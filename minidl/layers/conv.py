"""Conv2D layer."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from .._validation import (
    check_array,
    check_ndim,
    check_same_dtype,
    nonnegative_int,
    positive_int,
    positive_pair,
)
from ..functional.geometry import check_padding_arg
from ..parameter import Parameter
from ._init import as_generator, float_dtype, kaiming_uniform
from .base import Layer

__all__ = ["Conv2D"]


class Conv2D(Layer):
    r"""2-D convolution (cross-correlation) layer, as :class:`torch.nn.Conv2d` (groups=1).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (kh, kw)
    stride, dilation : int or (h, w), each >= 1
    padding : int, (ph, pw), 'valid' or 'same'
        ``'same'`` works for every stride (Keras rule: ``H_out = ceil(H / stride)``,
        the odd extra row/column at the bottom/right).
    bias : bool
    dtype : floating dtype of the parameters, float32 by default
    rng : numpy.random.Generator, optional
        Source of the Kaiming-uniform initialisation (PyTorch's default:
        ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weight and bias).

    Attributes
    ----------
    weight : Parameter, shape (out_channels, in_channels, kh, kw)
    bias : Parameter, shape (out_channels,), or None

    Shape
    -----
    - Input: (N, in_channels, H, W), dtype of the parameters
    - Output: (N, out_channels, H_out, W_out) with
      ``H_out = floor((H + p_top + p_bottom - dilation * (kh - 1) - 1) / stride) + 1``

    Notes
    -----
    Forward: :func:`minidl.functional.conv2d`. Backward: dL/dX by
    :func:`~minidl.functional.conv2d_input`, dL/dW by
    :func:`~minidl.functional.conv2d_weight`, dL/db by
    :func:`~minidl.functional.conv2d_bias`; gradients are added into ``.grad``
    and summed over the batch. Derivation: ``docs/conv_backprop.md``.

    Examples
    --------
    >>> conv = Conv2D(1, 4, 3, padding='same', rng=np.random.default_rng(0))
    >>> conv(np.zeros((2, 1, 8, 8), np.float32)).shape
    (2, 4, 8, 8)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, bias=True, dtype=np.float32, rng=None):
        super().__init__()
        where = "Conv2D"
        self.in_channels = positive_int(in_channels, "in_channels", where)
        self.out_channels = positive_int(out_channels, "out_channels", where)
        self.kernel_size = positive_pair(kernel_size, "kernel_size", where)
        self.stride = positive_pair(stride, "stride", where)
        self.dilation = positive_pair(dilation, "dilation", where)
        self.padding = check_padding_arg(padding, where)
        dtype = float_dtype(dtype, where)
        rng = as_generator(rng, where)
        kh, kw = self.kernel_size
        fan_in = self.in_channels * kh * kw
        self.weight = Parameter(
            kaiming_uniform(rng, (self.out_channels, self.in_channels, kh, kw), fan_in, dtype))
        self.bias = Parameter(kaiming_uniform(rng, (self.out_channels,), fan_in, dtype)) if bias else None
        self._x = None
        self._columns = None  # the forward im2col, reused by backward for dL/dW

    def _kw(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation)

    def forward(self, x):
        where = repr(self)
        check_array(x, "input", where)
        check_ndim(x, 4, "input", where, "(N, C, H, W)")
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{where}: expected input with {self.in_channels} channels, got "
                f"{x.shape[1]} channels in input of shape {x.shape} (layout is NCHW)."
            )
        check_same_dtype(x, self.weight.data, "input", "weight", where)
        bias = None if self.bias is None else self.bias.data
        if self.training:  # the previous call's cache is replaced once the new one exists:
            # freeing it first can make malloc return the memory to the OS and fault it back in
            out, self._columns = F.conv2d(x, self.weight.data, bias, **self._kw(), return_columns=True)
        else:  # eval mode: no backward cache (nor columns); drop a training call's cache first
            self._x = self._columns = None
            out = F.conv2d(x, self.weight.data, bias, **self._kw())
        self._x = self._keep(x)
        self._out_shape = out.shape
        return out

    def backward(self, grad_output):
        return self._backward(grad_output, input_grad=True)

    def backward_params(self, grad_output) -> None:
        if type(self).backward is not Conv2D.backward:  # a subclass changed backward: honour it
            return super().backward_params(grad_output)
        self._backward(grad_output, input_grad=False)

    def _backward(self, grad_output, input_grad):
        x = self._require_cache(self._x)
        grad_output = self._check_grad(grad_output, self._out_shape, x.dtype)
        dx, dw, db = F.conv2d_backward(x, self.weight.data, grad_output, **self._kw(),
                                       bias=self.bias is not None, input_grad=input_grad,
                                       columns=self._columns)
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx

    def get_config(self):
        return dict(in_channels=self.in_channels, out_channels=self.out_channels,
                    kernel_size=list(self.kernel_size), stride=list(self.stride),
                    padding=self.padding if isinstance(self.padding, (str, int)) else
                    [list(p) if isinstance(p, tuple) else p for p in self.padding],
                    dilation=list(self.dilation), bias=self.bias is not None,
                    dtype=str(self.weight.data.dtype))

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        if self.stride != (1, 1):
            s += f", stride={self.stride}"
        if self.padding not in (0, "valid"):
            s += f", padding={self.padding!r}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.bias is None:
            s += ", bias=False"
        if self.weight.data.dtype != np.float32:
            s += f", dtype={self.weight.data.dtype}"
        return s
