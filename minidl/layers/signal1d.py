"""Layers over (N, C, L) signals: Conv1D, MaxPool1D, AvgPool1D.

Each is its 2-D layer with a height of one (the kernels of :mod:`minidl.functional.signal1d`
reshape to (N, C, 1, L) and call the 2-D ones); the 1-D hyper-parameters are plain ints.
"""

from __future__ import annotations

import numpy as np

from ..functional import signal1d as F1
from ..functional.conv_args import check_padding_mode
from ..functional.geometry import check_groups, resolve_padding
from ..functional.pool import check_pool_padding, pool_geometry
from ..parameter import Parameter
from ..testing import tie_free
from ..validation import check_bool, positive_int
from ._init import as_generator, float_dtype, kaiming_uniform
from .base import Layer, Unsupported, set_arrays
from .pool import MaxPool2D
from .registry import register_layer

__all__ = ["Conv1D", "MaxPool1D", "AvgPool1D"]


@register_layer
class Conv1D(Layer):
    r"""1-D convolution (cross-correlation) layer, as :class:`torch.nn.Conv1d`.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int
    stride, dilation : int, each >= 1
    padding : int, 'valid' or 'same'
        Both ends; ``'same'`` for every stride as :class:`Conv2D` (Keras rule, the odd
        extra at the end); torch has it for stride 1 only, so ``to_torch`` refuses a larger one.
    groups : int
        Channel blocks convolved independently (both channel counts divisible by it).
    bias : bool
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}
    dtype : floating dtype of the parameters, float32 by default
    rng : int or numpy.random.Generator, optional
        Kaiming-uniform initialisation, torch's: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``,
        ``fan_in = in_channels / groups * kernel_size``.

    Attributes
    ----------
    weight : Parameter, shape (out_channels, in_channels / groups, kernel_size)
    bias : Parameter, shape (out_channels,), or None

    Shape
    -----
    - Input: (N, in_channels, L)
    - Output: (N, out_channels, L_out), ``L_out = floor((L + 2 p - dilation (k - 1) - 1) / stride) + 1``

    Notes
    -----
    :class:`Conv2D` on (N, C, 1, L) with a (1, k) kernel: :func:`minidl.functional.signal1d.conv1d`
    and ``conv1d_backward`` (``docs/conv_backprop.md``, the note on 1-D).

    Examples
    --------
    >>> Conv1D(2, 4, 3, padding="same", rng=0)(np.zeros((5, 2, 16), np.float32)).shape
    (5, 4, 16)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", *, rng=None, dtype=np.float32):
        super().__init__()
        where = "Conv1D"
        self.in_channels = positive_int(in_channels, "in_channels", where)
        self.out_channels = positive_int(out_channels, "out_channels", where)
        self.kernel_size = F1.single(kernel_size, "kernel_size", where)
        self.stride = F1.single(stride, "stride", where)
        self.padding = F1.padding_1d(padding, where)
        self.dilation = F1.single(dilation, "dilation", where)
        self.groups = check_groups(groups, where)
        for name, count in (("in_channels", self.in_channels), ("out_channels", self.out_channels)):
            if count % self.groups:
                raise ValueError(f"{where}: {name} must be divisible by groups, as in torch.nn.Conv1d. "
                                 f"Received: {name}={count}, groups={self.groups}")
        self.padding_mode = check_padding_mode(padding_mode, where)
        dtype, rng = float_dtype(dtype, where), as_generator(rng, where)
        fan_in = self.in_channels // self.groups * self.kernel_size
        shape = (self.out_channels, self.in_channels // self.groups, self.kernel_size)
        self.weight = Parameter(kaiming_uniform(rng, shape, fan_in, dtype))
        self.bias = Parameter(kaiming_uniform(rng, (self.out_channels,), fan_in, dtype)) if bias else None

    def _args(self):
        return self.stride, self.padding, self.dilation, self.groups

    def forward(self, x):
        bias = None if self.bias is None else self.bias.data
        keep = self.keeps_caches  # eval mode: no columns to keep
        got = F1.conv1d(x, self.weight.data, bias, *self._args(), keep, padding_mode=self.padding_mode, where=self)
        if not keep:
            return got
        self.save_for_backward(x=x, columns=got[1], out_shape=got[0].shape)
        return got[0]

    def backward(self, grad_output, *, input_grad=True):
        s = self.saved_values
        grad_output = self.check_grad_output(grad_output, s.out_shape, s.x.dtype)
        dx, dw, db = F1.conv1d_backward(s.x, self.weight.data, grad_output, *self._args(), self.bias is not None,
                                        input_grad, s.columns, padding_mode=self.padding_mode, where=self)
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx

    # ------------------------------------------------------------ interop recipes
    torch_modules = ("Conv1d",)

    def _pads(self, length):
        ((_, _), (left, right)) = resolve_padding(self.padding if isinstance(self.padding, str) else
                                                  (0, self.padding), (1, length), (1, self.kernel_size),
                                                  (1, self.stride), (1, self.dilation), self)
        return left, right

    def to_onnx(self, g, inputs, input_shape):
        (left, right), x = self._pads(input_shape[2]), inputs[0]
        if self.padding_mode != "zeros" and (left or right):  # ONNX's Conv pads with zeros only
            x, left, right = _onnx_pad1d(g, x, left, right, self.padding_mode, input_shape[2]), 0, 0
        args = [x, g.const("weight", self.weight.data)]
        args += [] if self.bias is None else [g.const("bias", self.bias.data)]
        return g.node("Conv", args, kernel_shape=[self.kernel_size], strides=[self.stride],
                      dilations=[self.dilation], group=self.groups, pads=[left, right])

    def to_torch(self, t):
        if self.padding == "same" and self.stride != 1:
            raise Unsupported("with padding='same' and stride > 1 (torch.nn.Conv1d refuses it; give the pads)")
        return t.nn.Conv1d(self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
                           self.dilation, self.groups, self.bias is not None, self.padding_mode, dtype=t.dtype(self))

    @classmethod
    def from_torch(cls, m, t):
        return cls(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups,
                   m.bias is not None, m.padding_mode, dtype=t.np_dtype(m))

    onnx_imports = ("Conv",)  # the 1-D nodes Conv2D refuses

    @classmethod
    def from_onnx_node(cls, node):
        """The Conv1D computing an ONNX ``Conv`` node on (N, C, L) data, its weight and bias the node's constants.

        Parameters
        ----------
        node : minidl.layers.base.OnnxNode

        Returns
        -------
        Conv1D

        Raises
        ------
        Unsupported
            A weight or bias computed at run time, other than 1-D data, a kernel_shape that is
            not the weight's, pads different at the two ends.

        Examples
        --------
        >>> from minidl.layers.base import OnnxNode
        >>> w = np.ones((4, 2, 3), np.float32)
        >>> Conv1D.from_onnx_node(OnnxNode("Conv", {"group": 1, "pads": [1, 1]}, (None, w), 1, (1, 2, 9), 1, 17))
        Conv1D(2, 4, kernel_size=3, padding=1, bias=False)
        """
        _, weight, bias = (tuple(node.consts) + (None, None))[:3]
        if node.tensors != 1 or weight is None:
            raise Unsupported("with its weight or bias computed at run time (only constants become Parameters)")
        if weight.ndim != 3:
            raise Unsupported(f"on {weight.ndim - 2}-D data (weight shape {weight.shape}); only 1-D (Conv1D)")
        a, kernel = node.attrs, weight.shape[2]
        if list(a.get("kernel_shape") or [kernel]) != [kernel]:
            raise Unsupported(f"with kernel_shape={a['kernel_shape']} but a weight of shape {weight.shape}")
        (stride,), (dilation,) = a.get("strides") or [1], a.get("dilations") or [1]
        padding = "same" if a.get("auto_pad") == "SAME_UPPER" else \
            _symmetric1d(_onnx_pads1d(a, node.input_shape, kernel, stride, dilation))
        layer = cls(weight.shape[1] * a["group"], weight.shape[0], kernel, stride, padding, dilation, a["group"],
                    bias=bias is not None, dtype=weight.dtype)
        return set_arrays(layer, weight=weight, **({} if bias is None else {"bias": bias}))

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        for name, default in (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1)):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)!r}"
        s += "" if self.bias is not None else ", bias=False"
        s += "" if self.padding_mode == "zeros" else f", padding_mode={self.padding_mode!r}"
        return s + ("" if self.weight.data.dtype == np.float32 else f", dtype={self.weight.data.dtype}")

    @classmethod
    def examples(cls, rng):
        grid = [dict(kernel_size=3), dict(kernel_size=4, padding="same"), dict(kernel_size=3, stride=2, padding=1),
                dict(kernel_size=3, dilation=2, padding=2, bias=False), dict(kernel_size=9),
                dict(kernel_size=3, padding=1, groups=2, padding_mode="reflect"),
                dict(kernel_size=3, stride=2, padding=2, groups=2, padding_mode="circular"),
                dict(kernel_size=2, padding=1, padding_mode="replicate")]
        for cfg in grid:
            yield cls(2, 4, rng=rng, dtype=np.float64, **cfg), (rng.standard_normal((2, 2, 9)),)


def _onnx_pad1d(g, x, left, right, mode, length):
    """ONNX nodes padding the last axis of (N, C, L) ``x``: ``Pad`` (reflect, edge), or
    ``[x[-left:], x, x[:right]]`` by ``Slice`` + ``Concat`` for circular (opset 17 has no wrap)."""
    if mode in ("reflect", "replicate"):
        amounts = g.const("pads", [0, 0, left, 0, 0, right], np.int64)
        return g.node("Pad", [x, amounts], mode="reflect" if mode == "reflect" else "edge")
    parts = [x]
    if left:
        ends = (g.const("slice", [v], np.int64) for v in (length - left, length, 2))
        parts.insert(0, g.node("Slice", [x, *ends]))
    if right:
        parts.append(g.node("Slice", [x, *(g.const("slice", [v], np.int64) for v in (0, right, 2))]))
    return g.node("Concat", parts, axis=2)


def _onnx_pads1d(attrs, input_shape, kernel, stride, dilation=1):
    """``(left, right)`` of an ONNX Conv or pool node on (N, C, L) data, its ``auto_pad`` resolved."""
    if len(input_shape) != 3:
        raise Unsupported(f"on an input of shape {tuple(input_shape)}; only (N, C, L) for the 1-D layers")
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):  # the odd extra at the end (UPPER) or the start (LOWER)
        (_, _), (left, right) = resolve_padding("same", (1, input_shape[2]), (1, kernel), (1, stride), (1, dilation))
        return (right, left) if auto == "SAME_LOWER" else (left, right)
    if auto == "VALID":
        return 0, 0
    if auto != "NOTSET":
        raise Unsupported(f"with auto_pad={auto!r}")
    pads = [int(p) for p in attrs.get("pads") or [0, 0]]
    if len(pads) != 2 or min(pads) < 0:
        raise Unsupported(f"with pads={pads} (two pads >= 0 for 1-D data)")
    return tuple(pads)


def _symmetric1d(pads):
    if pads[0] != pads[1]:
        raise Unsupported(f"with pads (start, end) = {pads}; minidl's 1-D layers pad both ends alike")
    return pads[0]


def _onnx_pool1d(node):
    """``(kernel, stride, padding, dilation)`` of an ONNX MaxPool/AveragePool node on (N, C, L) data."""
    kernel = list(node.attrs.get("kernel_shape") or ())
    if len(kernel) != 1:
        raise Unsupported(f"with kernel_shape={kernel}; only 1-D pooling (one kernel size) here")
    (stride,), (dilation,) = node.attrs.get("strides") or [1], node.attrs.get("dilations") or [1]
    return kernel[0], stride, _symmetric1d(_onnx_pads1d(node.attrs, node.input_shape, kernel[0], stride,
                                                        dilation)), dilation


class _Pool1D(Layer):
    """What the 1-D pools share: ints for ``kernel_size``, ``stride`` (None: the kernel's),
    ``padding`` (at most half the kernel); saving and checking for backward."""

    def _check(self, kernel_size, stride, padding, ceil_mode, where):
        self.kernel_size = F1.single(kernel_size, "kernel_size", where)
        self.stride = self.kernel_size if stride is None else F1.single(stride, "stride", where)
        self.padding = F1.padding_1d(padding, where, strings=False)
        check_pool_padding([(self.padding, self.padding)], (self.kernel_size,), padding, where)
        self.ceil_mode = check_bool(ceil_mode, "ceil_mode", where)

    def _onnx_pads(self, length, dilation=1):
        geo = pool_geometry((1, length), (1, self.kernel_size), (1, self.stride), ((0, 0), (self.padding,) * 2),
                            self, (1, dilation), self.ceil_mode)
        return geo.pads[1]  # (left, right), ceil_mode's extra on the right

    def extra_repr(self):
        s = f"kernel_size={self.kernel_size}"
        s += "" if self.stride == self.kernel_size else f", stride={self.stride}"
        s += "" if self.padding == 0 else f", padding={self.padding}"
        s += "" if getattr(self, "dilation", 1) == 1 else f", dilation={self.dilation}"
        s += ", ceil_mode=True" if self.ceil_mode else ""
        return s + ("" if getattr(self, "count_include_pad", True) else ", count_include_pad=False")


@register_layer
class MaxPool1D(_Pool1D):
    r"""1-D max pooling, as :class:`torch.nn.MaxPool1d`.

    Parameters
    ----------
    kernel_size : int
    stride : int, optional; defaults to ``kernel_size``
    padding : int, default 0
        ``-inf`` at both ends (never wins), at most half the kernel.
    dilation : int, default 1
    ceil_mode : bool, default False
        Round the output size up, PyTorch's rule.

    Shape
    -----
    - Input: (N, C, L)
    - Output: (N, C, L_out), ``L_out = floor((L + 2 p - d (k - 1) - 1) / s) + 1`` (ceil with ``ceil_mode``)

    Notes
    -----
    :class:`MaxPool2D` on (N, C, 1, L); ties go to the first maximum (PyTorch's CPU rule).

    Examples
    --------
    >>> MaxPool1D(2)(np.zeros((1, 3, 8), np.float32)).shape
    (1, 3, 4)
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__()
        self._check(kernel_size, stride, padding, ceil_mode, "MaxPool1D")
        self.dilation = F1.single(dilation, "dilation", "MaxPool1D")

    def _args(self):
        return self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode

    def forward(self, x):
        if not self.keeps_caches:  # eval mode: no argmax to keep
            return F1.max_pool1d(x, *self._args(), where=self)
        out, idx = F1.max_pool1d(x, *self._args(), return_indices=True, where=self)
        self.save_for_backward(in_shape=x.shape, dtype=x.dtype, indices=idx)
        return out

    def backward(self, grad_output, *, input_grad=True):
        s = self.saved_values
        grad_output = self.check_grad_output(grad_output, s.indices.shape, s.dtype)
        return F1.max_pool1d_backward(s.in_shape, grad_output, s.indices, *self._args(), where=self)

    def kinks(self, x, tol=1e-4):
        k, s, p, d, ceil = self._args()  # MaxPool2D's, on a height of one
        return (MaxPool2D((1, k), (1, s), (0, p), (1, d), ceil).kinks(x[:, :, None, :], tol)[0][:, :, 0],)

    torch_modules = ("MaxPool1d",)

    def to_onnx(self, g, inputs, input_shape):
        left, right = self._onnx_pads(input_shape[2], self.dilation)
        x = inputs[0]
        if max(left, right) >= self.kernel_size:  # onnxruntime refuses a pad as large as the kernel
            x = g.node("Pad", [x, g.const("pads", [0, 0, left, 0, 0, right], np.int64),
                               g.const("pad_value", -np.inf)])
            left = right = 0
        return g.node("MaxPool", [x], kernel_shape=[self.kernel_size], strides=[self.stride],
                      dilations=[self.dilation], pads=[left, right])

    def to_torch(self, t):
        return t.nn.MaxPool1d(*self._args()[:4], ceil_mode=self.ceil_mode)

    @classmethod
    def from_torch(cls, m, t):
        if m.return_indices:
            raise Unsupported("with return_indices=True")
        return cls(m.kernel_size, m.stride, m.padding, m.dilation, bool(m.ceil_mode))

    onnx_imports = ("MaxPool",)  # the 1-D nodes MaxPool2D refuses

    @classmethod
    def from_onnx_node(cls, node):
        """The MaxPool1D computing an ONNX ``MaxPool`` node on (N, C, L) data (its indices output unused).

        Parameters
        ----------
        node : minidl.layers.base.OnnxNode

        Returns
        -------
        MaxPool1D

        Raises
        ------
        Unsupported
            Other than 1-D data, pads different at the two ends, a column-major ``storage_order``.

        Examples
        --------
        >>> from minidl.layers.base import OnnxNode
        >>> MaxPool1D.from_onnx_node(OnnxNode("MaxPool", {"kernel_shape": [3], "strides": [2], "pads": [1, 1]},
        ...                                   (None,), 1, (1, 2, 9), 1, 17))
        MaxPool1D(kernel_size=3, stride=2, padding=1)
        """
        kernel, stride, padding, dilation = _onnx_pool1d(node)
        if node.attrs.get("storage_order", 0):
            raise Unsupported("with storage_order=1")
        return cls(kernel, stride, padding, dilation, bool(node.attrs.get("ceil_mode", 0)))

    @classmethod
    def examples(cls, rng):
        for args in [(2,), (3, 2, 1), (3, 1), (2, 1, 0, 2), (3, 2, 1, 1, True), (2, 3, 1, 2, True)]:
            yield cls(*args), (tie_free((2, 2, 9), rng),)


@register_layer
class AvgPool1D(_Pool1D):
    r"""1-D average pooling, as :class:`torch.nn.AvgPool1d`.

    Parameters
    ----------
    kernel_size : int
    stride : int, optional; defaults to ``kernel_size``
    padding : int, default 0
        Zeros at both ends, at most half the kernel.
    ceil_mode : bool, default False
    count_include_pad : bool, default True
        Whether the zero padding counts in a window's divisor.

    Shape
    -----
    - Input: (N, C, L)
    - Output: (N, C, L_out), ``L_out = floor((L + 2 p - k) / s) + 1`` (ceil with ``ceil_mode``)

    Notes
    -----
    :class:`AvgPool2D` on (N, C, 1, L), with torch's divisor. Only the input's shape is kept.

    Examples
    --------
    >>> AvgPool1D(2)(np.ones((1, 3, 8), np.float32)).shape
    (1, 3, 4)
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__()
        self._check(kernel_size, stride, padding, ceil_mode, "AvgPool1D")
        self.count_include_pad = check_bool(count_include_pad, "count_include_pad", "AvgPool1D")

    def _args(self):
        return self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad

    def forward(self, x):
        out = F1.avg_pool1d(x, *self._args(), where=self)
        self.save_for_backward(in_shape=x.shape, out_shape=out.shape, dtype=out.dtype)
        return out

    def backward(self, grad_output, *, input_grad=True):
        s = self.saved_values
        grad_output = self.check_grad_output(grad_output, s.out_shape, s.dtype)
        return F1.avg_pool1d_backward(s.in_shape, grad_output, *self._args(), where=self)

    torch_modules = ("AvgPool1d",)
    torch_args = {"kernel_size": "kernel_size", "stride": "stride", "padding": "padding", "ceil_mode": "ceil_mode",
                  "count_include_pad": "count_include_pad"}

    def to_onnx(self, g, inputs, input_shape):
        # as AvgPool2D: the zero padding is counted (pad it explicitly), ceil_mode's extra is not
        p, (_, right), x = self.padding, self._onnx_pads(input_shape[2]), inputs[0]
        if self.count_include_pad and p:
            x = g.node("Pad", [x, g.const("pads", [0, 0, p, 0, 0, p], np.int64)])
            right, p = right - p, 0
        return g.node("AveragePool", [x], kernel_shape=[self.kernel_size], strides=[self.stride],
                      pads=[p, right], count_include_pad=0)

    @classmethod
    def from_torch(cls, m, t):
        return cls(m.kernel_size, m.stride, m.padding, bool(m.ceil_mode), bool(m.count_include_pad))

    onnx_imports = ("AveragePool",)  # the 1-D nodes AvgPool2D refuses

    @classmethod
    def from_onnx_node(cls, node):
        """The AvgPool1D computing an ONNX ``AveragePool`` node on (N, C, L) data.

        Parameters
        ----------
        node : minidl.layers.base.OnnxNode

        Returns
        -------
        AvgPool1D

        Raises
        ------
        Unsupported
            Other than 1-D data, pads different at the two ends, a dilation.

        Examples
        --------
        >>> from minidl.layers.base import OnnxNode
        >>> AvgPool1D.from_onnx_node(OnnxNode("AveragePool", {"kernel_shape": [2]}, (None,), 1, (1, 2, 9), 1, 17))
        AvgPool1D(kernel_size=2, stride=1, count_include_pad=False)
        """
        kernel, stride, padding, dilation = _onnx_pool1d(node)
        if dilation != 1:
            raise Unsupported(f"with dilations=[{dilation}]")
        return cls(kernel, stride, padding, bool(node.attrs.get("ceil_mode", 0)),
                   bool(node.attrs.get("count_include_pad", 0)))

    @classmethod
    def examples(cls, rng):
        for args in [(2,), (3, 2, 1, True, False), (3, 1, 1), (4, 3, 2, True, True)]:
            yield cls(*args), (rng.standard_normal((2, 2, 9)),)

