"""Pooling layers: MaxPool2D, AvgPool2D, GlobalAvgPool2D."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..functional.avgpool import (
    avg_pool2d,
    avg_pool2d_backward,
    check_avg_padding,
    check_divisor_override,
    global_avg_pool2d,
    global_avg_pool2d_backward,
    window_divisors,
)
from ..functional.geometry import check_padding_arg
from ..functional.pool import check_pool_padding, pool_geometry
from ..testing import tie_free
from ..validation import check_bool, positive_pair
from .base import Layer, Unsupported, onnx_padding, onnx_pads, torch_padding
from .registry import register_layer

__all__ = ["MaxPool2D", "AvgPool2D", "GlobalAvgPool2D"]


@register_layer
class MaxPool2D(Layer):
    r"""2-D max pooling, as :class:`torch.nn.MaxPool2d`.

    Parameters
    ----------
    kernel_size : int or (kh, kw)
    stride : int or (sh, sw), optional; defaults to ``kernel_size``
    padding : int or (ph, pw) (or 'valid'/'same'), at most half the kernel;
        pads with ``-inf``, so padding never wins a window.
    dilation : int or (dh, dw), default 1
        Spacing between a window's elements.
    ceil_mode : bool, default False
        Round the output size up (windows may hang over the bottom/right edge), PyTorch's rule.

    Shape
    -----
    - Input: (N, C, H, W)
    - Output: (N, C, H_out, W_out), ``H_out = floor((H + 2 * ph - dh * (kh - 1) - 1) / sh) + 1``
      (ceil with ``ceil_mode``, less one if the last window would start in the right padding)

    Notes
    -----
    Tie rule: the first maximum of a window in row-major order receives the
    gradient (PyTorch's CPU rule); see :func:`minidl.functional.max_pool2d`.

    Examples
    --------
    >>> MaxPool2D(2)(np.zeros((1, 3, 8, 8), np.float32)).shape
    (1, 3, 4, 4)
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__()
        where = "MaxPool2D"
        self.kernel_size = positive_pair(kernel_size, "kernel_size", where)
        self.stride = self.kernel_size if stride is None else positive_pair(stride, "stride", where)
        self.dilation = positive_pair(dilation, "dilation", where)
        self.ceil_mode = check_bool(ceil_mode, "ceil_mode", where)
        self.padding = check_padding_arg(padding, where)
        if not isinstance(self.padding, str):  # 'same'/'valid' are resolved per input in forward
            pads = F.resolve_padding(self.padding, (1, 1), self.kernel_size, where=where)
            check_pool_padding(pads, self.kernel_size, padding, where)

    def forward(self, x):
        # the kernel checks x (array, 4-D, floating) and names this layer in its errors
        if not self.keeps_caches:  # eval mode: no argmax to keep
            return F.max_pool2d(x, *self._args(), where=self)
        out, idx = F.max_pool2d(x, *self._args(), return_indices=True, where=self)
        self.save_for_backward(in_shape=x.shape, dtype=x.dtype, indices=idx)
        return out

    def backward(self, grad_output, *, input_grad=True):
        s = self.saved_values
        grad_output = self.check_grad_output(grad_output, s.indices.shape, s.dtype)
        return F.max_pool2d_backward(s.in_shape, grad_output, s.indices, *self._args(), where=self)

    def _args(self):
        return self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode

    def kinks(self, x, tol=1e-4):
        # the elements of windows whose largest values tie within tol, found by peeling off each
        # window's maximum and comparing the next one with it (ReLU's zeros tie often)
        def at(values, idx):
            return F.max_pool2d_backward(x.shape, values, idx, *self._args()) != 0
        rest, near = np.array(x, dtype=np.float64), np.zeros(x.shape, bool)
        top, idx = F.max_pool2d(rest, *self._args(), return_indices=True)
        for _ in range(self.kernel_size[0] * self.kernel_size[1] - 1):
            rest[at(np.ones_like(top), idx)] = -np.inf
            nxt, idx_next = F.max_pool2d(rest, *self._args(), return_indices=True)
            tied = (top - nxt <= tol).astype(np.float64)
            if not tied.any():
                break
            near |= at(tied, idx) | at(tied, idx_next)
            idx = idx_next
        return (near,)

    # ------------------------------------------------------------ interop recipes
    torch_modules, onnx_imports = ("MaxPool2d", "PaddedMaxPool2d"), ("MaxPool",)

    def to_onnx(self, g, inputs, input_shape):
        # explicit pads, ceil_mode's extra bottom/right rows included (PyTorch's rule, which drops a
        # window starting in the right padding); MaxPool's padding never wins a window
        geo = pool_geometry(input_shape[2:], self.kernel_size, self.stride, self.padding, "MaxPool2D",
                            self.dilation, self.ceil_mode)
        x, pads, (kh, kw) = inputs[0], onnx_pads(geo.pads), self.kernel_size
        if max(pads[0], pads[2]) >= kh or max(pads[1], pads[3]) >= kw:
            # onnxruntime refuses a pad as large as the kernel (ceil_mode's extra with a dilation can be):
            # pad with -inf first, which never wins a window either, then pool without pads
            (pt, pb), (pl, pr) = geo.pads
            amounts = g.const("pads", [0, 0, pt, pl, 0, 0, pb, pr], np.int64)
            x, pads = g.node("Pad", [x, amounts, g.const("pad_value", -np.inf)]), [0, 0, 0, 0]
        return g.node("MaxPool", [x], kernel_shape=list(self.kernel_size), strides=list(self.stride),
                      dilations=list(self.dilation), pads=pads)

    def to_torch(self, t):
        if isinstance(self.padding, str) and self.padding.lower() == "same":
            return t.PaddedMaxPool2d(self.kernel_size, self.stride, self.dilation, self.ceil_mode, "same")
        return t.nn.MaxPool2d(self.kernel_size, self.stride, torch_padding(self.padding, self.kernel_size),
                              self.dilation, ceil_mode=self.ceil_mode)

    @classmethod
    def from_torch(cls, m, t):
        if hasattr(m, "minidl_padding"):
            return cls(m.kernel_size, m.stride, m.minidl_padding, m.dilation, m.minidl_ceil_mode)
        if m.return_indices:
            raise Unsupported("with return_indices=True")
        return cls(m.kernel_size, m.stride, m.padding, m.dilation, bool(m.ceil_mode))

    @classmethod
    def from_onnx_node(cls, node):
        """The MaxPool2D computing an ONNX ``MaxPool`` node on 2-D data (its indices output unused).

        Parameters
        ----------
        node : minidl.layers.base.OnnxNode

        Returns
        -------
        MaxPool2D

        Raises
        ------
        Unsupported
            Other than 2-D data, asymmetric pads, a column-major ``storage_order``.
        """
        kernel, stride, dilation = _onnx_window(node)
        if node.attrs.get("storage_order", 0):
            raise Unsupported("with storage_order=1")
        padding = _symmetric(onnx_padding(node.attrs, node.input_shape, kernel, stride, dilation))
        return cls(kernel, stride, padding, dilation, bool(node.attrs.get("ceil_mode", 0)))

    def extra_repr(self):
        s = f"kernel_size={self.kernel_size}"
        if self.stride != self.kernel_size:
            s += f", stride={self.stride}"
        if self.padding not in (0, "valid"):
            s += f", padding={self.padding!r}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.ceil_mode:
            s += ", ceil_mode=True"
        return s

    @classmethod
    def examples(cls, rng):
        for k, s, p in [(2, None, 0), (3, 2, 1), (3, 1, 0), ((2, 3), (1, 2), 0)]:
            yield cls(k, s, p), (tie_free((2, 2, 7, 7), rng),)
        yield cls(2, stride=(1, 2), dilation=2), (tie_free((1, 2, 7, 6), rng),)
        yield cls(3, stride=2, padding=1, ceil_mode=True), (tie_free((2, 1, 7, 6), rng),)


@register_layer
class AvgPool2D(Layer):
    r"""2-D average pooling, as :class:`torch.nn.AvgPool2d`.

    Parameters
    ----------
    kernel_size : int or (kh, kw)
    stride : int or (sh, sw), optional; defaults to ``kernel_size``
    padding : int or (ph, pw), default 0
        Zero padding on both sides, at most half the kernel.
    ceil_mode : bool, default False
        Round the output size up, PyTorch's rule.
    count_include_pad : bool, default True
        Whether the zero padding counts in a window's divisor.
    divisor_override : int, optional
        Divide every window's sum by it instead (torch's; nonzero).

    Shape
    -----
    - Input: (N, C, H, W)
    - Output: (N, C, H_out, W_out), ``H_out = floor((H + 2 * ph - kh) / sh) + 1`` (ceil with ``ceil_mode``)

    Notes
    -----
    Each output is its window's sum over PyTorch's divisor (the window's size, clipped to
    the padded input with ``count_include_pad``, to the input without); backward adds
    ``grad_output / divisor`` to every input element of the window. See
    :func:`minidl.functional.avg_pool2d`. Nothing is kept for backward but the input's shape.

    Examples
    --------
    >>> AvgPool2D(2)(np.ones((1, 3, 8, 8), np.float32)).shape
    (1, 3, 4, 4)
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        where = "AvgPool2D"
        self.kernel_size = positive_pair(kernel_size, "kernel_size", where)
        self.stride = self.kernel_size if stride is None else positive_pair(stride, "stride", where)
        self.padding = check_avg_padding(padding, where)
        check_pool_padding([(p, p) for p in self.padding], self.kernel_size, padding, where)
        self.ceil_mode = check_bool(ceil_mode, "ceil_mode", where)
        self.count_include_pad = check_bool(count_include_pad, "count_include_pad", where)
        self.divisor_override = check_divisor_override(divisor_override, where)

    def _args(self):
        return (self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                self.divisor_override)

    def forward(self, x):
        where = self  # formatted (repr) only in an error message
        out = avg_pool2d(x, *self._args(), where=where)
        self.save_for_backward(in_shape=x.shape, out_shape=out.shape, dtype=out.dtype)
        return out

    def backward(self, grad_output, *, input_grad=True):
        s = self.saved_values
        grad_output = self.check_grad_output(grad_output, s.out_shape, s.dtype)
        return avg_pool2d_backward(s.in_shape, grad_output, *self._args(), where=self)

    # ------------------------------------------------------------ interop recipes
    torch_modules = ("AvgPool2d",)
    torch_args = {"kernel_size": "kernel_size", "stride": "stride", "padding": "padding", "ceil_mode": "ceil_mode",
                  "count_include_pad": "count_include_pad", "divisor_override": "divisor_override"}

    def to_onnx(self, g, inputs, input_shape):
        out = self._onnx_average(g, inputs, input_shape)
        if self.divisor_override is None:
            return out
        # AveragePool divides by torch's divisor D; times D / divisor_override gives torch's override
        d = window_divisors(input_shape[2:], *self._args()[:5]) / self.divisor_override
        return g.node("Mul", [out, g.const("divisor", d[None, None], g.dtype)])

    def _onnx_average(self, g, inputs, input_shape):
        # PyTorch's divisor counts the zero padding (count_include_pad) but never ceil_mode's extra
        # rows: pad with zeros explicitly, then pool with the extra as uncounted padding
        ph, pw = self.padding
        geo = pool_geometry(input_shape[2:], self.kernel_size, self.stride, (ph, pw), "AvgPool2D", 1,
                            self.ceil_mode)
        (_, eh), (_, ew) = geo.pads
        eh, ew, x = eh - ph, ew - pw, inputs[0]
        if self.count_include_pad and (ph or pw):
            x = g.node("Pad", [x, g.const("pads", [0, 0, ph, pw, 0, 0, ph, pw], np.int64)])
            ph = pw = 0
        return g.node("AveragePool", [x], kernel_shape=list(self.kernel_size), strides=list(self.stride),
                      pads=[ph, pw, ph + eh, pw + ew], count_include_pad=0)

    onnx_imports = ("AveragePool",)

    @classmethod
    def from_onnx_node(cls, node):
        """The AvgPool2D computing an ONNX ``AveragePool`` node on 2-D data.

        Parameters
        ----------
        node : minidl.layers.base.OnnxNode

        Returns
        -------
        AvgPool2D

        Raises
        ------
        Unsupported
            Other than 2-D data, asymmetric pads, a dilation.
        """
        kernel, stride, dilation = _onnx_window(node)
        if dilation != (1, 1):
            raise Unsupported(f"with dilations={list(dilation)}")
        padding = onnx_padding(node.attrs, node.input_shape, kernel, stride)
        if padding == "same":
            padding = F.resolve_padding("same", node.input_shape[2:], kernel, stride)
        padding = _symmetric(padding)
        return cls(kernel, stride, 0 if padding == "valid" else padding, bool(node.attrs.get("ceil_mode", 0)),
                   bool(node.attrs.get("count_include_pad", 0)))

    @classmethod
    def from_torch(cls, m, t):
        return cls(m.kernel_size, m.stride, m.padding, bool(m.ceil_mode), bool(m.count_include_pad),
                   m.divisor_override)

    def extra_repr(self):
        s = f"kernel_size={self.kernel_size}"
        if self.stride != self.kernel_size:
            s += f", stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.ceil_mode:
            s += ", ceil_mode=True"
        if not self.count_include_pad:
            s += ", count_include_pad=False"
        if self.divisor_override is not None:
            s += f", divisor_override={self.divisor_override}"
        return s

    @classmethod
    def examples(cls, rng):
        yield cls(2), (rng.standard_normal((2, 3, 6, 6)),)
        yield cls(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False), \
            (rng.standard_normal((2, 2, 7, 6)),)
        yield cls((2, 3), stride=1, padding=(1, 1)), (rng.standard_normal((1, 2, 4, 5)),)
        yield cls(3, stride=2, padding=1, ceil_mode=True, divisor_override=4), (rng.standard_normal((2, 2, 7, 6)),)


@register_layer
class GlobalAvgPool2D(Layer):
    r"""The mean of each channel over its H x W plane, as :class:`torch.nn.AdaptiveAvgPool2d` (1).

    Shape
    -----
    - Input: (N, C, H, W)
    - Output: (N, C, 1, 1), as torch's ``AdaptiveAvgPool2d(1)``; follow it with
      :class:`~minidl.layers.Flatten` for (N, C) features.

    Notes
    -----
    :math:`Y[n, c] = \frac{1}{HW}\sum_{h,w} X[n, c, h, w]`; backward gives every element of
    the plane :math:`G[n, c] / (HW)`. Only the input's shape is kept.

    Examples
    --------
    >>> GlobalAvgPool2D()(np.ones((2, 3, 5, 4), np.float32)).shape
    (2, 3, 1, 1)
    """

    onnx_op = "GlobalAveragePool"

    def __init__(self):
        super().__init__()

    def to_torch(self, t):  # back from torch by AdaptiveAvgPool2D.from_torch (an int 1: this class)
        return t.nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        out = global_avg_pool2d(x, where=self)
        self.save_for_backward(in_shape=x.shape, dtype=out.dtype)
        return out

    def backward(self, grad_output, *, input_grad=True):
        s = self.saved_values
        grad_output = self.check_grad_output(grad_output, s.in_shape[:2] + (1, 1), s.dtype)
        return global_avg_pool2d_backward(s.in_shape, grad_output, where=self)

    @classmethod
    def examples(cls, rng):
        yield cls(), (rng.standard_normal((2, 3, 5, 4)),)


def _onnx_window(node):
    """``(kernel, stride, dilation)`` of an ONNX pool node on 2-D data (ONNX's default stride is 1)."""
    kernel = tuple(node.attrs.get("kernel_shape") or ())
    if len(kernel) != 2 or len(node.input_shape) != 4:
        raise Unsupported(f"with kernel_shape={list(kernel)} on an input of shape {node.input_shape} (only 2-D "
                          "pooling of (N, C, H, W) inputs)")
    return kernel, tuple(node.attrs.get("strides") or (1, 1)), tuple(node.attrs.get("dilations") or (1, 1))


def _symmetric(padding):
    """``(ph, pw)`` for explicit pads equal on both sides (the pools' form); 'valid'/'same' as they are."""
    if isinstance(padding, str) or isinstance(padding[0], int):
        return padding
    (pt, pb), (pl, pr) = padding
    if pt != pb or pl != pr:
        raise Unsupported(f"with asymmetric pads (top, bottom, left, right) = ({pt}, {pb}, {pl}, {pr})")
    return pt, pl
