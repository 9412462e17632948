"""Adaptive pooling layers: AdaptiveAvgPool2D, AdaptiveMaxPool2D, GlobalMaxPool2D.

torch's ``nn.AdaptiveAvgPool2d(1)`` (an int 1) converts to :class:`GlobalAvgPool2D` and
``nn.AdaptiveMaxPool2d(1)`` to :class:`GlobalMaxPool2D`, as they always have; every other output
size (``(1, 1)`` included) to the adaptive layers, which keep their output size as a pair.
"""

from __future__ import annotations

import numpy as np

from ..functional import adaptive as FA
from ..testing import tie_free
from .base import Layer, Unsupported
from .pool import GlobalAvgPool2D
from .registry import register_layer

__all__ = ["AdaptiveAvgPool2D", "AdaptiveMaxPool2D", "GlobalMaxPool2D"]


class _Adaptive(Layer):
    """What the adaptive pools share: the output size, the ONNX export, the torch dispatch."""

    _global = None  # the Global* layer an int 1 of torch's converts to
    _ops = ("", "", "")  # ONNX: the global op, the pool op, the reduction

    def _onnx_bins(self, g, x, input_shape):
        """Separable: ``Slice`` + the reduction per bin of an axis, ``Concat`` of the bins (an
        axis whose output is its input's size is left as it is)."""
        for axis, out in ((3, self._out(input_shape)[1]), (2, self._out(input_shape)[0])):
            size = input_shape[axis]
            if out == size:
                continue
            parts = []
            for a, b in FA.adaptive_bins(size, out):
                part = g.node("Slice", [x, *(g.const("slice", [v], np.int64) for v in (a, b, axis))])
                parts.append(g.node(self._ops[2], [part], axes=[axis], keepdims=1))
            x = g.node("Concat", parts, axis=axis)
        return x

    def _out(self, input_shape):
        return FA.adaptive_output_size(self.output_size, self, input_shape[2:])

    def _to_onnx(self, g, inputs, input_shape):
        (h, w), (oh, ow) = input_shape[2:], self._out(input_shape)
        if (oh, ow) == (1, 1):
            return g.node(self._ops[0], inputs)
        if h % oh == 0 and w % ow == 0:  # equal bins that tile the plane: a plain pool
            k = [h // oh, w // ow]
            return g.node(self._ops[1], inputs, kernel_shape=k, strides=k)
        return self._onnx_bins(g, inputs[0], input_shape)

    def to_torch(self, t):
        return t.module(self.torch_modules[0])(self.output_size)

    @classmethod
    def from_torch(cls, m, t):
        if getattr(m, "return_indices", False):
            raise Unsupported("with return_indices=True")
        if type(m.output_size) is int and m.output_size == 1:
            return cls._global()
        return cls(m.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


@register_layer
class AdaptiveAvgPool2D(_Adaptive):
    r"""Average pooling to a given output size, as :class:`torch.nn.AdaptiveAvgPool2d`.

    Parameters
    ----------
    output_size : int or (out_h, out_w)
        An entry None keeps the input's size; kept as a pair.

    Shape
    -----
    - Input: (N, C, H, W)
    - Output: (N, C, out_h, out_w)

    Notes
    -----
    Output row ``i`` averages the input rows ``[floor(i H / out_h), ceil((i + 1) H / out_h))``
    (columns alike): torch's bins, which may overlap and differ in size. Backward gives every
    element of a bin the bin's ``G / size``, summed over the bins holding it. Only the input's
    shape is kept. See :func:`minidl.functional.adaptive.adaptive_avg_pool2d`.

    Examples
    --------
    >>> AdaptiveAvgPool2D((2, None))(np.ones((1, 3, 5, 4), np.float32)).shape
    (1, 3, 2, 4)
    """

    torch_modules = ("AdaptiveAvgPool2d",)
    _global = GlobalAvgPool2D
    _ops = ("GlobalAveragePool", "AveragePool", "ReduceMean")

    def to_onnx(self, g, inputs, input_shape):  # 1x1: the global op; equal bins: a pool; else Slice + ReduceMean
        return self._to_onnx(g, inputs, input_shape)

    def __init__(self, output_size):
        super().__init__()
        self.output_size = FA.adaptive_output_size(output_size, "AdaptiveAvgPool2D")

    def forward(self, x):
        out = FA.adaptive_avg_pool2d(x, self.output_size, where=self)
        self.save_for_backward(in_shape=x.shape, out_shape=out.shape, dtype=out.dtype)
        return out

    def backward(self, grad_output, *, input_grad=True):
        s = self.saved_values
        grad_output = self.check_grad_output(grad_output, s.out_shape, s.dtype)
        return FA.adaptive_avg_pool2d_backward(s.in_shape, grad_output, where=self)

    @classmethod
    def examples(cls, rng):
        for out, shape in [((3, 2), (2, 2, 7, 5)), (4, (1, 2, 5, 7)), ((None, 3), (2, 1, 4, 6)), ((2, 2), (1, 2, 6, 4)),
                           ((1, 1), (2, 2, 3, 5)), ((6, 7), (1, 1, 4, 5))]:
            yield cls(out), (rng.standard_normal(shape),)


@register_layer
class AdaptiveMaxPool2D(_Adaptive):
    r"""Max pooling to a given output size, as :class:`torch.nn.AdaptiveMaxPool2d`.

    Parameters
    ----------
    output_size : int or (out_h, out_w)
        An entry None keeps the input's size; kept as a pair.

    Shape
    -----
    - Input: (N, C, H, W)
    - Output: (N, C, out_h, out_w)

    Notes
    -----
    torch's bins (see :class:`AdaptiveAvgPool2D`); each bin's gradient goes to its first maximum
    in row-major order (torch's tie rule), summed where bins share it. Keeps the argmax.

    Examples
    --------
    >>> AdaptiveMaxPool2D(2)(np.ones((1, 3, 5, 4), np.float32)).shape
    (1, 3, 2, 2)
    """

    torch_modules = ("AdaptiveMaxPool2d",)
    _ops = ("GlobalMaxPool", "MaxPool", "ReduceMax")

    def to_onnx(self, g, inputs, input_shape):  # 1x1: the global op; equal bins: a pool; else Slice + ReduceMax
        return self._to_onnx(g, inputs, input_shape)

    def __init__(self, output_size):
        super().__init__()
        self.output_size = FA.adaptive_output_size(output_size, "AdaptiveMaxPool2D")

    def forward(self, x):
        if not self.keeps_caches:
            return FA.adaptive_max_pool2d(x, self.output_size, where=self)
        out, idx = FA.adaptive_max_pool2d(x, self.output_size, return_indices=True, where=self)
        self.save_for_backward(in_shape=x.shape, dtype=x.dtype, indices=idx)
        return out

    def backward(self, grad_output, *, input_grad=True):
        s = self.saved_values
        grad_output = self.check_grad_output(grad_output, s.indices.shape, s.dtype)
        return FA.adaptive_max_pool2d_backward(s.in_shape, grad_output, s.indices, where=self)

    def kinks(self, x, tol=1e-4):
        # the elements of bins whose two largest values are within tol (one loop over the bins)
        near = np.zeros(x.shape, bool)
        (h, w), (oh, ow) = x.shape[2:], FA.adaptive_output_size(self.output_size, self, x.shape[2:])
        for a, b in FA.adaptive_bins(h, oh):
            for c, d in FA.adaptive_bins(w, ow):
                part = x[:, :, a:b, c:d]
                close = part >= part.max((2, 3), keepdims=True) - tol
                near[:, :, a:b, c:d] |= close & (close.sum((2, 3), keepdims=True) > 1)
        return (near,)

    @classmethod
    def examples(cls, rng):
        for out, shape in [((3, 2), (2, 2, 7, 5)), (4, (1, 2, 5, 7)), ((None, 3), (2, 1, 4, 6)), ((2, 2), (1, 2, 6, 4)),
                           ((1, 1), (2, 2, 3, 5)), ((6, 7), (1, 1, 4, 5))]:
            yield cls(out), (tie_free(shape, rng),)


@register_layer
class GlobalMaxPool2D(AdaptiveMaxPool2D):
    r"""The maximum of each channel over its H x W plane, as :class:`torch.nn.AdaptiveMaxPool2d` (1).

    The Keras name; the output is (N, C, 1, 1) as :class:`GlobalAvgPool2D`'s (follow it with
    :class:`~minidl.layers.Flatten` for (N, C) features).

    Shape
    -----
    - Input: (N, C, H, W)
    - Output: (N, C, 1, 1)

    Notes
    -----
    :math:`Y[n, c] = \max_{h, w} X[n, c, h, w]`; the gradient goes to the first maximum in
    row-major order (torch's rule). :class:`AdaptiveMaxPool2D` with ``output_size=1``.

    Examples
    --------
    >>> GlobalMaxPool2D()(np.arange(8.0).reshape(1, 2, 2, 2))[:, :, 0, 0]
    array([[3., 7.]])
    """

    onnx_imports = ("GlobalMaxPool",)  # read back by the default recipe (no attributes)

    def __init__(self):
        super().__init__(1)

    def to_torch(self, t):
        return t.nn.AdaptiveMaxPool2d(1)

    def extra_repr(self):
        return ""

    @classmethod
    def examples(cls, rng):
        yield cls(), (tie_free((2, 3, 5, 4), rng),)


AdaptiveMaxPool2D._global = GlobalMaxPool2D
