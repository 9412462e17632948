"""ConvTranspose2D layer: the convolution's backward pass, run forward."""

from __future__ import annotations

import numpy as np

from ..functional import conv_transpose as CT
from ..parameter import Parameter
from ..validation import positive_int, positive_pair
from ._init import as_generator, float_dtype, kaiming_uniform
from .base import Layer, Unsupported, set_arrays
from .registry import register_layer

__all__ = ["ConvTranspose2D"]


@register_layer
class ConvTranspose2D(Layer):
    r"""2-D transposed convolution, as :class:`torch.nn.ConvTranspose2d` (arguments in its order).

    Upsamples with a learned kernel: each input pixel adds the kernel, scaled by its
    value, into a ``stride``-spaced position of the output. It is the gradient of
    :class:`Conv2D` with respect to its input, run forward.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (kh, kw)
    stride, dilation : int or (h, w), each >= 1
    padding : int or (h, w), >= 0
        Rows/columns removed from each side of the output (torch's meaning).
    output_padding : int or (h, w), >= 0 and < max(stride, dilation)
        Rows/columns added at the bottom/right of the output: with stride ``s``, ``s``
        input sizes of a :class:`Conv2D` give one output size; this picks which one
        the transposed convolution restores.
    groups : int
        Both channel counts must be divisible by it.
    bias : bool
    rng : int or numpy.random.Generator, optional
        Source of torch's initialisation: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weight and
        bias with ``fan_in = out_channels / groups * kh * kw`` (torch computes it from
        ``weight.shape[1:]``).
    dtype : floating dtype of the parameters, float32 by default

    Attributes
    ----------
    weight : Parameter, shape (in_channels, out_channels / groups, kh, kw)
    bias : Parameter, shape (out_channels,), or None

    Raises
    ------
    TypeError, ValueError
        An argument of the wrong type or out of range (the message names it and the fix).

    Shape
    -----
    - Input: (N, in_channels, H, W), dtype of the parameters
    - Output: (N, out_channels, H_out, W_out) with
      ``H_out = (H - 1) * stride - 2 * padding + dilation * (kh - 1) + output_padding + 1``

    Notes
    -----
    Forward: :func:`minidl.functional.conv_transpose2d`, which is
    :func:`~minidl.functional.conv2d_input`. Backward:
    :func:`~minidl.functional.conv_transpose2d_backward`: dL/dX is :func:`~minidl.functional.conv2d`
    of the upstream gradient, dL/dW is :func:`~minidl.functional.conv2d_weight` with ``x`` and the
    upstream gradient swapped, dL/db :func:`~minidl.functional.conv2d_bias`. Derivation:
    ``docs/derivations/conv_transpose.md``.

    Examples
    --------
    >>> up = ConvTranspose2D(4, 1, 3, stride=2, padding=1, output_padding=1, rng=0)
    >>> up(np.zeros((2, 4, 4, 4), np.float32)).shape
    (2, 1, 8, 8)
    >>> up.weight.shape
    (4, 1, 3, 3)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, *, rng=None, dtype=np.float32):
        super().__init__()
        where = "ConvTranspose2D"
        self.in_channels = positive_int(in_channels, "in_channels", where)
        self.out_channels = positive_int(out_channels, "out_channels", where)
        self.kernel_size = positive_pair(kernel_size, "kernel_size", where)
        self.stride, self.padding, self.output_padding, self.groups, self.dilation = CT.conv_transpose2d_args(
            self.in_channels, self.kernel_size, stride, padding, output_padding, groups, dilation, where)
        if self.out_channels % self.groups:
            raise ValueError(f"{where}: out_channels ({self.out_channels}) must be divisible by groups={self.groups}, "
                             "as in torch.nn.ConvTranspose2d.")
        dtype = float_dtype(dtype, where)
        rng = as_generator(rng, where)
        kh, kw = self.kernel_size
        fan_in = self.out_channels // self.groups * kh * kw  # torch: weight.size(1) * kh * kw
        self.weight = Parameter(kaiming_uniform(
            rng, (self.in_channels, self.out_channels // self.groups, kh, kw), fan_in, dtype))
        self.bias = Parameter(kaiming_uniform(rng, (self.out_channels,), fan_in, dtype)) if bias else None

    def _args(self):
        return (self.stride, self.padding, self.output_padding, self.groups, self.dilation)

    def forward(self, x):
        bias = None if self.bias is None else self.bias.data
        out = CT.conv_transpose2d(x, self.weight.data, bias, *self._args(), where=self)
        self.save_for_backward(x=x, out_shape=out.shape)
        return out

    def backward(self, grad_output, *, input_grad=True):
        s = self.saved_values
        grad_output = self.check_grad_output(grad_output, s.out_shape, s.x.dtype)
        dx, dw, db = CT.conv_transpose2d_backward(s.x, self.weight.data, grad_output, *self._args(),
                                                  bias=self.bias is not None, input_grad=input_grad, where=self)
        self.weight.grad += dw  # added, as torch accumulates; summed over the batch
        if self.bias is not None:
            self.bias.grad += db
        return dx

    # ------------------------------------------------------------ interop recipes
    torch_modules = ("ConvTranspose2d",)

    def to_onnx(self, g, inputs, input_shape):
        (ph, pw), op = self.padding, self.output_padding
        weight = g.const("weight", self.weight.data)
        attrs = dict(kernel_shape=list(self.kernel_size), strides=list(self.stride), dilations=list(self.dilation),
                     group=self.groups)
        if all(o < s for o, s in zip(op, self.stride)):  # the plain node
            bias = [g.const("bias", self.bias.data)] if self.bias is not None else []
            return g.node("ConvTranspose", [inputs[0], weight, *bias], pads=[ph, pw, ph, pw],
                          output_padding=list(op), **attrs)
        # output_padding >= stride (dilation > stride): onnxruntime refuses it. The output_padding rows
        # at the bottom/right are cropped less (pads_end = padding - output_padding), and those the
        # kernel never reaches (output_padding - padding) are zeros padded on, then the bias added
        ends = [max(p - o, 0) for p, o in zip(self.padding, op)]
        out = g.node("ConvTranspose", [inputs[0], weight], pads=[ph, pw, *ends], **attrs)
        more = [max(o - p, 0) for p, o in zip(self.padding, op)]
        if any(more):
            out = g.node("Pad", [out, g.const("pads", [0, 0, 0, 0, 0, 0, *more], np.int64)])
        if self.bias is not None:
            out = g.node("Add", [out, g.const("bias", self.bias.data.reshape(-1, 1, 1))])
        return out

    def to_torch(self, t):
        return t.nn.ConvTranspose2d(self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
                                    self.output_padding, self.groups, self.bias is not None, self.dilation,
                                    dtype=t.dtype(self))

    @classmethod
    def from_torch(cls, m, t):
        """The ConvTranspose2D equivalent to an ``nn.ConvTranspose2d``, without its state.

        Parameters
        ----------
        m : torch.nn.ConvTranspose2d
        t : module
            :mod:`minidl.interop._torch` (see :meth:`Layer.to_torch <minidl.layers.Layer.to_torch>`).

        Returns
        -------
        ConvTranspose2D

        Raises
        ------
        Unsupported
            A ``padding_mode`` other than 'zeros' (torch refuses it in forward too).
        """
        if m.padding_mode != "zeros":
            raise Unsupported(f"with padding_mode={m.padding_mode!r} (only 'zeros' is defined for it)")
        return cls(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.output_padding, m.groups,
                   m.bias is not None, m.dilation, dtype=t.np_dtype(m))

    onnx_imports = ("ConvTranspose",)

    @classmethod
    def from_onnx_node(cls, node):
        """The ConvTranspose2D computing an ONNX ``ConvTranspose`` node on 2-D data, weight and bias its constants.

        ONNX crops ``pads`` (begin, end) off the full output, torch crops ``padding`` off both
        ends and adds ``output_padding`` at the end: ``padding = begin`` and ``output_padding =
        output_padding + begin - end``. An ``output_shape`` (or ``auto_pad`` SAME_*) gives the
        pads by ONNX's rule.

        Parameters
        ----------
        node : minidl.layers.base.OnnxNode

        Returns
        -------
        ConvTranspose2D

        Raises
        ------
        Unsupported
            A weight or bias computed at run time, other than 2-D data, a kernel_shape that is
            not the weight's, pads or an output_shape torch's padding/output_padding cannot express.

        Examples
        --------
        >>> from minidl.layers.base import OnnxNode
        >>> w = np.ones((4, 1, 3, 3), np.float32)
        >>> attrs = {"group": 1, "strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]}
        >>> ConvTranspose2D.from_onnx_node(OnnxNode("ConvTranspose", attrs, (None, w), 1, (1, 4, 5, 5), 1, 17))
        ConvTranspose2D(4, 1, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), output_padding=(1, 1), bias=False)
        """
        _, weight, bias = (tuple(node.consts) + (None, None))[:3]
        if node.tensors != 1 or weight is None:
            raise Unsupported("with its weight or bias computed at run time (only constants become Parameters)")
        if weight.ndim != 4 or len(node.input_shape) != 4:
            raise Unsupported(f"on {weight.ndim - 2}-D data (weight shape {weight.shape}); only 2-D (ConvTranspose2D)")
        a, kernel = node.attrs, weight.shape[2:]
        if tuple(a.get("kernel_shape") or kernel) != kernel:
            raise Unsupported(f"with kernel_shape={a['kernel_shape']} but a weight of shape {weight.shape}")
        stride, dilation = tuple(a.get("strides") or (1, 1)), tuple(a.get("dilations") or (1, 1))
        extra = tuple(a.get("output_padding") or (0, 0))
        begin, end = _onnx_transposed_pads(a, node.input_shape[2:], kernel, stride, dilation, extra)
        output_padding = tuple(int(o + b - e) for o, b, e in zip(extra, begin, end))
        if min(begin) < 0 or min(output_padding) < 0:
            raise Unsupported(f"with pads (begin {list(begin)}, end {list(end)}) and output_padding {list(extra)}: "
                              "torch's padding and output_padding cannot crop more at the end than at the start")
        group = a.get("group", 1)
        layer = cls(weight.shape[0], weight.shape[1] * group, kernel, stride, begin, output_padding, group,
                    bias is not None, dilation, dtype=weight.dtype)
        return set_arrays(layer, weight=weight, **({} if bias is None else {"bias": bias}))

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        for name, default in (("padding", (0, 0)), ("output_padding", (0, 0)), ("dilation", (1, 1))):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.weight.data.dtype != np.float32:
            s += f", dtype={self.weight.data.dtype}"
        return s

    @classmethod
    def examples(cls, rng):
        grid = [
            dict(kernel_size=3), dict(kernel_size=3, stride=2, padding=1, output_padding=1),
            dict(kernel_size=4, stride=2, padding=1), dict(kernel_size=(2, 3), stride=(3, 1), output_padding=(2, 0)),
            dict(kernel_size=3, dilation=2, padding=2, output_padding=1),  # output_padding >= stride
            dict(kernel_size=2, dilation=3, output_padding=(2, 1)),  # and > padding: bias-only rows
            dict(kernel_size=3, stride=2, groups=2, bias=False),
        ]
        for cfg in grid:
            yield cls(2, 4, rng=rng, dtype=np.float64, **cfg), (rng.standard_normal((2, 2, 4, 5)),)


def _onnx_transposed_pads(attrs, size, kernel, stride, dilation, extra):
    """``(begin, end)`` pads of an ONNX ConvTranspose: its ``pads``, or ONNX's rule from ``output_shape``
    (given, or ``input * stride`` for ``auto_pad`` SAME_*): the total split with the odd one at the end
    for SAME_UPPER, at the start otherwise."""
    auto, shape = attrs.get("auto_pad", "NOTSET"), list(attrs.get("output_shape") or [])
    if auto not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise Unsupported(f"with auto_pad={auto!r}")
    if auto == "VALID":
        return (0, 0), (0, 0)
    if auto != "NOTSET" and not shape:
        shape = [n * s for n, s in zip(size, stride)]
    if not shape:
        pads = [int(p) for p in attrs.get("pads") or [0, 0, 0, 0]]
        if len(pads) != 4:
            raise Unsupported(f"with pads={pads} (four for 2-D data)")
        return tuple(pads[:2]), tuple(pads[2:])
    if len(shape) not in (2, 4):
        raise Unsupported(f"with output_shape={shape} (the output's H and W expected)")
    total = [s * (n - 1) + o + (k - 1) * d + 1 - want
             for n, s, o, k, d, want in zip(size, stride, extra, kernel, dilation, shape[-2:])]
    small = [t // 2 for t in total]
    big = [t - h for t, h in zip(total, small)]
    return (tuple(small), tuple(big)) if auto == "SAME_UPPER" else (tuple(big), tuple(small))
