"""MaxPool2D layer."""

from __future__ import annotations

import numpy as np  # noqa: F401 - the namespace of the docstring examples

from .. import functional as F
from .._validation import check_array, check_float_dtype, check_ndim, positive_pair
from ..functional.geometry import check_padding_arg
from ..functional.pool import check_pool_padding
from .base import Layer

__all__ = ["MaxPool2D"]


class MaxPool2D(Layer):
    r"""2-D max pooling, as :class:`torch.nn.MaxPool2d`.

    Parameters
    ----------
    kernel_size : int or (kh, kw)
    stride : int or (sh, sw), optional; defaults to ``kernel_size``
    padding : int or (ph, pw) (or 'valid'/'same'), at most half the kernel;
        pads with ``-inf``, so padding never wins a window.

    Shape
    -----
    - Input: (N, C, H, W)
    - Output: (N, C, H_out, W_out), ``H_out = floor((H + 2 * ph - kh) / sh) + 1``

    Notes
    -----
    Tie rule: the first maximum of a window in row-major order receives the
    gradient (PyTorch's CPU rule); see :func:`minidl.functional.max_pool2d`.

    Examples
    --------
    >>> MaxPool2D(2)(np.zeros((1, 3, 8, 8), np.float32)).shape
    (1, 3, 4, 4)
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        where = "MaxPool2D"
        self.kernel_size = positive_pair(kernel_size, "kernel_size", where)
        self.stride = self.kernel_size if stride is None else positive_pair(stride, "stride", where)
        self.padding = check_padding_arg(padding, where)
        if not isinstance(self.padding, str):  # 'same'/'valid' are resolved per input in forward
            pads = F.resolve_padding(self.padding, (1, 1), self.kernel_size, where=where)
            check_pool_padding(pads, self.kernel_size, padding, where)

    def forward(self, x):
        where = repr(self)
        check_array(x, "input", where)
        check_ndim(x, 4, "input", where, "(N, C, H, W)")
        check_float_dtype(x, "input", where)
        if not self.training:  # eval mode: no argmax, no backward cache; drop a training call's
            self.save_for_backward()
            return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)
        out, idx = F.max_pool2d(x, self.kernel_size, self.stride, self.padding, return_indices=True)
        self.save_for_backward(x.shape, x.dtype, idx)
        return out

    def backward(self, grad_output):
        shape, dtype, idx = self.saved_values
        grad_output = self.check_grad_output(grad_output, idx.shape, dtype)
        return F.max_pool2d_backward(shape, grad_output, idx,
                                     self.kernel_size, self.stride, self.padding)

    def get_config(self):
        return dict(kernel_size=list(self.kernel_size), stride=list(self.stride),
                    padding=self.padding if isinstance(self.padding, (str, int)) else list(self.padding))

    def extra_repr(self):
        s = f"kernel_size={self.kernel_size}"
        if self.stride != self.kernel_size:
            s += f", stride={self.stride}"
        if self.padding not in (0, "valid"):
            s += f", padding={self.padding!r}"
        return s
