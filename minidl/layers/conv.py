"""Conv2D layer."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..functional.conv_args import check_padding_mode
from ..functional.geometry import check_groups, check_padding_arg, resolve_padding
from ..parameter import Parameter
from ..validation import positive_int, positive_pair
from ._init import as_generator, float_dtype, kaiming_uniform
from .base import Layer, Unsupported, onnx_padding, onnx_pads, set_arrays, torch_padding
from .registry import register_layer

__all__ = ["Conv2D"]


@register_layer
class Conv2D(Layer):
    r"""2-D convolution (cross-correlation) layer, as :class:`torch.nn.Conv2d`.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (kh, kw)
    stride, dilation : int or (h, w), each >= 1
    padding : int, (ph, pw), ((top, bottom), (left, right)), 'valid' or 'same'
        ``'same'`` works for every stride (Keras rule: ``H_out = ceil(H / stride)``,
        the odd extra row/column at the bottom/right).
    groups : int
        Split the channels into ``groups`` blocks convolved independently
        (both channel counts must be divisible by it; ``groups = in_channels``
        is a depthwise convolution), as torch's.
    bias : bool
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}
        What the padding holds, as torch's; the backward pass folds the
        gradient of copied border values back onto the input
        (``docs/conv_backprop.md``, section 6b).
    dtype : floating dtype of the parameters, float32 by default
    rng : int or numpy.random.Generator, optional
        Source of the Kaiming-uniform initialisation (PyTorch's default:
        ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weight and bias, with
        ``fan_in = in_channels / groups * kh * kw``).

    Attributes
    ----------
    weight : Parameter, shape (out_channels, in_channels / groups, kh, kw)
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
    :func:`~minidl.functional.conv2d_bias` (all three at once through
    :func:`minidl.functional.conv.conv2d_backward`, reusing the forward
    pass's columns); gradients are added into ``.grad`` and summed over the
    batch. The kernels check the input (shape, channels, dtype) and name this
    layer in their errors. Derivation: ``docs/conv_backprop.md``; the same
    formulas as plain loops: :mod:`minidl.functional.conv_reference`.

    Examples
    --------
    >>> conv = Conv2D(1, 4, 3, padding='same', rng=np.random.default_rng(0))
    >>> conv(np.zeros((2, 1, 8, 8), np.float32)).shape
    (2, 4, 8, 8)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", dtype=np.float32, rng=None):
        super().__init__()
        where = "Conv2D"
        self.in_channels = positive_int(in_channels, "in_channels", where)
        self.out_channels = positive_int(out_channels, "out_channels", where)
        self.kernel_size = positive_pair(kernel_size, "kernel_size", where)
        self.stride = positive_pair(stride, "stride", where)
        self.dilation = positive_pair(dilation, "dilation", where)
        self.padding = check_padding_arg(padding, where)
        self.groups = check_groups(groups, where)
        for name, count in (("in_channels", self.in_channels), ("out_channels", self.out_channels)):
            if count % self.groups:
                raise ValueError(f"{where}: {name} must be divisible by groups, as in torch.nn.Conv2d. "
                                 f"Received: {name}={count}, groups={self.groups}")
        self.padding_mode = check_padding_mode(padding_mode, where)
        dtype = float_dtype(dtype, where)
        rng = as_generator(rng, where)
        kh, kw = self.kernel_size
        fan_in = self.in_channels // self.groups * kh * kw
        self.weight = Parameter(kaiming_uniform(
            rng, (self.out_channels, self.in_channels // self.groups, kh, kw), fan_in, dtype))
        self.bias = Parameter(kaiming_uniform(rng, (self.out_channels,), fan_in, dtype)) if bias else None

    def _conv_args(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups,
                    padding_mode=self.padding_mode, where=self)

    def forward(self, x):
        bias = None if self.bias is None else self.bias.data
        if not self.keeps_caches:  # eval mode: no columns to keep
            return F.conv2d(x, self.weight.data, bias, **self._conv_args())
        # the previous call's cache is replaced once the new one exists: freeing it
        # first can make malloc return the memory to the OS and fault it back in
        out, columns = F.conv2d(x, self.weight.data, bias, **self._conv_args(), return_columns=True)
        self.save_for_backward(x=x, columns=columns, out_shape=out.shape)
        return out

    def backward(self, grad_output, *, input_grad=True):
        s = self.saved_values
        grad_output = self.check_grad_output(grad_output, s.out_shape, s.x.dtype)
        dx, dw, db = F.conv.conv2d_backward(s.x, self.weight.data, grad_output, **self._conv_args(),
                                            bias=self.bias is not None, input_grad=input_grad,
                                            columns=s.columns)
        self.weight.grad += dw  # added, as PyTorch accumulates; dw and db are summed over the batch
        if self.bias is not None:
            self.bias.grad += db
        return dx

    # ------------------------------------------------------------ interop recipes
    torch_modules, onnx_imports = ("Conv2d", "PaddedConv2d"), ("Conv",)

    def to_onnx(self, g, inputs, input_shape):
        pads = resolve_padding(self.padding, input_shape[2:], self.kernel_size, self.stride, self.dilation)
        x = inputs[0]
        if self.padding_mode != "zeros" and any(onnx_pads(pads)):  # ONNX's Conv pads with zeros only
            x, pads = _onnx_pad(g, x, pads, self.padding_mode, input_shape), ((0, 0), (0, 0))
        args = [x, g.const("weight", self.weight.data)]
        if self.bias is not None:
            args.append(g.const("bias", self.bias.data))
        return g.node("Conv", args, kernel_shape=list(self.kernel_size), strides=list(self.stride),
                      dilations=list(self.dilation), group=self.groups, pads=onnx_pads(pads))

    def to_torch(self, t):
        kw = dict(stride=self.stride, dilation=self.dilation, groups=self.groups, bias=self.bias is not None,
                  padding_mode=self.padding_mode, dtype=t.dtype(self))
        args, padding = (self.in_channels, self.out_channels, self.kernel_size), self.padding
        if isinstance(padding, str) and padding.lower() == "same":
            if self.stride == (1, 1):  # torch's 'same' is Keras's for stride 1 (extra pad bottom/right)
                return t.nn.Conv2d(*args, padding="same", **kw)
            return t.PaddedConv2d(*args, minidl_padding="same", **kw)  # pads depend on the input size
        if isinstance(padding, str):  # 'valid'
            return t.nn.Conv2d(*args, padding="valid", **kw)
        pads = resolve_padding(padding, (1, 1), self.kernel_size, self.stride, self.dilation)
        if pads[0][0] == pads[0][1] and pads[1][0] == pads[1][1]:
            return t.nn.Conv2d(*args, padding=torch_padding(padding, self.kernel_size), **kw)
        return t.PaddedConv2d(*args, minidl_padding=pads, **kw)

    @classmethod
    def from_torch(cls, m, t, padding=None):
        """The Conv2D equivalent to an ``nn.Conv2d`` (or ``PaddedConv2d``), without its state.

        Parameters
        ----------
        m : torch.nn.Conv2d
        t : module
            :mod:`minidl.interop._torch` (see :meth:`Layer.to_torch <minidl.layers.Layer.to_torch>`).
        padding : optional
            Explicit pads that replace the module's (an ``nn.ZeroPad2d`` merged in).

        Returns
        -------
        Conv2D
        """
        if padding is None:
            padding = getattr(m, "minidl_padding", m.padding)
            padding = padding if isinstance(padding, str) else tuple(padding)
        return cls(m.in_channels, m.out_channels, m.kernel_size, m.stride, padding, m.dilation, m.groups,
                   bias=m.bias is not None, padding_mode=m.padding_mode, dtype=t.np_dtype(m))

    @classmethod
    def from_onnx_node(cls, node):
        """The Conv2D computing an ONNX ``Conv`` node on 2-D data, its weight and bias the node's constants.

        Parameters
        ----------
        node : minidl.layers.base.OnnxNode

        Returns
        -------
        Conv2D

        Raises
        ------
        Unsupported
            A weight or bias computed at run time, other than 2-D data, or a kernel_shape that
            is not the weight's.
        """
        _, weight, bias = (tuple(node.consts) + (None, None))[:3]
        if node.tensors != 1 or weight is None:
            raise Unsupported("with its weight or bias computed at run time (only constants become Parameters)")
        if weight.ndim != 4:
            raise Unsupported(f"on {weight.ndim - 2}-D data (weight shape {weight.shape}); only 2-D (Conv2D)")
        a, kernel = node.attrs, weight.shape[2:]
        if tuple(a.get("kernel_shape") or kernel) != kernel:
            raise Unsupported(f"with kernel_shape={a['kernel_shape']} but a weight of shape {weight.shape}")
        stride, dilation = tuple(a.get("strides") or (1, 1)), tuple(a.get("dilations") or (1, 1))
        padding = onnx_padding(a, node.input_shape, kernel, stride, dilation)
        layer = cls(weight.shape[1] * a["group"], weight.shape[0], kernel, stride, padding, dilation, a["group"],
                    bias=bias is not None, dtype=weight.dtype)
        return set_arrays(layer, weight=weight, **({} if bias is None else {"bias": bias}))

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        if self.stride != (1, 1):
            s += f", stride={self.stride}"
        if self.padding not in (0, "valid"):
            s += f", padding={self.padding!r}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        if self.weight.data.dtype != np.float32:
            s += f", dtype={self.weight.data.dtype}"
        return s

    @classmethod
    def examples(cls, rng):
        grid = [
            dict(kernel_size=3), dict(kernel_size=2, padding="same"), dict(kernel_size=4, padding="same"),
            dict(kernel_size=3, stride=2), dict(kernel_size=3, stride=2, padding="same"),
            dict(kernel_size=3, stride=3, padding="same"), dict(kernel_size=3, dilation=2, padding=1),
            dict(kernel_size=(2, 3), stride=(2, 1), padding=(1, 0)), dict(kernel_size=3, bias=False),
            dict(kernel_size=7),  # 1x1 output on a 7x7 input
            dict(kernel_size=3, padding=1, groups=2, padding_mode="reflect"),
            dict(kernel_size=3, stride=2, padding="same", groups=2, padding_mode="circular"),
        ]
        for cfg in grid:
            yield cls(2, 4, rng=rng, dtype=np.float64, **cfg), (rng.standard_normal((2, 2, 7, 7)),)


def _onnx_pad(g, x, pads, mode, input_shape):
    """ONNX nodes padding ``x`` as ``padding_mode`` says (reflect, replicate: ``Pad``; circular:
    ``Slice`` + ``Concat`` per axis, ``[x[-before:], x, x[:after]]``, as opset 17 has no wrap mode)."""
    if mode in ("reflect", "replicate"):
        (pt, pb), (pl, pr) = pads
        amounts = g.const("pads", [0, 0, pt, pl, 0, 0, pb, pr], np.int64)
        return g.node("Pad", [x, amounts], mode="reflect" if mode == "reflect" else "edge")
    for axis, (before, after) in ((2, pads[0]), (3, pads[1])):
        n, parts = input_shape[axis], []
        for start, end, amount in ((n - before, n, before), (0, after, after)):
            if amount:
                parts.append(g.node("Slice", [x, *(g.const("slice", [v], np.int64) for v in (start, end, axis))]))
        parts.insert(1 if before else 0, x)
        if len(parts) > 1:
            x = g.node("Concat", parts, axis=axis)
    return x
